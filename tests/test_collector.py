"""The garbage collector's schedule in `kefu serve` (kefu/infra/collector.py): full
collections on a clock, not under load, and the collector as it was afterwards."""

from __future__ import annotations

import asyncio
import gc
import weakref
from typing import Any

from kefu.infra.collector import NEVER, server_collector


class Node:
    def __init__(self) -> None:
        self.other: Any = self  # a reference cycle: only the cyclic collector frees it


def test_garbage_that_outlived_young_collections_waits_for_the_clock() -> None:
    before = gc.get_threshold()

    async def go() -> None:
        full: list[int] = []

        def seen(phase: str, info: dict[str, int]) -> None:
            if phase == "stop" and info["generation"] == 2:
                full.append(info["collected"])

        async with server_collector(0.3):
            assert gc.get_threshold() == (before[0], before[1], NEVER)
            node = Node()
            ref = weakref.ref(node)
            gc.collect(1)  # survivors of the young generations go to the oldest
            gc.collect(1)
            gc.callbacks.append(seen)
            try:
                del node  # garbage now, in the oldest generation
                for _ in range(3):
                    gc.collect(1)  # young collections do not reach it
                assert ref() is not None and full == []
                deadline = asyncio.get_running_loop().time() + 5
                while ref() is not None:
                    assert asyncio.get_running_loop().time() < deadline, "no full collection"
                    await asyncio.sleep(0.05)
                assert full and full[0] >= 1  # the clock's collection freed it
            finally:
                gc.callbacks.remove(seen)
        assert gc.get_threshold() == before and gc.get_freeze_count() == 0

    asyncio.run(go())


def test_zero_keeps_cpythons_schedule() -> None:
    before = gc.get_threshold()

    async def go() -> None:
        async with server_collector(0):
            assert gc.get_threshold() == before
            assert gc.get_freeze_count() > 0  # start-up's objects, out of its walk
        assert gc.get_freeze_count() == 0

    asyncio.run(go())
