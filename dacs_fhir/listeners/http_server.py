"""The production WSGI server (waitress) for the web app, run on a background thread."""
from __future__ import annotations

import ipaddress
import logging
import threading
import time
from typing import Optional

from waitress import create_server, wasyncore

from ..config import Settings
from ..errors import ConfigurationError

log = logging.getLogger(__name__)

POLL_SECONDS = 0.2  # how long stop() may wait for the accept loop to notice
BODY_SLACK = 1024 * 1024  # waitress refuses bodies this far over the app's limit before buffering them


def is_loopback(host: str) -> bool:
    """Whether ``host`` (a bind address or a Host header's name) is this machine only."""
    if host.lower() in ("localhost", "localhost.localdomain"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def adjustments(settings: Settings) -> dict:
    """waitress arguments from the ``DACS_HTTP_*`` settings.

    A connection that sends nothing for ``channel_timeout`` seconds while its request is incomplete
    is closed at the next sweep (every ``cleanup_interval``), so half-sent requests hold a slot for
    seconds, not minutes; ``connection_limit`` is well above waitress' 100, which 110 stalled
    sockets used to fill, locking everyone out."""
    return {
        "threads": settings.http_threads,
        "channel_timeout": settings.http_channel_timeout,
        "cleanup_interval": settings.http_cleanup_interval,
        "connection_limit": settings.http_connection_limit,
        "backlog": settings.http_backlog,
        "recv_bytes": settings.http_recv_bytes,
        # waitress buffers a whole body before the app sees it: cap it near the app's own limit
        "max_request_body_size": settings.max_request_bytes + BODY_SLACK,
    }


class HttpServer:
    """A running waitress server: ``.host``, ``.port``, ``.url``, ``.stop()``."""

    def __init__(self, app, host: str, port: int, settings: Optional[Settings] = None):
        settings = settings or getattr(app, "config", {}).get("DACS_SETTINGS") or Settings()
        if not settings.base_url and not is_loopback(host):
            raise ConfigurationError(f"DACS_BASE_URL must be set when the HTTP listener binds {host}, a non-loopback "
                             "address: links in responses would otherwise carry whatever Host a client sends")
        self._server = create_server(app, host=host, port=port, ident="dacs-fhir", **adjustments(settings))
        self.host = self._server.effective_host
        self.port = int(self._server.effective_port)
        self._header_timeout = settings.http_header_timeout
        self._sweep_every = settings.http_cleanup_interval
        self._header_started: dict[object, float] = {}  # request parser -> when its first byte was seen
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"http-{self.port}", daemon=True)

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def start(self) -> "HttpServer":
        self._thread.start()
        return self

    def _run(self) -> None:
        # waitress' own run() blocks until the process ends; polling lets stop() end it cleanly.
        # poll(2), not select(2): select cannot watch descriptors above 1023 (FD_SETSIZE)
        socket_map = self._server._map
        next_sweep = 0.0
        while not self._stopping.is_set():
            wasyncore.loop(timeout=POLL_SECONDS, use_poll=True, map=socket_map, count=1)
            now = time.monotonic()
            if now >= next_sweep:
                self._close_slow_headers(now)
                next_sweep = now + self._sweep_every

    def _close_slow_headers(self, now: float) -> None:
        """Close connections whose request headers have been arriving for longer than the header
        timeout: a client trickling a byte now and then is never silent long enough for waitress'
        channel_timeout (slowloris). Runs on the loop thread, which owns the channels; reads
        waitress' channel and parser attributes (a canary test checks they are still there)."""
        started = {}
        for channel in list(getattr(self._server, "active_channels", {}).values()):
            parser = getattr(channel, "request", None)
            if parser is None or getattr(parser, "headers_finished", True) or getattr(channel, "requests", None):
                continue
            started[parser] = first = self._header_started.get(parser, now)
            if now - first > self._header_timeout:
                channel.will_close = True  # as waitress' own maintenance() does
        self._header_started = started

    def stop(self) -> None:
        """Stop accepting, finish the loop and close every connection and worker thread."""
        if self._stopping.is_set():
            return
        self._stopping.set()
        self._thread.join(timeout=10)
        self._server.task_dispatcher.shutdown()
        wasyncore.close_all(self._server._map)


def start_http(app, host: str = "127.0.0.1", port: int = 0, settings: Optional[Settings] = None) -> HttpServer:
    """Serve ``app`` on ``host:port`` (port 0 picks a free port) until ``.stop()``; the listener's
    settings are ``settings`` or the app's (``create_app`` keeps them in ``DACS_SETTINGS``)."""
    server = HttpServer(app, host, port, settings).start()
    log.info("HTTP server listening on %s", server.url)
    return server
