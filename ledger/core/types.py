"""What a decision is: it loads what it needs, applies the rules, and returns the
aggregates to save (their pending events) and the caller's answer."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from uuid import UUID

Loader = Callable[[UUID, type, type[Exception]], Any]
Decide = Callable[[Loader], "tuple[list[Any], dict[str, Any]]"]
# One command for the bus: the id its record gets (from the idempotency key), the digest
# of the request (a retry with other content is refused), and the decision.
Job = tuple[UUID, str, Decide]


def holding(*aggregates: Any) -> Loader:
    """A loader over aggregates already read: a decision on them reads nothing again."""
    by_id = {aggregate.id: aggregate for aggregate in aggregates}

    def load(aggregate_id: UUID, kind: type, missing: type[Exception]) -> Any:
        found = by_id.get(aggregate_id)
        if not isinstance(found, kind):
            raise missing(f"{kind.__name__.lower()} {aggregate_id} does not exist")
        return found

    return load
