"""``dacs-fhir pacs pull --since DATE``: load a period's dose objects from a PACS (C-FIND, then C-MOVE or C-GET)."""
from __future__ import annotations

import sys
from datetime import date


def _date(text: str) -> date:
    try:
        return date.fromisoformat(text) if "-" in text else date(int(text[:4]), int(text[4:6]), int(text[6:8]))
    except (ValueError, IndexError):
        raise ValueError(f"not a date (YYYY-MM-DD): {text!r}") from None


def run(args) -> int:
    from collections import Counter

    from tqdm import tqdm

    from ..config import Settings
    from ..pacs import PacsClient, PacsError, Peer, pull

    settings = Settings.from_env()
    try:
        peer = Peer.parse(args.pacs or settings.pacs)
        since, until = _date(args.since), (_date(args.until) if args.until else None)
    except ValueError as err:
        print(f"dacs-fhir pacs pull: {err} (set --pacs or DACS_PACS)", file=sys.stderr)
        return 2
    # receive here (C-GET always; C-MOVE with --listen), else the running `dacs-fhir serve` receives the C-MOVE
    receiving = args.method == "get" or args.listen
    received: list = []
    scp = pipeline = handler = None
    if receiving:
        from ..composition import build_pipeline
        from ..listeners.dicom_scp import StoreHandler, start_scp

        pipeline = build_pipeline(settings)

        def on_stored(item):
            received.append(item.id)
            pipeline.enqueue(item)

        if args.method == "get":
            handler = StoreHandler(pipeline.inbox, on_stored)
        else:
            scp = start_scp(settings, on_stored, inbox=pipeline.inbox)
    bar = tqdm(unit="series", disable=args.quiet or not sys.stderr.isatty(), file=sys.stderr)

    def progress(stage: str, n: int) -> None:
        if stage == "series":
            bar.reset(total=n)
        else:
            bar.update(n)

    try:
        summary = pull(PacsClient(settings, peer), since, until, args.modality or (), args.series_modality,
                       method=args.method, destination=args.move_dest or settings.ae_title,
                       store_handler=handler, progress=progress)
    except PacsError as err:
        print(f"dacs-fhir pacs pull: {err}", file=sys.stderr)
        return 1
    finally:
        bar.close()
        if scp is not None:
            scp.stop()
    print(f"{peer}: {summary.line()}")
    for line in summary.errors:
        print(f"  {line}")
    if receiving:
        assert pipeline is not None  # built above whenever this command receives
        pipeline.tasks.drain(timeout=3600)
        outcomes: Counter[str] = Counter()
        for item_id in received:
            item = pipeline.inbox.get(item_id)
            outcomes[item.meta.get("outcome", item.status) if item.status != "failed" else "rejected"] += 1
        print(f"received {len(received)} objects: " + ", ".join(f"{n} {k}" for k, n in sorted(outcomes.items())))
    return 1 if summary.failed or summary.errors else 0


def register(sub) -> None:
    p = sub.add_parser("pacs", help="query/retrieve dose objects from a PACS")
    actions = p.add_subparsers(dest="pacs_command", metavar="ACTION", required=True)
    pull = actions.add_parser("pull", help="C-FIND a period's studies, then C-MOVE/C-GET their dose series")
    pull.add_argument("--since", required=True, metavar="DATE", help="first study date (YYYY-MM-DD)")
    pull.add_argument("--until", metavar="DATE", help="last study date (default: no end)")
    pull.add_argument("--modality", nargs="+", metavar="MOD", help="only studies with these modalities (Modalities in Study)")
    pull.add_argument("--series-modality", nargs="+", default=["SR"], metavar="MOD",
                      help="series modalities that hold dose objects (default: SR; dose screens are found by description)")
    pull.add_argument("--pacs", metavar="AET@HOST:PORT", help="the PACS (default: DACS_PACS)")
    pull.add_argument("--method", choices=("move", "get"), default="move",
                      help="C-MOVE to our SCP (the PACS must know our AE title) or C-GET on the query association")
    pull.add_argument("--move-dest", metavar="AET", help="C-MOVE destination (default: our AE title, DACS_AE_TITLE)")
    pull.add_argument("--listen", action="store_true",
                      help="run a Storage SCP on DACS_DICOM in this process for the C-MOVE (when `dacs-fhir serve` is not running)")
    pull.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    pull.set_defaults(func=run)
