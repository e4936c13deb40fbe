"""Which commands an approval may hold, and which need a second person (decided here only)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from domain.errors import InvalidRequest
from ledger.commands.base import Command
from ledger.commands.devices import KeepPower
from ledger.commands.money import Adjust, Refund, Reverse


# The commands an approval may hold, by their stored action name.
APPROVABLE: dict[str, Any] = {c.action: c for c in (Refund, Adjust, Reverse, KeepPower)}


def command_from_approval(action: str, target: str, params: dict[str, Any],
                          idempotency_key: str | None) -> Command:
    try:
        kind = APPROVABLE[action]
    except KeyError:
        raise InvalidRequest(f"unknown action {action!r}") from None
    return kind.from_params(target, params, idempotency_key)


@dataclass(frozen=True)
class ApprovalPolicy:
    """Which commands need a second person (PREPAID_APPROVALS_REQUIRED), and the refund
    amount above which a refund does (PREPAID_APPROVAL_REFUND_ABOVE). Decided here only."""

    actions: frozenset[str] = frozenset()
    refund_above_fen: int = 0

    def needs_second_person(self, command: Command) -> bool:
        if command.action not in self.actions:
            return False
        if isinstance(command, Refund):
            return command.amount_fen > self.refund_above_fen
        return True


