"""The low-latency feed: a WebSocket server (FastAPI + uvicorn, in a thread) sending every client one JSON message
per processed frame (`tasks.live.message`), and ``GET /status`` with the camera's health (a `live_status` row).

    ws://127.0.0.1:8765/feed      one text message per processed frame, from the moment the client connects
    http://127.0.0.1:8765/status  JSON: state, fps in/out, frames dropped, latency p50/p95, people now, ...

It listens on loopback unless told otherwise, and refuses requests whose Host header is not this machine's when it
does (no DNS rebinding). The model thread never waits for a client: `Feed.publish` hands the text to the server's
event loop, and each client has a queue of `FeedOptions.client_queue` messages; a client that reads slower than the
camera loses its oldest messages (`Feed.client_dropped` counts them; each message carries ``frame_idx`` so a client
sees the gap).
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable

from tasks.live.options import FeedOptions
from tasks.ops.listen import LOOPBACK, bind, shown_host


class Feed:
    """The WebSocket feed of one live camera; `close()` stops it."""

    def __init__(self, options: FeedOptions, status: Callable[[], dict] | None = None, *, flag: str = "--feed-port"):
        import uvicorn
        from fastapi import FastAPI
        from fastapi.encoders import jsonable_encoder
        from fastapi.responses import JSONResponse
        from starlette.middleware.trustedhost import TrustedHostMiddleware
        from starlette.routing import WebSocketRoute

        self.options = options
        self._sock = bind(options.host, options.port, flag=flag)
        self.port = self._sock.getsockname()[1]
        self.url = f"ws://{shown_host(options.host)}:{self.port}/feed"
        self.status_url = f"http://{shown_host(options.host)}:{self.port}/status"
        self.published = 0  # messages handed to the feed
        self.client_dropped = 0  # messages a slow client lost
        self._clients: set[asyncio.Queue] = set()
        self._loop: asyncio.AbstractEventLoop | None = None

        app = FastAPI(title="Human3R live feed", docs_url=None, redoc_url=None, openapi_url=None)
        if options.host in LOOPBACK:
            app.add_middleware(TrustedHostMiddleware, allowed_hosts=["127.0.0.1", "localhost", "[::1]", "::1"])

        app.router.routes.append(WebSocketRoute("/feed", self._serve_client))  # plain Starlette: no parameter parsing

        @app.get("/status")
        def health() -> JSONResponse:
            return JSONResponse(jsonable_encoder(status() if status is not None else {}))

        self._server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off",
                                                     timeout_graceful_shutdown=1))
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [self._sock]},
                                        name="live-feed", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started and self._thread.is_alive() and time.monotonic() < deadline:
            time.sleep(0.01)

    @property
    def clients(self) -> int:
        return len(self._clients)

    def publish(self, text: str) -> None:
        """Send `text` to every connected client (never blocks)."""
        self.published += 1
        loop = self._loop
        if loop is not None and self._clients:
            try:
                loop.call_soon_threadsafe(self._fan_out, text)
            except RuntimeError:  # the loop closed (shutting down)
                pass

    def _fan_out(self, text: str) -> None:
        for queue in list(self._clients):
            if queue.full():
                queue.get_nowait()
                self.client_dropped += 1
            queue.put_nowait(text)

    async def _serve_client(self, ws) -> None:
        from starlette.websockets import WebSocketDisconnect

        await ws.accept()
        self._loop = asyncio.get_running_loop()
        queue: asyncio.Queue = asyncio.Queue(self.options.client_queue)
        self._clients.add(queue)
        closed = asyncio.ensure_future(_until_closed(ws))
        try:
            while True:
                get = asyncio.ensure_future(queue.get())
                done, _ = await asyncio.wait({get, closed}, return_when=asyncio.FIRST_COMPLETED)
                if closed in done:
                    get.cancel()
                    return
                await ws.send_text(get.result())
        except (WebSocketDisconnect, RuntimeError, OSError):
            return
        finally:
            self._clients.discard(queue)
            closed.cancel()

    def close(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=5)
        self._sock.close()


async def _until_closed(ws) -> None:
    """Returns when the client goes away (what it sends is ignored)."""
    while True:
        message = await ws.receive()
        if message["type"] == "websocket.disconnect":
            return
