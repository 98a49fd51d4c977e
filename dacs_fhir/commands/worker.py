"""``dacs-fhir worker``: a Celery worker for the configured broker (DACS_BROKER_URL)."""
from __future__ import annotations

import sys


def run(args) -> int:
    from .. import tasks
    from ..config import Settings

    settings = Settings.from_env()
    if not settings.broker_url:
        print("worker: DACS_BROKER_URL is not set (without a broker, tasks run inside 'serve')", file=sys.stderr)
        return 2
    tasks.configure(settings)
    tasks.register_task_modules()
    recovered = tasks.current_pipeline().recover_pending()
    if recovered:
        print(f"worker: re-enqueued {recovered} pending inbox items", file=sys.stderr)
    argv = ["worker", f"--loglevel={args.loglevel}", f"--concurrency={args.concurrency}", "--pool", args.pool]
    if args.hostname:
        argv += ["--hostname", args.hostname]
    tasks.celery_app.worker_main(argv)
    return 0


def register(sub) -> None:
    p = sub.add_parser("worker", help="run a Celery worker (production: PostgreSQL + Redis/RabbitMQ)")
    p.add_argument("--concurrency", type=int, default=1)
    p.add_argument("--pool", default="solo", choices=("solo", "prefork", "threads"))
    p.add_argument("--loglevel", default="INFO")
    p.add_argument("--hostname", help="worker node name")
    p.set_defaults(func=run)
