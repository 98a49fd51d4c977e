"""``dacs-fhir inbox list|show|replay``: see the raw inbox and replay items after a fix.

Output carries ids, states, reasons and channel metadata only: never patient data.
"""
from __future__ import annotations

import json
import sys
from datetime import datetime, timezone


def _inbox():
    from ..config import Settings
    from ..inbox import Inbox

    return Inbox(Settings.from_env().inbox_dir)


def _when(ts: float) -> str:
    return datetime.fromtimestamp(ts, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ") if ts else "-"


def list_items(args) -> int:
    n = 0
    for item in _inbox().list(status=args.status, kind=args.kind):
        n += 1
        print(f"{item.id}\t{item.status}\t{item.attempts}\t{item.size}\t{_when(item.received)}\t{item.reason}")
    print(f"{n} item(s)", file=sys.stderr)
    return 0


def show(args) -> int:
    from dataclasses import asdict

    inbox = _inbox()
    try:
        item = inbox.get(args.id)
    except KeyError:
        print(f"dacs-fhir inbox show: no item {args.id}", file=sys.stderr)
        return 1
    record = asdict(item)
    record.update(id=item.id, path=str(inbox.path(item.id)), received=_when(item.received), updated=_when(item.updated))
    print(json.dumps(record, indent=2, sort_keys=True))
    return 0


def replay(args) -> int:
    from ..config import Settings
    from ..composition import build_pipeline
    from ..pipeline import REJECTED

    pipeline = build_pipeline(Settings.from_env())
    ids = list(args.ids)
    if args.failed:
        ids += [item.id for item in pipeline.inbox.list(status="failed")]
    if not ids:
        print("dacs-fhir inbox replay: nothing to replay (give IDs or --failed)", file=sys.stderr)
        return 2
    bad = 0
    for item_id in dict.fromkeys(ids):  # each once, in order
        try:
            pipeline.inbox.get(item_id)
        except KeyError:
            print(f"{item_id}\tmissing")
            bad += 1
            continue
        try:
            outcome = pipeline.process(item_id)
        except Exception as exc:  # noqa: BLE001 - report the item and go on with the others; it stays as it was
            print(f"{item_id}\terror\t{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}".rstrip())
            bad += 1
            continue
        bad += outcome.status == REJECTED
        print(f"{item_id}\t{outcome.status}\t{outcome.reason}".rstrip())
    return 1 if bad else 0


def register(sub) -> None:
    p = sub.add_parser("inbox", help="list, show and replay raw inbound objects")
    actions = p.add_subparsers(dest="inbox_command", metavar="ACTION", required=True)
    ls = actions.add_parser("list", help="items with status, attempts, size, received time and reason")
    ls.add_argument("--status", choices=("pending", "done", "failed"))
    ls.add_argument("--kind", help="channel: dicom, hl7v2, fhir, file")
    ls.set_defaults(func=list_items)
    sh = actions.add_parser("show", help="one item's state and metadata")
    sh.add_argument("id", metavar="ID", help="KIND/KEY as printed by list")
    sh.set_defaults(func=show)
    rp = actions.add_parser("replay", help="process items again (after a fix); prints each outcome")
    rp.add_argument("ids", nargs="*", metavar="ID")
    rp.add_argument("--failed", action="store_true", help="every failed item")
    rp.set_defaults(func=replay)
