"""Progress of long commands: a bar with counts and rate on a terminal (``rich``), plain
lines otherwise (a log file, cron mail, a pipe).

    with progress("copying events", total=n) as step:
        for ...:
            step(1)
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TextIO

# Plain lines: at most one every this many seconds (and one at the end).
PLAIN_EVERY_S = 5.0

Step = Callable[[int], None]


def _on_terminal(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


@contextmanager
def progress(label: str, total: int | None = None, *, stream: TextIO | None = None,
             every_s: float = PLAIN_EVERY_S) -> Iterator[Step]:
    """Yield ``step(n)``: advance by ``n``. Writes to ``stream`` (default: stderr)."""
    stream = stream or sys.stderr
    if _on_terminal(stream):
        from rich.console import Console
        from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn,
                                   TimeElapsedColumn, TimeRemainingColumn)

        columns = [TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                   TextColumn("{task.fields[rate]}/s"), TimeElapsedColumn(),
                   TimeRemainingColumn()]
        started = time.monotonic()
        with Progress(*columns, console=Console(file=stream)) as bar:
            task = bar.add_task(label, total=total, rate="0")
            done = 0

            def step(n: int = 1) -> None:
                nonlocal done
                done += n
                elapsed = max(time.monotonic() - started, 1e-9)
                bar.update(task, advance=n, rate=f"{done / elapsed:,.0f}")

            yield step
        return
    started = last = time.monotonic()
    done = 0

    def line(final: bool = False) -> None:
        elapsed = max(time.monotonic() - started, 1e-9)
        of = f"/{total}" if total is not None else ""
        end = " done" if final else ""
        stream.write(f"{label}: {done}{of} ({done / elapsed:,.0f}/s){end}\n")
        stream.flush()

    def step(n: int = 1) -> None:
        nonlocal done, last
        done += n
        if time.monotonic() - last >= every_s:
            last = time.monotonic()
            line()

    yield step
    line(final=True)
