"""Benchmark: DICOM ingest rate of the DACS beside a bare pynetdicom Storage SCP.

dcmtk's ``storescu`` (TCP_NODELAY=1) sends N RDSRs (copies of the corpus' RDSRs, each with fresh
study / series / SOP instance UIDs) over loopback, one association, to:
  bare      a pynetdicom SCP that only writes each received object to a file
  scp       our SCP: inbox write with fsync, then enqueue (the rate a modality sees)
  dacs      the same SCP with the pipeline behind it, timed until every object is searchable
            through the FHIR API (one dose summary Observation per study)

Each is first sent one warm-up object (for the DACS: until it is searchable), so the rates are those
of running servers, not of a worker starting and loading its modules.

The pipeline uses DACS_DATABASE_URL (default: SQLite in a temporary folder) and, with
DACS_BROKER_URL, one ``dacs-fhir worker`` subprocess; otherwise tasks run in-process.

    python bench/ingest.py [-n 2000] [--corpus ../shared/corpus] [--no-pipeline] [--concurrency N] [--pool P]
"""
from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Optional

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
SUMMARY = "http://loinc.org|73569-6"


def dcmtk_storescu() -> str:
    for folder in os.environ.get("PATH", "").split(os.pathsep) + ["/usr/bin"]:
        path = Path(folder) / "storescu"
        if path.is_file() and "dcmtk" in subprocess.run([str(path), "--version"], capture_output=True, text=True).stdout.lower():
            return str(path)
    sys.exit("dcmtk storescu not found (apt-get install dcmtk)")


def make_copies(corpus: Path, n: int, folder: Path) -> int:
    """``n`` RDSR files in ``folder``, cycling through the corpus' X-ray RDSRs; returns total bytes."""
    import pydicom

    from dacs_fhir.samples import renew_uids

    sources = []
    for p in sorted((corpus / "rdsr").glob("*.dcm")):
        ds = pydicom.dcmread(p)
        if ds.SOPClassUID == "1.2.840.10008.5.1.4.1.1.88.67" and ds.file_meta.TransferSyntaxUID == "1.2.840.10008.1.2.1":
            sources.append(ds)
    total = 0
    for i in range(n):
        ds = sources[i % len(sources)]
        renew_uids(ds)
        path = folder / f"{i:06d}.dcm"
        ds.save_as(path, enforce_file_format=True)
        total += path.stat().st_size
    return total


def send(storescu: str, port: int, folder: Path) -> float:
    """Seconds for storescu to send every file in ``folder`` on one association."""
    start = time.perf_counter()
    run = subprocess.run([storescu, "-R", "+sd", "-aec", "DACS", "127.0.0.1", str(port), str(folder)],
                         capture_output=True, text=True, env={**os.environ, "TCP_NODELAY": "1"})
    elapsed = time.perf_counter() - start
    if run.returncode != 0:
        sys.exit(f"storescu failed: {run.stderr[-800:]}")
    return elapsed


def bare_scp(out: Path):
    """The floor: a pynetdicom SCP that writes each object to a file and answers."""
    from pynetdicom import AE, evt
    from pynetdicom.sop_class import XRayRadiationDoseSRStorage

    from dacs_fhir.transport.dicom import set_nodelay

    def store(event):
        (out / f"{event.request.AffectedSOPInstanceUID}.dcm").write_bytes(event.encoded_dataset())
        return 0x0000

    ae = AE(ae_title="DACS")
    ae.add_supported_context(XRayRadiationDoseSRStorage)
    ae.maximum_pdu_size = 131072
    return ae.start_server(("127.0.0.1", 0), block=False,
                           evt_handlers=[(evt.EVT_CONN_OPEN, set_nodelay), (evt.EVT_C_STORE, store)])


def wait_searchable(base: str, ready: int, n: int, start: float) -> None:
    """Until ``n`` more dose summaries than ``ready`` are searchable. A count costs the DACS about 5 ms
    of CPU at 2,000 studies (HTTP, search, PostgreSQL): polled every 0.1 s, it took a few percent of
    the CPU the run measures. So the next poll comes after a quarter of the time the rate so far
    gives for what is left, between 0.05 and 0.5 s: seldom while much is left, every 0.05 s near the end."""
    while True:
        done = count_summaries(base) - ready
        if done >= n:
            return
        rate = max(done, 1) / max(time.perf_counter() - start, 1e-3)
        time.sleep(min(0.5, max(0.05, (n - done) / rate / 4)))


def count_summaries(base: str) -> int:
    import requests

    r = requests.get(f"{base}/Observation", params={"code": SUMMARY, "_summary": "count"}, timeout=60)
    r.raise_for_status()
    return int(r.json().get("total", 0))


def run_dacs(settings, storescu: str, folder: Path, n: int, with_pipeline: bool,
             concurrency: int = 0, warmup: Optional[Path] = None, pool: str = "") -> tuple[float, float]:
    """(seconds until every object was acknowledged, seconds until every object was searchable).

    ``warmup``: a folder of one more object, sent and waited for before the clock starts, so that
    the rate is that of a running DACS (worker started, modules loaded), not of its start-up."""
    from dacs_fhir.listeners.dicom_scp import start_scp

    if not with_pipeline:
        handle = start_scp(settings, lambda item: None)
        try:
            if warmup is not None:
                send(storescu, handle.port, warmup)
            return send(storescu, handle.port, folder), float("nan")
        finally:
            handle.stop()
    from dacs_fhir.commands.serve import Services

    services = Services(settings, mllp=False).start()
    worker = None
    if settings.broker_url:
        env = {**os.environ, "DACS_DATA_DIR": str(settings.data_dir), "DACS_DATABASE_URL": settings.database_url,
               "DACS_BROKER_URL": settings.broker_url, "DACS_QUEUE": settings.queue}
        extra = (["--concurrency", str(concurrency)] if concurrency else []) + (["--pool", pool] if pool else [])
        worker = subprocess.Popen([sys.executable, "-m", "dacs_fhir", "worker", "--loglevel", "WARNING", *extra], env=env,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    base = f"http://127.0.0.1:{services.handles['http'].port}/fhir"
    try:
        ready = 0
        if warmup is not None:
            ready = len(list(warmup.iterdir()))
            send(storescu, services.handles["dicom"].port, warmup)
            while count_summaries(base) < ready:
                time.sleep(0.1)
        start = time.perf_counter()
        acked = send(storescu, services.handles["dicom"].port, folder)
        wait_searchable(base, ready, n, start)
        return acked, time.perf_counter() - start
    finally:
        if worker is not None:
            os.killpg(worker.pid, signal.SIGTERM)
            worker.wait(timeout=60)
        services.pipeline.tasks.drain(timeout=600)
        services.stop()


class fresh_database:
    """A private place for the run: a throw-away schema in DACS_DATABASE_URL's PostgreSQL, or SQLite in ``folder``."""

    def __init__(self, folder: Path):
        self.base = os.environ.get("DACS_DATABASE_URL", "")
        self.folder = folder
        self.schema = f"bench_{os.getpid()}"

    def __enter__(self) -> str:
        if not self.base.startswith("postgresql"):
            return f"sqlite:///{self.folder / 'dacs.sqlite'}"
        import sqlalchemy as sa
        from urllib.parse import quote

        with sa.create_engine(self.base).begin() as conn:
            conn.execute(sa.text(f'CREATE SCHEMA "{self.schema}"'))
        return f"{self.base}{'&' if '?' in self.base else '?'}options={quote(f'-csearch_path={self.schema}')}"

    def __exit__(self, *exc) -> None:
        if self.base.startswith("postgresql"):
            import sqlalchemy as sa

            with sa.create_engine(self.base).begin() as conn:
                conn.execute(sa.text(f'DROP SCHEMA "{self.schema}" CASCADE'))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-n", type=int, default=2000, help="objects to send (default 2000)")
    ap.add_argument("--corpus", type=Path, default=ROOT.parent / "shared" / "corpus")
    ap.add_argument("--no-pipeline", action="store_true", help="measure SCP + inbox only")
    ap.add_argument("--concurrency", type=int, default=0,
                    help="processes of the one Celery worker (default: the worker's own, one per core)")
    ap.add_argument("--pool", choices=("prefork", "solo", "threads"), default="",
                    help="the Celery worker's pool (default: the worker's own)")
    args = ap.parse_args()
    import logging

    logging.basicConfig(level=logging.WARNING)
    from dacs_fhir.config import Settings

    storescu = dcmtk_storescu()
    tmp = Path(tempfile.mkdtemp(prefix="dacs-bench-"))
    try:
        src = tmp / "send"
        src.mkdir()
        size = make_copies(args.corpus, args.n, src)
        warmup = tmp / "warmup"
        warmup.mkdir()
        make_copies(args.corpus, 1, warmup)
        print(f"{args.n} RDSRs, {size / args.n / 1024:.1f} KiB average, storescu TCP_NODELAY=1, loopback")
        (tmp / "bare").mkdir()
        server = bare_scp(tmp / "bare")
        send(storescu, server.server_address[1], warmup)
        bare = send(storescu, server.server_address[1], src)
        server.shutdown()
        print(f"bare pynetdicom SCP (write file)       : {args.n / bare:7.1f} objects/s")
        # ratio = our rate / the bare SCP's rate (target for the full pipeline: >= 0.5)

        def settings_for(name: str) -> Settings:
            s = Settings.from_env({**os.environ, "DACS_DATA_DIR": str(tmp / name), "DACS_HTTP": "127.0.0.1:0",
                                   "DACS_DICOM": "127.0.0.1:0", "DACS_QUEUE": f"bench-{os.getpid()}-{name}"})
            s.data_dir.mkdir(parents=True, exist_ok=True)
            return s

        acked, _ = run_dacs(settings_for("scp"), storescu, src, args.n, with_pipeline=False, warmup=warmup)
        print(f"DACS SCP + inbox (fsync), acknowledged : {args.n / acked:7.1f} objects/s  ratio {bare / acked:.2f}")
        if not args.no_pipeline:
            s = settings_for("dacs")
            db = "PostgreSQL" if s.database_url.startswith("postgresql") else "SQLite"
            tasks = "1 Celery worker" if s.broker_url else "in-process tasks"
            with fresh_database(s.data_dir) as s.database_url:
                acked, searchable = run_dacs(s, storescu, src, args.n, with_pipeline=True, concurrency=args.concurrency,
                                             warmup=warmup, pool=args.pool)
            print(f"DACS full pipeline, acknowledged        : {args.n / acked:7.1f} objects/s")
            print(f"DACS full pipeline, searchable in FHIR  : {args.n / searchable:7.1f} objects/s  ratio {bare / searchable:.2f}"
                  f"  ({db}, {tasks})")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
