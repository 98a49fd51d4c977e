"""``dacs-fhir hl7 …``: operator commands for the HL7 v2 interfaces.

    hl7 failed                  inbound messages answered AE/AR (inbox items marked failed)
    hl7 replay ID...            apply inbox items again after a fix, print their ACK code
    hl7 outbox [--status S]     outbound queue (pending, sent, parked, replayed), in the database
    hl7 resend ID...            put parked outbound messages back in their queue
    hl7 resend --study UID      queue a study's dose results anew, rebuilt from its kept reports
"""
from __future__ import annotations

import sys
import time


def _failed(args) -> int:
    from ..config import Settings
    from ..inbox import FAILED, Inbox

    for item in Inbox(Settings.from_env().inbox_dir).list(status=FAILED, kind="hl7v2"):
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(item.updated))
        print(f"{item.id}\t{when}\t{item.meta.get('type', '')}\t{item.meta.get('control_id', '')}\t{item.reason}")
    return 0


def _replay(args) -> int:
    from ..composition import build_pipeline
    from ..config import Settings
    from ..hl7v2.receiver import Receiver

    pipeline = build_pipeline(Settings.from_env())
    receiver = Receiver(pipeline)
    failed = 0
    for item_id in args.ids:
        item_id = item_id if "/" in item_id else f"hl7v2/{item_id}"
        try:
            _, err = receiver.replay(item_id)
        except (KeyError, FileNotFoundError):
            print(f"{item_id}: no such inbox item", file=sys.stderr)
            failed += 1
            continue
        print(f"{item_id}\t{'AA' if err is None else err.ack_code + ' ' + err.code + ': ' + err.reason}")
        failed += err is not None
    pipeline.tasks.shutdown()  # the rules stage has what the replays changed before the command ends
    return 1 if failed else 0


def _outbox(args) -> int:
    from ..config import Settings
    from ..delivery import Outbox

    outbox = Outbox.for_settings(Settings.from_env())
    try:
        for m in outbox.list(status=args.status, limit=args.limit):
            when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(m.created))
            print(f"{m.id}\t{m.status}\t{m.attempts}\t{when}\t{m.destination}\t{m.last_error}")
    finally:
        outbox.close()
    return 0


def _wake(settings, outbox, url: str) -> None:
    """With a broker, have a worker send ``url``'s queue now; without one, the running server's
    senders find the queued messages on their own."""
    if settings.broker_url:
        from ..delivery import Pumps
        from ..tasks import TaskLayer

        Pumps(outbox, TaskLayer(settings).schedule_delivery).kick(url)


def _resend(args) -> int:
    from ..config import Settings
    from ..delivery import Outbox

    settings = Settings.from_env()
    if bool(args.ids) == bool(args.study):
        print("resend: give outbound message ids, or --study STUDY_INSTANCE_UID", file=sys.stderr)
        return 2
    outbox = Outbox.for_settings(settings)
    try:
        if args.study:
            return _resend_study(args, settings, outbox)
        failed = 0
        for mid in args.ids:
            try:
                msg = outbox.replay(int(mid))
            except (KeyError, ValueError) as exc:
                print(f"{mid}: {exc}", file=sys.stderr)
                failed += 1
                continue
            _wake(settings, outbox, msg.destination)
            print(f"{mid}\tqueued again for {msg.destination}")
        return 1 if failed else 0
    finally:
        outbox.close()


def _resend_study(args, settings, outbox) -> int:
    """The study's dose results rebuilt from its kept reports, queued anew for each destination."""
    from ..delivery import parse, requeue_study

    urls = args.destination or list(settings.destinations)
    if not urls:
        print("resend: no destination (set DACS_DESTINATIONS or give --destination URL)", file=sys.stderr)
        return 2
    try:
        for url in urls:
            parse(url)
        queued = requeue_study(outbox.store, args.study, urls, corrected=args.corrected)
    except ValueError as exc:
        print(f"resend: {exc}", file=sys.stderr)
        return 2
    except KeyError:
        print(f"resend: no dose report is kept for study {args.study}", file=sys.stderr)
        return 1
    for url, ids in queued.items():
        _wake(settings, outbox, url)
        print(f"{','.join(map(str, ids))}\tqueued for {url}")
    return 0


def register(sub) -> None:
    p = sub.add_parser("hl7", help="HL7 v2 interfaces: failed inbound messages, replay, outbound queue")
    cmds = p.add_subparsers(dest="hl7_command", metavar="ACTION")
    cmds.required = True
    cmds.add_parser("failed", help="list inbound messages answered AE/AR").set_defaults(func=_failed)
    r = cmds.add_parser("replay", help="apply inbox items again (after a fix)")
    r.add_argument("ids", nargs="+", metavar="ID", help="inbox item id (hl7v2/KEY or KEY)")
    r.set_defaults(func=_replay)
    o = cmds.add_parser("outbox", help="list the outbound queue")
    o.add_argument("--status", choices=("pending", "sent", "parked", "replayed"))
    o.add_argument("--limit", type=int, default=1000)
    o.set_defaults(func=_outbox)
    s = cmds.add_parser("resend", help="queue parked outbound messages again, or a study's dose results anew")
    s.add_argument("ids", nargs="*", metavar="ID", help="outbound message id (parked or pending)")
    s.add_argument("--study", metavar="STUDY_INSTANCE_UID", help="rebuild the study's results from its kept reports")
    s.add_argument("--destination", action="append", metavar="URL",
                   help="with --study: only this destination (repeatable; default: DACS_DESTINATIONS)")
    s.add_argument("--corrected", action="store_true", help="with --study: mark them corrections (OBR-25 C)")
    s.set_defaults(func=_resend)
