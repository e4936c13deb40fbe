"""The group committer: batches, and stays exact when its own view of an account is stale."""

from __future__ import annotations

import threading
import uuid
from concurrent.futures import ThreadPoolExecutor

from domain.errors import InsufficientBalance
from ledger.app import Ledger


def test_commands_sent_together_share_saves_and_all_count(platform):
    ledger = platform.ledger
    account = uuid.UUID(ledger.open_account(name="Shop", actor={}).result["account_id"])
    barrier = threading.Barrier(8)

    def client(index: int) -> None:
        barrier.wait()
        for n in range(20):
            ledger.top_up(account, amount_fen=10, channel="cash", actor={},
                          idempotency_key=f"{index}-{n}")

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(client, range(8)))
    committer = ledger.committers[0]
    assert committer.commands_saved == 160
    assert committer.batches_saved < 160  # some commands shared a save
    assert ledger.get_account(account).balance_fen("electricity") == 1600


def test_another_process_writing_the_same_account_is_never_overwritten(platform):
    settings = platform.settings
    first = Ledger(settings.eventsourcing_env())
    second = Ledger(settings.eventsourcing_env())
    try:
        account = uuid.UUID(first.open_account(name="Shop", actor={}).result["account_id"])
        first.top_up(account, amount_fen=100, channel="cash", actor={})  # now hot in first
        second.top_up(account, amount_fen=40, channel="cash", actor={})  # first's view stale
        third = first.top_up(account, amount_fen=7, channel="cash", actor={})
        assert third.result["balance_after_fen"] == 147
        refund = first.refund(account, amount_fen=147, channel="cash", actor={})
        assert refund.result["balance_after_fen"] == 0
        second.top_up(account, amount_fen=5, channel="cash", actor={})
        # On its stale view the first would refuse; judged on the stored state it pays.
        assert first.refund(account, amount_fen=5, channel="cash",
                            actor={}).result["balance_after_fen"] == 0
        try:
            first.refund(account, amount_fen=1, channel="cash", actor={})
        except InsufficientBalance:
            pass
        else:
            raise AssertionError("refund of an empty wallet was accepted")
        events = list(first.events.get(account))
        assert [e.originator_version for e in events] == list(range(1, len(events) + 1))
        assert first.get_account(account).balance_fen("electricity") == 0
    finally:
        first.close()
        second.close()
