"""The HTTP protocol `kefu serve` runs: uvicorn's httptools protocol, with one leak
of memory between full garbage collections closed.

When a request upgrades to a websocket, uvicorn hands the socket to a websocket
protocol and forgets the HTTP protocol, whose parser still holds its callbacks: a
reference cycle (protocol, parser, flow control, transport, about 18 objects and 5 KB
per connection) that only a full collection frees. uvicorn breaks that cycle when a
connection is lost, which an upgraded connection never is for this protocol. With
full collections on a clock (infra/collector.py), a burst of widgets connecting would
hold all of it until the next one; released at the upgrade, it is freed at once.
"""

from __future__ import annotations

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol


class HttpProtocol(HttpToolsProtocol):
    def handle_websocket_upgrade(self) -> None:
        super().handle_websocket_upgrade()
        # The socket is the websocket protocol's now; nothing parses HTTP on it again.
        self.parser = None  # type: ignore[assignment]
