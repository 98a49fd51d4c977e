"""``dacs-fhir import PATH...``: ingest files and folders through the pipeline, with a summary."""
from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path


def _files(paths: list[str]):
    for name in paths:
        p = Path(name)
        if p.is_dir():
            yield from sorted(x for x in p.rglob("*") if x.is_file())
        else:
            yield p


def run(args) -> int:
    from tqdm import tqdm

    from ..composition import build_pipeline
    from ..config import Settings
    from ..pipeline import REJECTED

    pipeline = build_pipeline(Settings.from_env())
    files = list(_files(args.paths))
    counts: Counter = Counter()
    rejected: list[tuple[str, str]] = []
    for path in tqdm(files, unit="file", disable=args.quiet or not sys.stderr.isatty(), file=sys.stderr):
        try:
            data = path.read_bytes()
        except OSError as exc:
            counts[REJECTED] += 1
            rejected.append((str(path), f"unreadable: {exc.strerror}"))
            continue
        item = pipeline.inbox.put("file", data, meta={"name": path.name})
        outcome = pipeline.process(item.id)
        counts[outcome.status] += 1
        if outcome.status == REJECTED:
            rejected.append((str(path), outcome.reason))
    pipeline.tasks.shutdown()  # the rules stage has what the import changed before the command ends
    summary = ", ".join(f"{counts[k]} {k}" for k in ("imported", "updated", "duplicate", "rejected"))
    print(f"{len(files)} files: {summary}")
    for name, reason in rejected:
        print(f"  rejected {name}: {reason}")
    return 1 if rejected and not args.allow_rejected else 0


def register(sub) -> None:
    p = sub.add_parser("import", help="ingest DICOM files / FHIR JSON (files or folders) into the store")
    p.add_argument("paths", nargs="+", metavar="PATH")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.add_argument("--allow-rejected", action="store_true", help="exit 0 even when some files were rejected")
    p.set_defaults(func=run)
