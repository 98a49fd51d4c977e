"""``dacs-fhir serve``: FHIR REST API, DICOM SCP and MLLP listener in one process (each can be off)."""
from __future__ import annotations

import logging
import signal
import threading
from typing import Protocol

log = logging.getLogger(__name__)



class Handle(Protocol):
    """A started listener: the port it bound, and how to stop it."""

    @property
    def port(self) -> int: ...

    def stop(self) -> None: ...


class Services:
    """The listeners of one process, started and stopped together."""

    def __init__(self, settings, http=True, dicom=True, mllp=True):
        from ..composition import build_pipeline

        self.settings = settings
        self.pipeline = build_pipeline(settings)
        self.handles: dict[str, Handle] = {}
        self.enabled = {"http": http, "dicom": dicom, "mllp": mllp}

    def start(self) -> "Services":
        s = self.settings
        if self.enabled["http"]:
            from ..app import create_app
            from ..listeners.http_server import start_http

            app = create_app(self.pipeline)
            self.handles["http"] = start_http(app, *s.http)
            log.info("FHIR REST API on http://%s:%s/fhir", s.http[0], self.handles["http"].port)
        if self.enabled["dicom"]:
            from ..listeners.dicom_scp import start_scp

            self.handles["dicom"] = start_scp(s, self.pipeline.enqueue)
            log.info("DICOM SCP %s on %s:%s", s.ae_title, s.dicom[0], self.handles["dicom"].port)
        if self.enabled["mllp"]:
            from ..listeners.mllp import start_mllp_for

            self.handles["mllp"] = start_mllp_for(s, self.pipeline)
            log.info("MLLP listener on %s:%s", s.mllp[0], self.handles["mllp"].port)
        recovered = self.pipeline.recover_pending()
        if recovered:
            log.info("re-enqueued %d pending inbox items", recovered)
        if s.destinations:
            from .. import delivery

            delivery.resume(self.pipeline.deliveries, s)
        return self

    def stop(self) -> None:
        self.pipeline.deliveries.stop()
        for name, handle in reversed(list(self.handles.items())):
            try:
                handle.stop()
            except Exception:
                log.exception("stopping %s failed", name)
        self.handles.clear()
        self.pipeline.tasks.shutdown()  # objects received last: to the broker now, not at the next start


def serve_forever(services: Services) -> int:
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    services.start()
    try:
        stop.wait()
    finally:
        services.stop()
    return 0


def run(args) -> int:
    from ..config import Settings

    return serve_forever(Services(Settings.from_env(), http=not args.no_http, dicom=not args.no_dicom, mllp=not args.no_mllp))


def add_switches(p) -> None:
    p.add_argument("--no-http", action="store_true", help="do not start the FHIR REST API")
    p.add_argument("--no-dicom", action="store_true", help="do not start the DICOM SCP")
    p.add_argument("--no-mllp", action="store_true", help="do not start the HL7 v2 MLLP listener")


def register(sub) -> None:
    p = sub.add_parser("serve", help="run the FHIR API, DICOM SCP and MLLP listener (SQLite + in-process tasks by default)")
    add_switches(p)
    p.set_defaults(func=run)
