"""Benchmark: ingest throughput and latency of the RDS IG searches on PostgreSQL (issue 3).

Loads a synthetic population of CT dose summaries with irradiation events through the real
write path (one ``tx.process_bundle`` transaction per study, RDS IG bundle shape: Patient,
ImagingStudy, Device, summary Observation with components, event Observations; built by
``mappers.fhir.to_bundle`` from synthetic DoseReports when that mapper is installed), then
times each IG search on random values and prints p50 / p95 / p99.

    python bench/search.py [--db postgresql+psycopg://…] [--summaries 100000] [--searches 200]
    python bench/search.py --summaries 2000          # quick run
    python bench/search.py --reuse                   # search an already loaded schema again
    python bench/search.py --append 20000 --summaries 30000   # grow a loaded schema

Targets (issue 3): search p95 < 50 ms at 1 M Observations; ingest >= 300 resources/s per core.
"""
from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import time
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import text  # noqa: E402

from dacs_fhir.store import Store  # noqa: E402

DCM = "http://dicom.nema.org/resources/ontology/DCM"
UCUM = "http://unitsofmeasure.org"
LOINC = "http://loinc.org"
SID = "https://dacs-fhir.org/fhir/sid"
RDS = "http://hl7.org/fhir/uv/radiation-dose-summary/StructureDefinition"
START = datetime(2024, 1, 1, tzinfo=timezone.utc)
DEVICES = 50


def _quantity(value: float, unit: str) -> dict:
    return {"value": round(value, 2), "unit": unit, "system": UCUM, "code": unit}


def _component(code: str, value: float, unit: str) -> dict:
    return {"code": {"coding": [{"system": DCM, "code": code}]}, "valueQuantity": _quantity(value, unit)}


def synthetic_study(rng: random.Random, n: int, patients: int) -> dict:
    """Values of one synthetic CT study (no real person behind any of them)."""
    events = [{"uid": f"1.2.826.0.1.3680043.10.1082.{n}.{k}", "ctdivol": rng.uniform(2, 60),
               "length": rng.uniform(100, 600)} for k in range(rng.randint(1, 6))]
    for e in events:
        e["dlp"] = e["ctdivol"] * e["length"] / 10
    return {"n": n, "patient": rng.randrange(patients), "device": rng.randrange(DEVICES),
            "study_uid": f"1.2.826.0.1.3680043.10.1081.{n}", "sop_uid": f"1.2.826.0.1.3680043.10.1083.{n}",
            "started": START + timedelta(seconds=rng.randrange(2 * 365 * 86400)), "events": events}


def ig_bundle(s: dict) -> dict:
    """An RDS IG shaped transaction Bundle (conditional creates, urn:uuid references)."""
    def u(kind: int, k: int = 0) -> str:
        return f"urn:uuid:{uuid.UUID(int=(s['n'] << 24) | (kind << 16) | k)}"

    pid, sid, did, oid = u(1), u(2), u(3), u(4)
    when = s["started"].strftime("%Y-%m-%dT%H:%M:%SZ")
    mrn = f"P{s['patient']:08d}"
    study_ident = {"system": "urn:dicom:uid", "value": f"urn:oid:{s['study_uid']}"}
    serial = f"SN{s['device']:04d}"
    patient = {"resourceType": "Patient", "identifier": [{"system": f"{SID}/mrn", "value": mrn}],
               "name": [{"family": f"Family{s['patient'] % 997}", "given": ["Test"]}],
               "gender": "female" if s["patient"] % 2 else "male", "birthDate": f"{1930 + s['patient'] % 80}-01-01"}
    device = {"resourceType": "Device", "meta": {"profile": [f"{RDS}/modality-device"]},
              "identifier": [{"system": f"{SID}/device-serial", "value": serial}],
              "manufacturer": "ACME", "modelNumber": f"Scanner {s['device'] % 5}",
              "type": {"coding": [{"system": DCM, "code": "CT"}]}}
    study = {"resourceType": "ImagingStudy", "status": "available", "identifier": [study_ident],
             "subject": {"reference": pid}, "started": when, "modality": [{"system": DCM, "code": "CT"}]}
    dlp_total = sum(e["dlp"] for e in s["events"])
    common = {"status": "final", "subject": {"reference": pid}, "partOf": [{"reference": sid}],
              "device": {"reference": did}, "effectiveDateTime": when}
    summary = {"resourceType": "Observation", "meta": {"profile": [f"{RDS}/radiation-dose-summary"]},
               "identifier": [{"system": "urn:dicom:uid", "value": f"urn:oid:{s['sop_uid']}"}],
               "code": {"coding": [{"system": LOINC, "code": "73569-6"}]}, "focus": [{"reference": sid}], **common,
               "valueString": f"CT performed, DLP total {dlp_total:.1f} mGy.cm",
               "component": [_component("113813", dlp_total, "mGy.cm"),
                             _component("113812", len(s["events"]), "1")]}
    entries = [
        (pid, patient, "Patient", f"identifier={SID}/mrn|{mrn}"),
        (did, device, "Device", f"identifier={SID}/device-serial|{serial}"),
        (sid, study, "ImagingStudy", f"identifier=urn:dicom:uid|urn:oid:{s['study_uid']}"),
        (oid, summary, "Observation", f"identifier=urn:dicom:uid|urn:oid:{s['sop_uid']}"),
    ]
    for k, e in enumerate(s["events"]):
        event = {"resourceType": "Observation", "meta": {"profile": [f"{RDS}/irradiation-event-summary"]},
                 "identifier": [{"system": "urn:dicom:uid", "value": f"urn:oid:{e['uid']}"}],
                 "code": {"coding": [{"system": DCM, "code": "113819"}]}, **common,
                 "component": [_component("113830", e["ctdivol"], "mGy"), _component("113838", e["dlp"], "mGy.cm")]}
        entries.append((u(5, k), event, "Observation", f"identifier=urn:dicom:uid|urn:oid:{e['uid']}"))
    return {"resourceType": "Bundle", "type": "transaction", "entry": [
        {"fullUrl": full, "resource": res, "request": {"method": "POST", "url": rtype, "ifNoneExist": cond}}
        for full, res, rtype, cond in entries]}


def mapper_bundle(s: dict):
    """(bundle, report) through mappers.fhir.to_bundle on a synthetic DoseReport, or None without it."""
    try:
        from dacs_fhir.mappers.fhir import to_bundle
    except ImportError:
        return None
    from dacs_fhir import domain as d

    def m(code, value, unit):
        return d.Measurement(d.Concept("DCM", code), d.Quantity(value, unit))

    events = tuple(d.IrradiationEvent(uid=e["uid"], kind="CT", started=s["started"], measurements=(
        m("113830", e["ctdivol"], "mGy"), m("113838", e["dlp"], "mGy.cm"))) for e in s["events"])
    report = d.DoseReport(
        sop_instance_uid=s["sop_uid"], sop_class_uid="1.2.840.10008.5.1.4.1.1.88.67", kind=d.CT, source=d.SOURCE_RDSR,
        study=d.Study(s["study_uid"], started=s["started"], modalities=("CT",)),
        patient=d.Patient(id=f"P{s['patient']:08d}", issuer="BENCH", sex="F"),
        device=d.Device(manufacturer="ACME", model=f"Scanner {s['device'] % 5}", serial_number=f"SN{s['device']:04d}"),
        modality="CT", started=s["started"], events=events,
        accumulated=(d.AccumulatedDose(measurements=(m("113813", sum(e["dlp"] for e in s["events"]), "mGy.cm"),)),))
    return to_bundle(report, conditional="update"), report


def _pipeline(store: Store):
    """The ingest pipeline on ``store`` (inbox in a temporary folder, no destinations)."""
    import tempfile

    from dacs_fhir.config import Settings
    from dacs_fhir.composition import build_pipeline

    settings = Settings.from_env({"DACS_DATA_DIR": tempfile.mkdtemp(prefix="dacs-bench-")})
    return build_pipeline(settings, store=store)


def load(store: Store, summaries: int, seed: int, use_mapper: bool, first: int = 0) -> None:
    """Mapped reports go through ``Pipeline.ingest_report`` (merge with the study's kept reports, RDS
    bundle, profile check, store transaction, dose analytics); IG-shaped bundles through ``process_bundle``."""
    rng = random.Random(seed + first)
    patients = max((first + summaries) // 3, 1)
    resources, in_store, cpu_in_store = 0, 0.0, 0.0
    pipeline = _pipeline(store) if use_mapper else None
    t0, cpu0 = time.perf_counter(), time.process_time()
    for n in range(first, first + summaries):
        s = synthetic_study(rng, n, patients)
        built = mapper_bundle(s) if use_mapper else None
        bundle, report = built if built else (ig_bundle(s), None)
        t, cpu = time.perf_counter(), time.process_time()
        if report is not None:
            pipeline.ingest_report(report)
        else:
            with store.transaction() as tx:
                tx.process_bundle(bundle)
        in_store += time.perf_counter() - t
        cpu_in_store += time.process_time() - cpu
        resources += len(bundle["entry"])
        if (n + 1 - first) % max(summaries // 20, 1) == 0:
            print(f"  {n + 1 - first:>8} studies  {resources:>9} resources  {resources / in_store:7.0f} resources/s in the store",
                  flush=True)
    elapsed, cpu_total = time.perf_counter() - t0, time.process_time() - cpu0
    print(f"ingest: {resources} resources in {summaries} transaction bundles "
          f"({'mappers.fhir.to_bundle' if use_mapper and mapper_bundle(synthetic_study(rng, 0, 1)) else 'IG-shaped'} bundles)")
    print(f"  end to end (build bundle + map + store): {elapsed:.1f} s = {resources / elapsed:.0f} resources/s, "
          f"{cpu_total:.1f} s CPU in this process")
    print(f"  pipeline write path (merge, map, profile check, store, dose analytics, commit): {in_store:.1f} s = "
          f"{resources / in_store:.0f} resources/s wall, {resources / cpu_in_store:.0f} resources per CPU-second "
          f"of this process (PostgreSQL server CPU not included)")


def _sample(store: Store, sql: str, k: int = 400) -> list:
    with store.engine.connect() as conn:
        return [r[0] for r in conn.execute(text(sql + f" ORDER BY random() LIMIT {k}"))]


def searches(store: Store) -> dict:
    """Parameter generators for the IG searches, fed by values sampled from the loaded data."""
    patients = _sample(store, "SELECT rid FROM resource WHERE rtype = 'Patient'")
    devices = _sample(store, "SELECT rid FROM resource WHERE rtype = 'Device'")
    studies = _sample(store, "SELECT rid FROM resource WHERE rtype = 'ImagingStudy'")
    idents = _sample(store, "SELECT system || '|' || code FROM idx_token WHERE rtype = 'Observation' "
                            "AND param = 'identifier'")
    days = [START + timedelta(days=i) for i in range(730)]
    dlp = sorted(_sample(store, "SELECT value FROM idx_code_quantity WHERE param = 'component-code-value-quantity' "
                                "AND code = '113813'", 2000))
    high = dlp[int(len(dlp) * 0.99)] if dlp else 1000
    c = random.choice
    return {
        "identifier": lambda: [("identifier", c(idents))],
        "code (page of 20)": lambda: [("code", f"{LOINC}|73569-6")],
        "code+patient": lambda: [("code", f"{LOINC}|73569-6"), ("patient", f"Patient/{c(patients)}")],
        "patient": lambda: [("patient", f"Patient/{c(patients)}")],
        "device (page of 20)": lambda: [("device", f"Device/{c(devices)}")],
        "part-of": lambda: [("part-of", f"ImagingStudy/{c(studies)}")],
        "date (one day)": lambda: _range(c(days), 1),
        "date (30 days)": lambda: _range(c(days), 30),
        "date -sort": lambda: [("code", f"{LOINC}|73569-6"), ("patient", c(patients)), ("_sort", "-date")],
        "combo DLP > p99": lambda: [("combo-code-value-quantity", f"{DCM}|113813$gt{high:.0f}")],
        "_include": lambda: [("part-of", f"ImagingStudy/{c(studies)}"), ("_include", "Observation:patient"),
                             ("_include", "Observation:device")],
        "_revinclude": lambda: [("_id", c(patients)), ("_revinclude", "Observation:patient")],
    }


def _range(day: datetime, length: int) -> list[tuple[str, str]]:
    return [("date", f"ge{day:%Y-%m-%d}"), ("date", f"lt{day + timedelta(days=length):%Y-%m-%d}")]


def time_searches(store: Store, runs: int) -> None:
    generators = searches(store)
    with store.engine.connect() as conn:
        observations = conn.execute(text("SELECT count(*) FROM resource WHERE rtype = 'Observation'")).scalar()
    print(f"search latency over {observations} Observations ({runs} runs each, _count=20, store API):")
    print(f"  {'search':<22}{'p50 ms':>9}{'p95 ms':>9}{'p99 ms':>9}{'matches':>10}")
    for name, params in generators.items():
        times, matches = [], 0
        for _ in range(runs):
            p = params()
            t = time.perf_counter()
            with store.transaction() as tx:
                result = tx.search("Patient" if name == "_revinclude" else "Observation", p, count=20)
            times.append((time.perf_counter() - t) * 1000)
            matches += len(result.resources)
        q = statistics.quantiles(times, n=100)
        print(f"  {name:<22}{q[49]:>9.1f}{q[94]:>9.1f}{q[98]:>9.1f}{matches / runs:>10.1f}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--db", default=os.environ.get("DACS_DATABASE_URL"), help="PostgreSQL URL")
    ap.add_argument("--schema", default="dacs_bench", help="schema to (re)create and load")
    ap.add_argument("--summaries", type=int, default=100_000)
    ap.add_argument("--searches", type=int, default=200, help="runs per search")
    ap.add_argument("--seed", type=int, default=3)
    ap.add_argument("--reuse", action="store_true", help="keep the loaded schema, only time the searches")
    ap.add_argument("--append", type=int, metavar="FIRST", default=None,
                    help="keep the loaded schema and add --summaries more studies, numbered from FIRST")
    ap.add_argument("--ig-bundles", action="store_true", help="build IG bundles here even if mappers.fhir exists")
    args = ap.parse_args()
    if not args.db or not args.db.startswith("postgresql"):
        print("needs PostgreSQL: --db postgresql+psycopg://user@host/db or DACS_DATABASE_URL", file=sys.stderr)
        return 2
    keep = args.reuse or args.append is not None
    if not keep:
        admin = Store(args.db)
        with admin.engine.begin() as conn:
            conn.execute(text(f'DROP SCHEMA IF EXISTS "{args.schema}" CASCADE'))
            conn.execute(text(f'CREATE SCHEMA "{args.schema}"'))
        admin.dispose()
    store = Store(args.db, schema=args.schema)
    if not args.reuse:
        store.upgrade()
        print(f"loading {args.summaries} dose summaries into schema {args.schema} …", flush=True)
        load(store, args.summaries, args.seed, not args.ig_bundles, args.append or 0)
        with store.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("VACUUM ANALYZE"))  # as autovacuum would: visibility map for index-only scans
    random.seed(args.seed)
    time_searches(store, args.searches)
    return 0


if __name__ == "__main__":
    sys.exit(main())
