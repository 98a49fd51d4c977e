"""``dacs-fhir demo``: ``serve`` with sample dose objects loaded."""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Optional

from .serve import Services, add_switches, serve_forever

log = logging.getLogger(__name__)


def corpus_dir() -> Optional[Path]:
    """The shared vendor corpus beside a source checkout (README.md), else None (e.g. an installed wheel)."""
    root = Path(__file__).resolve().parents[2]
    if not (root / "setup.cfg").is_file():  # installed: no checkout around the package
        return None
    corpus = root.parent / "shared" / "corpus"
    return corpus if corpus.is_dir() else None


def load_samples(services: Services) -> int:
    """Ingest the built-in synthetic samples, and before them the vendor corpus when present."""
    from ..samples import sample_objects

    pipeline = services.pipeline
    n = 0
    corpus = corpus_dir()
    if corpus is not None:
        for path in sorted(corpus.glob("rdsr/*.dcm")) + sorted(corpus.glob("images/*.dcm")):
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
