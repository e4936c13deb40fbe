"""The tenant's signed link to one account (printed as a QR code on the meter box).

The link names the account and a version; the platform signs both. Staff revoke or
reissue it by recording a new version: a link signed for an older version no longer
opens anything, so nothing in a printed link outlives its revocation.
"""

from __future__ import annotations

from uuid import NAMESPACE_URL, UUID, uuid5

from eventsourcing.domain import Aggregate, event

TENANT_LINK_NAMESPACE = uuid5(NAMESPACE_URL, "prepaid-ledger/tenant-link")


def tenant_link_id_for(account_id: UUID | str) -> UUID:
    return uuid5(TENANT_LINK_NAMESPACE, str(account_id))


class TenantLink(Aggregate):
    @event("Started")
    def __init__(self, account_id: str) -> None:
        self.account_id = account_id
        self.link_version = 0
        self.active = False

    @classmethod
    def start(cls, account_id: UUID | str) -> TenantLink:
        return cls._create(cls.Started, id=tenant_link_id_for(account_id),
                           account_id=str(account_id))

    @event("Issued")
    def issue(self, link_version: int, actor: dict) -> None:
        self.link_version = link_version
        self.active = True

    @event("Revoked")
    def revoke(self, link_version: int, actor: dict) -> None:
        self.link_version = link_version
        self.active = False

    def valid(self, version: int) -> bool:
        return self.active and version == self.link_version
