"""``dacs-fhir hl7 …``: operator commands for the HL7 v2 interfaces.

    hl7 failed                  inbound messages answered AE/AR (inbox items marked failed)
    hl7 replay ID...            apply inbox items again after a fix, print their ACK code
    hl7 outbox [--status S]     outbound queue (pending, sent, parked, replayed)
    hl7 resend ID...            put parked outbound messages back in their queue
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

    for m in Outbox.for_settings(Settings.from_env()).list(status=args.status, limit=args.limit):
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(m.created))
        print(f"{m.id}\t{m.status}\t{m.attempts}\t{when}\t{m.destination}\t{m.last_error}")
    return 0


def _resend(args) -> int:
    from ..config import Settings
    from ..delivery import Outbox, kick

    settings = Settings.from_env()
    outbox = Outbox.for_settings(settings)
    failed = 0
    for mid in args.ids:
        try:
            msg = outbox.replay(int(mid))
        except (KeyError, ValueError) as exc:
            print(f"{mid}: {exc}", file=sys.stderr)
            failed += 1
            continue
        if settings.broker_url:
            from ..tasks import TaskLayer

            kick(settings, msg.destination, outbox, TaskLayer(settings).schedule_delivery)
        print(f"{mid}\tqueued again for {msg.destination}")
    return 1 if failed else 0


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
    s = cmds.add_parser("resend", help="queue parked outbound messages again")
    s.add_argument("ids", nargs="+", metavar="ID")
    s.set_defaults(func=_resend)
