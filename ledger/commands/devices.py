"""Device commands: what staff, the cut-off process and approvals ask of a meter."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar
from uuid import UUID

from ledger.commands.base import Command, iso, when


@dataclass(frozen=True)
class KeepPower(Command):
    """Keep a meter's power on (保电) whatever its balance, until a time or released."""

    action: ClassVar[str] = "keep_power"
    meter_id: UUID
    reason: str | None = None
    until: datetime | None = None
    idempotency_key: str | None = None

    def target(self) -> str:
        return str(self.meter_id)

    def params(self) -> dict[str, Any]:
        return {"reason": self.reason, "until": iso(self.until)}

    @classmethod
    def from_params(cls, target: str, p: dict[str, Any], key: str | None) -> KeepPower:
        return cls(UUID(target), reason=p.get("reason"), until=when(p.get("until")),
                   idempotency_key=key)
