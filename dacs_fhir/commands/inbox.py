"""``dacs-fhir inbox list|show|replay|purge``: see the raw inbox, replay items after a fix, purge old ones.

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


def _bad_id(command: str, item_id: str) -> bool:
    """True (and says so) when ``item_id`` is no inbox id: nothing outside the inbox is ever opened."""
    from ..inbox import split_id

    try:
        split_id(item_id)
    except ValueError:
        print(f"dacs-fhir inbox {command}: not an inbox id (KIND/KEY as printed by list): {item_id[:80]!r}", file=sys.stderr)
        return True
    return False


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

    if _bad_id("show", args.id):
        return 2
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
    from ..composition import build_pipeline
    from ..config import Settings
    from ..pipeline import REJECTED

    pipeline = build_pipeline(Settings.from_env())
    ids = list(args.ids)
    if any([_bad_id("replay", i) for i in ids]):
        return 2
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
    pipeline.tasks.shutdown()  # the rules stage has what the replays changed before the command ends
    return 1 if bad else 0


def purge(args) -> int:
    """Remove done / failed items past their retention (settings, or ``--older-than``); never pending ones."""
    from ..config import Settings
    from ..inbox import DONE, FAILED, Inbox
    from ..inbox_retention import purge as purge_items

    settings = Settings.from_env()
    statuses = args.status or [DONE, FAILED]
    retention = {DONE: settings.inbox_retention_days or None, FAILED: settings.inbox_failed_retention_days or None}
    days = {s: (args.older_than if args.older_than is not None else retention[s]) for s in statuses}
    done = purge_items(Inbox(settings.inbox_dir), days, dry_run=args.dry_run)
    for item in done.items:
        print(f"{item.id}\t{item.status}\t{item.size}\t{_when(item.updated)}")
    verb = "would remove" if args.dry_run else "removed"
    kept = f"; {done.kept_in_open_journals} in journals still in use kept" if done.kept_in_open_journals else ""
    print(f"{verb} {len(done.items)} item(s), {done.bytes} bytes{kept}", file=sys.stderr)
    return 0


def _days(value: str) -> float:
    days = float(value)
    if not days >= 0:
        raise ValueError(value)
    return days


def register(sub) -> None:
    p = sub.add_parser("inbox", help="list, show, replay and purge raw inbound objects")
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
    pg = actions.add_parser("purge", help="remove done/failed items past retention (never pending ones)")
    pg.add_argument("--older-than", type=_days, metavar="DAYS",
                    help="age of the last outcome; default DACS_INBOX_RETENTION_DAYS (done), _FAILED_RETENTION_DAYS (failed)")
    pg.add_argument("--status", action="append", choices=("done", "failed"), help="only these (repeatable)")
    pg.add_argument("--dry-run", action="store_true", help="list what would be removed, remove nothing")
    pg.set_defaults(func=purge)
