"""The production WSGI server (waitress) for the web app, run on a background thread."""
from __future__ import annotations

import logging
import threading

from waitress import create_server
from waitress import wasyncore

log = logging.getLogger(__name__)

POLL_SECONDS = 0.2  # how long stop() may wait for the accept loop to notice


class HttpServer:
    """A running waitress server: ``.host``, ``.port``, ``.url``, ``.stop()``."""

    def __init__(self, app, host: str, port: int, threads: int = 8):
        self._server = create_server(app, host=host, port=port, threads=threads, ident="dacs-fhir")
        self.host = self._server.effective_host
        self.port = int(self._server.effective_port)
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
        # waitress' own run() blocks until the process ends; polling lets stop() end it cleanly
        socket_map = self._server._map
        while not self._stopping.is_set():
            wasyncore.loop(timeout=POLL_SECONDS, map=socket_map, count=1)

    def stop(self) -> None:
        """Stop accepting, finish the loop and close every connection and worker thread."""
        if self._stopping.is_set():
            return
        self._stopping.set()
        self._thread.join(timeout=10)
        self._server.task_dispatcher.shutdown()
        wasyncore.close_all(self._server._map)


def start_http(app, host: str = "127.0.0.1", port: int = 0) -> HttpServer:
    """Serve ``app`` on ``host:port`` (port 0 picks a free port) until ``.stop()``."""
    server = HttpServer(app, host, port).start()
    log.info("HTTP server listening on %s", server.url)
    return server
