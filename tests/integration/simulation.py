"""Runs a meter simulation on real TCP ports in a background event loop, for tests."""

from __future__ import annotations

import asyncio
import socket
import threading
from contextlib import contextmanager

from adapters.simulator import Simulation, SimulationConfig

TEST_MASTER_KEY = bytes.fromhex("00112233445566778899AABBCCDDEEFF")  # test fixture only


def free_port_block(count: int) -> int:
    """A first port such that ``count`` consecutive ports are free (best effort)."""
    for _ in range(50):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            base = s.getsockname()[1]
        if base + count >= 65000:
            continue
        ok = True
        for port in range(base, base + count):
            with socket.socket() as probe:
                try:
                    probe.bind(("127.0.0.1", port))
                except OSError:
                    ok = False
                    break
        if ok:
            return base
    raise RuntimeError("no free port block")


class Running:
    def __init__(self, simulation: Simulation, loop: asyncio.AbstractEventLoop) -> None:
        self.simulation = simulation
        self.loop = loop

    def run(self, coroutine):
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout=30)

    def call(self, function, *args):
        async def wrapped():
            return function(*args)
        return self.run(wrapped())


@contextmanager
def running_simulation(**overrides):
    config = SimulationConfig(**{"meters": 4, "gateways": 2, "baud": 115200,
                                 "port_base": free_port_block(overrides.get("gateways", 2)),
                                 **overrides})
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    simulation = asyncio.run_coroutine_threadsafe(_make(config), loop).result(timeout=30)
    try:
        yield Running(simulation, loop)
    finally:
        asyncio.run_coroutine_threadsafe(simulation.stop(), loop).result(timeout=30)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)


async def _make(config: SimulationConfig) -> Simulation:
    simulation = Simulation(config, TEST_MASTER_KEY)
    await simulation.start()
    return simulation
