"""Awaiting the committer from the event loop: a caller that goes away stops waiting, but
never cancels a command the committer may already be storing."""

from __future__ import annotations

import asyncio
from concurrent.futures import Future

import pytest

from api.routes.payments import settled


def test_settled_returns_the_committed_result():
    async def main():
        future: Future = Future()
        asyncio.get_running_loop().call_later(0.01, future.set_result, "credited")
        return await settled(future)

    assert asyncio.run(main()) == "credited"


def test_settled_raises_the_commands_error():
    async def main():
        future: Future = Future()
        asyncio.get_running_loop().call_later(0.01, future.set_exception,
                                              ValueError("wrong amount"))
        return await settled(future)

    with pytest.raises(ValueError, match="wrong amount"):
        asyncio.run(main())


def test_a_caller_hanging_up_leaves_the_command_to_finish():
    async def main():
        future: Future = Future()
        waiting = asyncio.create_task(settled(future))
        await asyncio.sleep(0.01)
        waiting.cancel()  # the provider closed the connection
        with pytest.raises(asyncio.CancelledError):
            await waiting
        assert not future.cancelled()
        future.set_result("credited")  # the committer finishes: no error anywhere
        await asyncio.sleep(0.01)
        return future.result()

    assert asyncio.run(main()) == "credited"
