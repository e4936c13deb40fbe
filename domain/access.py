"""Who may do what: roles, permissions and the scope a caller works in.

The permission matrix is kept here and only here; the API checks it on every path, the
README's table is written from it, and the access tests are generated from it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum


class Role(StrEnum):
    ADMIN = "admin"
    FINANCE = "finance"
    OPERATOR = "operator"
    AUDITOR = "auditor"
    TENANT = "tenant"


# Every permission, with what it allows. Read permissions end in ``.read``.
PERMISSIONS: dict[str, str] = {
    "accounts.read": "accounts, balances, statements, receipts",
    "accounts.open": "open and close accounts, set alert levels",
    "money.top_up": "sell credit, gifts",
    "money.refund": "refund unused credit, refund payment orders",
    "money.reverse": "reverse a top-up, refund or gift (with a second person's approval)",
    "money.adjust": "manual adjustments (with a second person's approval)",
    "ledger.read": "transactions, trial balance",
    "events.read": "the raw event history of an account",
    "reports.read": "energy, sales, account-period, alarm, offline and loss reports",
    "reconciliation": "upload providers' bills and reconcile them",
    "periods.close": "close a month",
    "sites.read": "sites, buildings, units, gateways, the meter sheet export",
    "sites.write": "create sites, buildings, units",
    "meters.read": "meters, their readings and state, device commands, tariffs",
    "meters.write": "gateways, meters, bindings, tariffs, the meter sheet import",
    "readings.write": "submit meter readings",
    "devices.command": "trip, close, restore and sync meters",
    "devices.keep_power": "keep power on a meter in arrears (with a second person's approval)",
    "cutoff.write": "friendly hours, grace, restore thresholds, holidays, meter timetables",
    "payments.create": "create WeChat Pay / Alipay payment orders",
    "payments.read": "payment orders",
    "property.read": "common-area pools and fee schedules",
    "property.write": "pools, sharing rules, allocations, fee schedules and runs",
    "alerts.read": "balance and meter alerts",
    "operators.manage": "create operators, change their roles, sites and passwords",
    "api_keys.manage": "issue and revoke API keys",
    "approvals.read": "pending and decided approvals",
    "approvals.decide": "approve or reject another person's request",
    "audit.read": "the audit log and the hash-chain verification",
}

_STAFF_READ = {"accounts.read", "ledger.read", "sites.read", "meters.read", "payments.read",
               "property.read", "alerts.read", "approvals.read", "reports.read"}

ROLE_PERMISSIONS: dict[Role, frozenset[str]] = {
    # The administrator may do everything staff may do; approvals still need a second
    # person, whoever asks.
    Role.ADMIN: frozenset(PERMISSIONS),
    Role.FINANCE: frozenset(_STAFF_READ | {
        "accounts.open", "money.top_up", "money.refund", "money.reverse", "money.adjust",
        "reconciliation", "periods.close", "payments.create", "property.write",
        "cutoff.write", "approvals.decide"}),
    Role.OPERATOR: frozenset(_STAFF_READ - {"ledger.read", "reports.read"} | {
        "sites.write", "meters.write", "readings.write", "devices.command",
        "devices.keep_power", "cutoff.write", "approvals.decide"}),
    Role.AUDITOR: frozenset({p for p in PERMISSIONS if p.endswith(".read")}
                            | {"audit.read", "events.read"}),
    # Tenants reach only their own accounts (the scope checks see to that).
    Role.TENANT: frozenset({"accounts.read", "alerts.read", "payments.create",
                            "payments.read", "meters.read"}),
}

PUBLIC = "public"          # open paths: health, login, payment notifications
AUTHENTICATED = "authenticated"  # any caller who is logged in (``/me``)


def permissions_of(roles: frozenset[str] | set[str] | list[str]) -> frozenset[str]:
    granted: set[str] = set()
    for role in roles:
        granted |= ROLE_PERMISSIONS[Role(role)]
    return frozenset(granted)


@dataclass(frozen=True)
class Principal:
    """The authenticated caller.

    ``site_ids`` None means every site; ``account_ids`` is set for tenants, whose world
    is their own accounts.
    """

    kind: str                       # operator, tenant, api_key
    id: str
    name: str
    roles: frozenset[str]
    site_ids: frozenset[str] | None = None
    account_ids: frozenset[str] | None = None
    permissions: frozenset[str] = field(default=frozenset())

    @property
    def is_restricted(self) -> bool:
        return self.site_ids is not None or self.account_ids is not None

    def can(self, permission: str) -> bool:
        return permission in (PUBLIC, AUTHENTICATED) or permission in self.permissions

    def sees_site(self, site_id: str | None) -> bool:
        if self.account_ids is not None:
            return False
        return self.site_ids is None or (site_id is not None and site_id in self.site_ids)

    def sees_account(self, account_id: str | None, site_id: str | None) -> bool:
        if self.account_ids is not None:
            return account_id is not None and account_id in self.account_ids
        return self.sees_site(site_id)

    def actor(self, request_id: str | None) -> dict:
        return {"kind": self.kind, "id": self.id, "name": self.name,
                "request_id": request_id}


SENSITIVE_ACTIONS = ("keep_power", "reversal", "adjustment", "refund")


def matrix_rows() -> list[tuple[str, str, list[str]]]:
    """(permission, what it allows, roles that hold it), for the README table."""
    return [(name, text, [r.value for r in Role if name in ROLE_PERMISSIONS[r]])
            for name, text in PERMISSIONS.items()]
