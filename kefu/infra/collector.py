"""The cyclic garbage collector's schedule in a long-running server (``kefu serve``).

CPython runs a full collection whenever enough objects have survived two young ones,
and a full collection walks every live object with the event loop stopped. A server
holding a thousand chats promotes objects steadily (sockets' state, batched messages,
ORM rows), so under load a full collection came every second or two, paused the loop
30-170 ms each time and found a few hundred objects of garbage: it was the chat's p99
(bench/chat.py: 155-185 ms at 1,000 messages/s; 19 ms without).

So ``kefu serve`` freezes what start-up loaded (it lives as long as the process), leaves
the young collections as they are, and runs the full collection on a clock instead
(``KEFU_GC_FULL_COLLECTION_SECONDS``, 300 by default; 0 keeps CPython's own schedule).
Reference counting frees almost everything as before; only garbage in reference cycles
that outlived two young collections waits for the clock.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import time
from collections.abc import AsyncIterator

from prometheus_client import Histogram

log = logging.getLogger(__name__)

# A full collection's threshold so high that only the clock below ever reaches it.
NEVER = 1_000_000_000

FULL_COLLECTIONS = Histogram(
    "kefu_gc_full_collection_seconds",
    "Scheduled full garbage collections: how long each paused the server",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
)


@contextlib.asynccontextmanager
async def server_collector(full_every_s: float) -> AsyncIterator[None]:
    """While the server runs: start-up's objects frozen, full collections on a clock.
    The collector's state is put back on the way out."""
    gc.collect()
    gc.freeze()
    before = gc.get_threshold()
    task: asyncio.Task[None] | None = None
    if full_every_s > 0:
        gc.set_threshold(before[0], before[1], NEVER)
        task = asyncio.create_task(_collect_every(full_every_s))
    try:
        yield
    finally:
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        gc.set_threshold(*before)
        gc.unfreeze()


async def _collect_every(seconds: float) -> None:
    while True:
        await asyncio.sleep(seconds)
        start = time.perf_counter()
        collected = gc.collect()
        paused = time.perf_counter() - start
        FULL_COLLECTIONS.observe(paused)
        log.info(
            "full garbage collection",
            extra={"paused_ms": round(paused * 1000, 1), "collected": collected},
        )
