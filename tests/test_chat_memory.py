"""A widget's connection leaves no reference cycle behind (kefu/web/http.py): with full
garbage collections on a clock (kefu/infra/collector.py), a cycle per connection would
hold its memory until the next one, and a burst of widgets connecting would grow the
server by kilobytes each."""

from __future__ import annotations

import gc
from collections import Counter
from pathlib import Path

from tests.chat_support import Client, database_for, live_server, run


def test_connecting_and_leaving_leaves_no_cycles_of_the_http_protocol(tmp_path: Path) -> None:
    url = database_for("sqlite", tmp_path)
    with live_server(url, tmp_path, None) as server:

        async def visitors() -> None:
            for _ in range(20):
                visitor = await Client.connect(server.ws_url)
                await visitor.expect(type="welcome")
                await visitor.ws.close()

        gc.collect()  # what earlier tests left
        run(visitors())
        gc.set_debug(gc.DEBUG_SAVEALL)
        try:
            gc.collect()
            kinds = Counter(type(o).__name__ for o in gc.garbage)
        finally:
            gc.set_debug(0)
            gc.garbage.clear()
    assert kinds["HttpToolsProtocol"] == 0 and kinds["HttpProtocol"] == 0, kinds.most_common(8)
