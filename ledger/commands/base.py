"""What every command is, and how commands find the service that carries them out.

A command is a frozen dataclass: what a route, a Celery task or an approval asks for, with
its idempotency key. Its ``decide`` is pure: it is handed a loader (the only way it sees
stored state) and a context (the time, the actor, the ids fixed for it, the limits it
obeys) and returns the aggregates to save and the caller's answer. A feature service
carries out its commands: it builds the context, and hands ``decide`` to the command bus,
which runs it in a group committer or the one-by-one writer.

Each service names the commands it carries out (``handlers()``); the ledger gathers them
into one table (``handler_table``), so ``Ledger.execute`` serves any command.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from typing import Any, ClassVar, Protocol


class Command:
    """What every command has: a name (the approval's ``action``) and what a repeat does.

    A command a client may send twice (a retry after a lost answer) carries the client's
    ``idempotency_key``: the second is answered from the first. A command without one says
    in ``repeat`` what the same command carried out again does (its effect is fixed by what
    it names: an order number, a period, a state it sets). A command decided only as one
    item of a batch names the batch command in ``part_of``.
    """

    action: ClassVar[str]
    idempotency_key: str | None  # a field of the commands that carry one
    repeat: ClassVar[str] = ""
    part_of: ClassVar[str] = ""

    def target(self) -> str:
        raise NotImplementedError

    def params(self) -> dict[str, Any]:
        raise NotImplementedError


# Carries out one command as an actor and returns what the service answers.
Handler = Callable[[Any, dict], Any]


class Handles(Protocol):
    """A service that carries out commands."""

    def handlers(self) -> Mapping[type[Command], Handler]: ...


def handler_table(services: Iterable[Handles]) -> dict[type[Command], Handler]:
    """Every service's handlers in one table; a command claimed twice is an error."""
    table: dict[type[Command], Handler] = {}
    for service in services:
        for kind, handler in service.handlers().items():
            if kind in table:
                raise TypeError(f"{kind.__name__} is carried out by two services")
            table[kind] = handler
    return table


def iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment else None


def when(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None
