"""HL7 v2 throughput: ADT/s ACKed by the MLLP listener on one persistent connection, ORU/s delivered
to a local receiver, beside hl7apy's bare parse rate of the same messages in the same run.

    python bench/mllp.py [--adt 2000] [--oru 1000] [--handler store|map]

``--handler store`` (default when the store package is present) runs the real
inbound path: inbox journal -> parse -> FHIR Bundle -> store transaction (SQLite in a
temporary folder, every commit fsync'd) -> ACK. ``map`` runs the same path with a store that writes
nothing. Each ADT line also gives the listener process's CPU time per message (the sender's is not
in it), which other load on the machine moves less than the rate. ``TMPDIR=/dev/shm`` puts the
database on tmpfs, where an fsync costs nothing: the rate the CPU allows. The sender (python-hl7's MLLPClient) runs in its own process, as a RIS would.
Targets (issue 5): >= 500 ADT/s ACKed, >= 300 ORU/s delivered.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from datetime import date, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
CORPUS = ROOT.parent / "shared" / "corpus" / "hl7v2"
BOM = b"\xef\xbb\xbf"


def adt_messages(n: int, obx: bool = True, enhanced: bool = False) -> list[bytes]:
    """ADT^A08 updates for n patients, shaped like the corpus dcm4che ADT (PID, PV1, optional weight/height OBX);
    ``enhanced``: MSH-15 AL, MSH-16 NE (commit acknowledgment, HL7 v2.5.1 §2.9.3)."""
    out = []
    modes = "AL|NE" if enhanced else "|"
    for i in range(n):
        text = (
            f"MSH|^~\\&|RIS|HOSP|DACS|RAD|20240101120000||ADT^A08^ADT_A01|B{i}|P|2.5.1|||{modes}|||UNICODE UTF-8\r"
            f"EVN||20240101120000\r"
            f"PID|1||{100000 + i % 500}^^^HOSP&1.2.826.0.1.3680043.2.1&ISO^MR||Doe{i % 97}^Jane^Q||19600101|F|||"
            f"Main Street {i}^^Springfield^^12345^US^H\r"
            f"PV1|1|O|RAD^^^HOSP||||1234^Welby^Marcus\r"
        )
        if obx:
            text += f"OBX|1|NM|29463-7^Body weight^LN||{60 + i % 40}|kg|||||F\rOBX|2|NM|8302-2^Body height^LN||{160 + i % 30}|cm|||||F\r"
        out.append(text.encode())
    return out


def dose_report(i: int):
    from dacs_fhir.domain import CT, SOURCE_RDSR, AccumulatedDose, Concept, DoseReport, Measurement, Patient, PersonName, Quantity, Study

    return DoseReport(
        sop_instance_uid=f"1.2.826.0.1.3680043.2.1.{i}.1", sop_class_uid="1.2.840.10008.5.1.4.1.1.88.67", kind=CT, source=SOURCE_RDSR,
        study=Study(instance_uid=f"1.2.826.0.1.3680043.2.1.{i}", accession_number=f"ACC{i}", started=datetime(2024, 1, 1, 12)),
        patient=Patient(id=f"P{i}", issuer="HOSP", name=PersonName("Doe", ("Jane",)), birth_date=date(1960, 1, 1), sex="F"),
        accumulated=(AccumulatedDose(measurements=(
            Measurement(Concept("DCM", "113813"), Quantity(700.0 + i % 100, "mGy.cm")),
            Measurement(Concept("DCM", "113812"), Quantity(4, "{events}")),
        )),),
    )


def hl7apy_rate(messages: list[bytes], limit: int = 200) -> float:
    from hl7apy.parser import parse_message

    sample = [m.decode() for m in messages[:limit]]
    t = time.perf_counter()
    for m in sample:
        parse_message(m)
    return len(sample) / (time.perf_counter() - t)


class NullStore:
    """Stands in for the store: the inbound path up to the mapped resources, nothing written."""

    class _Tx:
        changes: list = []

        def search(self, *a, **k):
            from types import SimpleNamespace

            return SimpleNamespace(resources=[], total=0)

        def prefetch_matches(self, criteria):
            pass

        def match(self, *a, **k):
            return []

        def mint(self, rtype):
            return "x"

        def update(self, rtype, rid, resource, **k):
            return None

        def create(self, resource, **k):
            return None

    def transaction(self):
        from contextlib import nullcontext

        return nullcontext(NullStore._Tx())


def python_hl7_rate(messages: list[bytes]) -> float:
    import hl7

    t = time.perf_counter()
    for m in messages:
        hl7.parse(m.decode())
    return len(messages) / (time.perf_counter() - t)


# The sender is another system: it runs in its own process (python-hl7's MLLPClient on one
# persistent connection, waiting for each ACK), so it does not share the listener's interpreter.
SENDER = r"""
import sys, time
from hl7.client import MLLPClient
port, expected, path = int(sys.argv[1]), sys.argv[2].encode(), sys.argv[3]
messages = open(path, "rb").read().split(b"\x00")
with MLLPClient("127.0.0.1", port) as client:
    client.send_message(messages[0])  # warm-up (imports, first transaction)
    t = time.perf_counter()
    bad = sum(expected not in client.send_message(m) for m in messages[1:])
    print((len(messages) - 1) / (time.perf_counter() - t), bad)
"""


def send_feed(port: int, messages: list[bytes], expected: bytes, path: Path) -> tuple[float, int]:
    """(messages/s after the first, ACKs without ``expected``) for one sender process."""
    import subprocess

    path.write_bytes(b"\x00".join(messages))
    out = subprocess.run([sys.executable, "-c", SENDER, str(port), expected.decode(), str(path)],
                         capture_output=True, text=True, check=True).stdout.split()
    return float(out[0]), int(out[1])


def bench_adt(n: int, mode: str, work: Path, obx: bool = True, enhanced: bool = False) -> tuple[float, str]:
    from dacs_fhir.config import Settings
    from dacs_fhir.hl7v2.receiver import Receiver
    from dacs_fhir.inbox import Inbox
    from dacs_fhir.listeners.mllp import start_mllp
    from dacs_fhir.composition import build_pipeline

    work.mkdir(parents=True, exist_ok=True)
    inbox = Inbox(work / "inbox")
    if mode == "store":
        from dacs_fhir.store import Store

        store = Store(f"sqlite:///{work / 'bench.sqlite'}")
        store.upgrade()
    else:
        store = NullStore()
    settings = Settings.from_env({"DACS_DATA_DIR": str(work / "data")})
    receiver = Receiver(build_pipeline(settings, store=store, inbox=inbox))
    handler = receiver.handle

    messages = adt_messages(n, obx, enhanced)
    expected = b"MSA|CA|" if enhanced else b"MSA|AA|"
    handle = start_mllp("127.0.0.1", 0, handler)
    try:
        t0, cpu0 = time.perf_counter(), time.process_time()
        rate, bad = send_feed(handle.port, messages, expected, work / "feed.txt")
        # the listener's CPU (this process; the sender is another one): less at the mercy of other load than the rate
        note = f"{bad} not {expected[4:6].decode()}; listener CPU {1000 * (time.process_time() - cpu0) / len(messages):.2f} ms/msg"
        if enhanced:
            receiver.drain(600)
            applied = (len(messages) - 1) / (time.perf_counter() - t0)
            failed = sum(1 for i in inbox.list(kind="hl7v2") if i.status != "done")
            note += f"; all applied at {applied:.1f} msg/s, {failed} not done"
    finally:
        handle.stop()
    return rate, note


def bench_oru(n: int, work: Path) -> tuple[float, float, list[bytes]]:
    import hl7

    from dacs_fhir.delivery import Outbox, drain
    from dacs_fhir.listeners.mllp import start_mllp
    from dacs_fhir.mappers.hl7v2 import to_oru
    from dacs_fhir.store import Store

    t = time.perf_counter()
    orus = [to_oru(dose_report(i)).encode() for i in range(n)]
    build_rate = n / (time.perf_counter() - t)
    received = []

    def receiver(raw: bytes) -> bytes:
        received.append(raw)
        return str(hl7.parse(raw.decode()).create_ack()).encode()

    handle = start_mllp("127.0.0.1", 0, receiver)
    url = f"mllp://127.0.0.1:{handle.port}?timeout=5"
    store = Store(f"sqlite:///{work / 'outbox.sqlite'}")  # the outbox tables of a store, as a server has
    store.upgrade()
    outbox = Outbox(store)
    for m in orus:
        outbox.enqueue(url, m, "application/hl7-v2")
    try:
        t = time.perf_counter()
        while drain(outbox, url) is not None:
            pass
        rate = len(received) / (time.perf_counter() - t)
    finally:
        handle.stop()
    assert received == orus, "receiver did not get every ORU once, in order"
    return rate, build_rate, orus


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--adt", type=int, default=2000)
    ap.add_argument("--oru", type=int, default=1000)
    ap.add_argument("--handler", choices=("store", "map", "both"), default="both")
    args = ap.parse_args(argv)
    modes = ["map", "store"] if args.handler == "both" else [args.handler]
    if "store" in modes:
        try:
            from dacs_fhir.store import Store  # noqa: F401
        except ImportError:
            modes.remove("store")
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        adt = {(mode, obx): bench_adt(args.adt, mode, work / f"{mode}-{obx}", obx) for mode in modes for obx in (True, False)}
        if "store" in modes:
            adt[("store", "enhanced")] = bench_adt(args.adt, "store", work / "enhanced", True, enhanced=True)
        oru_rate, build_rate, orus = bench_oru(args.oru, work)
        adts = adt_messages(200)
        for (mode, obx), (adt_rate, adt_note) in adt.items():
            if obx == "enhanced":
                print(f"ADT^A08 enhanced mode (MSH-15 AL), commit ACK after the fsync'd inbox write, PID+2 OBX: "
                      f"{adt_rate:8.1f} msg/s  ({adt_note})")
                continue
            label = ("applied to the store" if mode == "store" else "mapped, no store") + (", PID+2 OBX" if obx else ", PID only")
            print(f"ADT^A08 ACKed on one connection, {label + ':':34}{adt_rate:8.1f} msg/s  ({adt_note}; target >= 500)")
        print(f"ORU^R01 delivered to a local MLLP receiver (queue -> ACK):  {oru_rate:8.1f} msg/s  (target >= 300)")
        print(f"ORU^R01 built + strictly validated with hl7apy:           {build_rate:8.1f} msg/s")
        print(f"hl7apy bare parse, same ADT messages:                      {hl7apy_rate(adts):8.1f} msg/s")
        print(f"python-hl7 parse, same ADT messages:                       {python_hl7_rate(adts):8.1f} msg/s")
        print(f"hl7apy bare parse, same ORU messages:                      {hl7apy_rate(orus):8.1f} msg/s")
        if CORPUS.is_dir():
            corpus = [p.read_bytes().replace(b"\n", b"\r") for p in sorted(CORPUS.glob("adt-a0*.hl7"))]
            t = time.perf_counter()
            import hl7

            for _ in range(20):
                for m in corpus:
                    hl7.parse(m.decode("utf-8-sig"))
            py_rate = 20 * len(corpus) / (time.perf_counter() - t)
            apy_rate = hl7apy_rate([m.removeprefix(BOM) for m in corpus] * 5)
            print(f"corpus ADT files: python-hl7 parse {py_rate:8.1f} msg/s, hl7apy parse {apy_rate:8.1f} msg/s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
