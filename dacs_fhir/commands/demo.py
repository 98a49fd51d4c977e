"""``dacs-fhir demo``: ``serve`` with sample dose objects loaded."""
from __future__ import annotations

import logging
from pathlib import Path

from .serve import Services, add_switches, serve_forever

log = logging.getLogger(__name__)

# the shared vendor corpus, when the checkout sits beside it (DESIGN.md §7)
CORPUS = Path(__file__).resolve().parents[2].parent / "shared" / "corpus"


def load_samples(services: Services) -> int:
    """Ingest the vendor corpus when present, else the built-in synthetic samples."""
    from ..samples import sample_objects

    pipeline = services.pipeline
    n = 0
    if CORPUS.is_dir():
        for path in sorted(CORPUS.glob("rdsr/*.dcm")) + sorted(CORPUS.glob("images/*.dcm")):
            item = pipeline.inbox.put("file", path.read_bytes(), meta={"name": path.name})
            n += pipeline.process(item.id).status in ("imported", "updated")
    for name, data in sample_objects():
        item = pipeline.inbox.put("file", data, meta={"name": name})
        n += pipeline.process(item.id).status in ("imported", "updated")
    return n


def run(args) -> int:
    from ..config import Settings

    services = Services(Settings.from_env(), http=not args.no_http, dicom=not args.no_dicom, mllp=not args.no_mllp)
    log.info("loaded %d sample dose reports", load_samples(services))
    return serve_forever(services)


def register(sub) -> None:
    p = sub.add_parser("demo", help="serve with sample dose reports loaded")
    add_switches(p)
    p.set_defaults(func=run)
