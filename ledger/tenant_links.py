"""Issuing and revoking the signed per-account tenant links (``domain/tenant_link.py``)."""

from __future__ import annotations

from uuid import UUID

from domain.errors import AccountNotFound
from domain.tenant_link import TenantLink, tenant_link_id_for


def current(ledger, account_id: UUID) -> TenantLink | None:
    link = ledger.find(tenant_link_id_for(account_id))
    return link if isinstance(link, TenantLink) else None


def issue(ledger, account_id: UUID, actor: dict) -> TenantLink:
    """A new link version; any earlier link stops working."""
    ledger.accounts.get_account(account_id)  # raises AccountNotFound
    link = current(ledger, account_id) or TenantLink.start(account_id)
    link.issue(link_version=link.link_version + 1, actor=actor)
    ledger.save(link)
    return link


def revoke(ledger, account_id: UUID, actor: dict) -> TenantLink:
    link = current(ledger, account_id)
    if link is None:
        raise AccountNotFound(f"account {account_id} has no tenant link")
    if link.active:
        link.revoke(link_version=link.link_version + 1, actor=actor)
        ledger.save(link)
    return link


class TenantLinkBook:
    """The tenant links of one ledger's accounts: what a page is handed to show, issue
    and revoke them."""

    def __init__(self, ledger) -> None:
        self.ledger = ledger

    def current(self, account_id: UUID) -> TenantLink | None:
        return current(self.ledger, account_id)

    def issue(self, account_id: UUID, actor: dict) -> TenantLink:
        return issue(self.ledger, account_id, actor)

    def revoke(self, account_id: UUID, actor: dict) -> TenantLink:
        return revoke(self.ledger, account_id, actor)
