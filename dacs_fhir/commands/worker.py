"""``dacs-fhir worker``: a Celery worker for the configured broker (DACS_BROKER_URL)."""
from __future__ import annotations

import os
import sys


def run(args) -> int:
    from ..composition import build_pipeline
    from ..config import Settings

    settings = Settings.from_env()
    if not settings.broker_url:
        print("worker: DACS_BROKER_URL is not set (without a broker, tasks run inside 'serve')", file=sys.stderr)
        return 2
    pipeline = build_pipeline(settings, worker=True)
    pipeline.warm_up()  # before the pool forks: every pool process starts with it loaded
    recovered = pipeline.recover_pending()
    if recovered:
        print(f"worker: re-enqueued {recovered} pending inbox items", file=sys.stderr)
    concurrency = args.concurrency or (os.cpu_count() or 1 if args.pool != "solo" else 1)
    argv = ["worker", f"--loglevel={args.loglevel}", f"--concurrency={concurrency}", "--pool", args.pool]
    if args.hostname:
        argv += ["--hostname", args.hostname]
    pipeline.tasks.celery.worker_main(argv)
    return 0


def register(sub) -> None:
    p = sub.add_parser("worker", help="run a Celery worker (production: PostgreSQL + Redis/RabbitMQ)")
    p.add_argument("--concurrency", type=int, default=None,
                   help="processes (prefork) or threads; default: one per CPU core (solo: 1)")
    p.add_argument("--pool", default="prefork", choices=("solo", "prefork", "threads"),
                   help="prefork (default): objects of different studies are mapped and stored in parallel")
    p.add_argument("--loglevel", default="INFO")
    p.add_argument("--hostname", help="worker node name")
    p.set_defaults(func=run)
