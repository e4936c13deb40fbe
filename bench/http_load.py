"""An open-loop HTTP/1.1 load generator on raw asyncio streams.

Requests are sent at fixed instants (``begin + i / rate``) whatever the server does, over
a fixed set of keep-alive connections. A request's latency runs from its *scheduled*
instant to the end of its answer, so time spent waiting for a free connection counts
against the server (no coordinated omission). Requests are serialised before the clock
starts, and the answers are parsed only as far as status and length, so the generator
needs a few percent of one core at a few hundred requests a second: a general HTTP
client (httpx) spent more time in its own connection pool than the server spent
answering, and the benchmark then measured the client.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field


@dataclass
class LoadResult:
    latencies_s: list[float] = field(default_factory=list)
    statuses: dict[int, int] = field(default_factory=dict)
    errors: int = 0  # status >= 300, a broken connection, or no answer in time
    elapsed_s: float = 0.0

    @property
    def sent(self) -> int:
        return len(self.latencies_s)

    def percentile_ms(self, fraction: float) -> float:
        ordered = sorted(self.latencies_s)
        return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))] * 1000

    @property
    def throughput(self) -> float:
        return self.sent / self.elapsed_s if self.elapsed_s else 0.0


def request_bytes(method: str, path: str, host: str, body: bytes = b"",
                  headers: dict[str, str] | None = None) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host}", f"Content-Length: {len(body)}"]
    lines += [f"{name}: {value}" for name, value in (headers or {}).items()
              if name.lower() not in ("host", "content-length")]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


async def _read_answer(reader: asyncio.StreamReader) -> int:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    length, chunked = 0, False
    for line in lines[1:]:
        name, _, value = line.partition(":")
        name = name.strip().lower()
        if name == "content-length":
            length = int(value.strip())
        elif name == "transfer-encoding" and "chunked" in value.lower():
            chunked = True
    if chunked:
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            await reader.readexactly(size + 2)
            if size == 0:
                break
    elif length:
        await reader.readexactly(length)
    return status


async def run_open_loop(host: str, port: int, requests: list[bytes], rate: float,
                        connections: int = 64, timeout_s: float = 10.0) -> LoadResult:
    """Send ``requests`` in order at ``rate`` per second; wait for every answer."""
    result = LoadResult()
    queue: asyncio.Queue = asyncio.Queue()

    async def worker() -> None:
        reader = writer = None
        while True:
            item = await queue.get()
            if item is None:
                break
            scheduled, payload = item
            try:
                if writer is None:
                    reader, writer = await asyncio.open_connection(host, port)
                writer.write(payload)
                status = await asyncio.wait_for(_read_answer(reader), timeout_s)
            except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError,
                    asyncio.TimeoutError, ValueError, IndexError):
                result.errors += 1
                status = 0
                if writer is not None:
                    writer.close()
                reader = writer = None
            else:
                if status >= 300:
                    result.errors += 1
            result.statuses[status] = result.statuses.get(status, 0) + 1
            result.latencies_s.append(time.perf_counter() - scheduled)
        if writer is not None:
            writer.close()

    workers = [asyncio.create_task(worker()) for _ in range(connections)]
    begin = time.perf_counter() + 0.05
    for index, payload in enumerate(requests):
        scheduled = begin + index / rate
        delay = scheduled - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        queue.put_nowait((scheduled, payload))
    for _ in workers:
        queue.put_nowait(None)
    await asyncio.gather(*workers)
    result.elapsed_s = time.perf_counter() - begin
    return result
