"""The store on PostgreSQL (runs when DACS_DATABASE_URL is a postgresql URL); one schema per test run."""
from __future__ import annotations

import os
import threading
import uuid
from decimal import Decimal

import pytest
from sqlalchemy import text

from dacs_fhir.store import Store, errors

URL = os.environ.get("DACS_DATABASE_URL", "")
pytestmark = [pytest.mark.integration,
              pytest.mark.skipif(not URL.startswith("postgresql"), reason="DACS_DATABASE_URL is not a PostgreSQL URL")]
DCM = "http://dicom.nema.org/resources/ontology/DCM"


@pytest.fixture(scope="module")
def store():
    schema = f"test_store_{uuid.uuid4().hex[:12]}"
    admin = Store(URL)
    with admin.engine.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    s = Store(URL, schema=schema)
    s.upgrade()
    yield s
    s.dispose()
    with admin.engine.begin() as conn:
        conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
    admin.dispose()


def test_tables_live_in_the_run_schema(store):
    with store.engine.connect() as conn:
        schema = conn.execute(text("SELECT current_schema()")).scalar()
        tables = set(conn.execute(text("SELECT tablename FROM pg_tables WHERE schemaname = :s"), {"s": schema}).scalars())
    assert schema.startswith("test_store_")
    assert {"resource", "resource_version", "idx_token", "idx_code_quantity", "dose_study", "alembic_version"} <= tables


def test_versions_and_history(store):
    with store.transaction() as tx:
        rid = tx.create({"resourceType": "Device", "manufacturer": "ACME"}).resource["id"]
    with store.transaction() as tx:
        tx.update("Device", rid, {"resourceType": "Device", "id": rid, "manufacturer": "ACME Medical"}, if_match="1")
        tx.delete("Device", rid)
    with store.transaction() as tx:
        assert [e.method for e in tx.history("Device", rid).entries] == ["delete", "update", "create"]
        assert tx.vread("Device", rid, "2")["manufacturer"] == "ACME Medical"
        with pytest.raises(errors.Gone):
            tx.read("Device", rid)


def test_transaction_bundle_and_searches(store):
    mrn = uuid.uuid4().hex
    bundle = {"resourceType": "Bundle", "type": "transaction", "entry": [
        {"fullUrl": "urn:uuid:5f0d8c5e-0000-4000-8000-000000000001",
         "resource": {"resourceType": "Patient", "identifier": [{"system": "urn:mrn", "value": mrn}],
                      "name": [{"family": "Ångström"}]},
         "request": {"method": "POST", "url": "Patient", "ifNoneExist": f"identifier=urn:mrn|{mrn}"}},
        {"resource": {"resourceType": "Observation", "status": "final",
                      "code": {"coding": [{"system": "http://loinc.org", "code": "73569-6"}]},
                      "subject": {"reference": "urn:uuid:5f0d8c5e-0000-4000-8000-000000000001"},
                      "effectiveDateTime": "2024-06-30T23:30:00-02:00",
                      "component": [{"code": {"coding": [{"system": DCM, "code": "113813"}]},
                                     "valueQuantity": {"value": 777, "unit": "mGy.cm", "system": "http://unitsofmeasure.org",
                                                       "code": "mGy.cm"}}]},
         "request": {"method": "POST", "url": "Observation"}}]}
    with store.transaction() as tx:
        resp = tx.process_bundle(bundle)
    pid = resp["entry"][0]["response"]["location"].split("/")[1]
    with store.transaction() as tx:
        assert tx.search("Patient", [("family", "angstrom")]).total == 1
        by_patient = tx.search("Observation", [("patient", pid), ("date", "2024-07-01"), ("_include", "Observation:patient"),
                                               ("combo-code-value-quantity", f"{DCM}|113813$gt776")])
        assert by_patient.total == 1 and by_patient.included[0]["id"] == pid
        assert tx.search("Observation", [("patient", pid), ("date", "2024-06-30")]).total == 0  # 01:30 UTC on 1 July
        assert tx.search("Observation", [("patient", pid), ("_sort", "-date")]).total == 1


def test_concurrent_conditional_creates_make_one_resource(store):
    mrn = uuid.uuid4().hex
    barrier = threading.Barrier(4)
    failures = []

    def create():
        try:
            barrier.wait()
            with store.transaction() as tx:
                tx.create({"resourceType": "Patient", "identifier": [{"system": "urn:mrn", "value": mrn}]},
                          if_none_exist=f"identifier=urn:mrn|{mrn}")
        except Exception as exc:  # collected: assertions in threads would be lost
            failures.append(exc)

    threads = [threading.Thread(target=create) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert failures == []
    with store.transaction() as tx:
        assert tx.search("Patient", [("identifier", f"urn:mrn|{mrn}")]).total == 1


def test_dose_report_rows(store):
    from datetime import datetime

    from dacs_fhir import domain as d
    from dacs_fhir.mappers import report_json

    study = f"2.25.{uuid.uuid4().int}"
    report = d.DoseReport(
        sop_instance_uid=f"{study}.1", sop_class_uid="1.2.840.10008.5.1.4.1.1.88.67", kind=d.CT, source=d.SOURCE_RDSR,
        study=d.Study(study, started=datetime(2024, 1, 2, 3, 4)), patient=d.Patient(id="X1"),
        events=(d.IrradiationEvent(uid=f"{study}.9", kind="CT", measurements=(
            d.Measurement(d.Concept("DCM", "113838"), d.Quantity(321.0, "mGy.cm")),)),),
        accumulated=(d.AccumulatedDose(measurements=(
            d.Measurement(d.Concept("DCM", "113813"), d.Quantity(321.0, "mGy.cm")),)),))
    with store.transaction() as tx:
        tx.record_dose_report(report, kept_json=report_json.dump(report))
    with store.engine.connect() as conn:
        dlp = conn.execute(text("SELECT value FROM dose_total WHERE study_uid = :s AND code = '113813'"), {"s": study}).scalar()
        events = conn.execute(text("SELECT dlp FROM irradiation_event WHERE study_uid = :s"), {"s": study}).scalars().all()
    assert dlp == 321.0 and events == [321.0]
    with store.transaction() as tx:
        assert len(tx.dose_reports_for_study(study)) == 1


def test_a_report_recorded_again_replaces_its_rows_in_one_round_trip(store, monkeypatch):
    """The replaced rows go in one statement of deletes, the new ones in one of inserts (raw.in_one)."""
    from datetime import datetime

    from dacs_fhir import domain as d
    from dacs_fhir.mappers import report_json
    from dacs_fhir.store import raw

    study = f"2.25.{uuid.uuid4().int}"

    def report(dlp: float, events: int):
        return d.DoseReport(
            sop_instance_uid=f"{study}.1", sop_class_uid="1.2.840.10008.5.1.4.1.1.88.67", kind=d.CT,
            source=d.SOURCE_RDSR, study=d.Study(study, started=datetime(2024, 1, 2)), patient=d.Patient(id="X2"),
            events=tuple(d.IrradiationEvent(uid=f"{study}.{i}", kind="CT", measurements=(
                d.Measurement(d.Concept("DCM", "113838"), d.Quantity(dlp, "mGy.cm")),)) for i in range(events)),
            accumulated=(d.AccumulatedDose(measurements=(
                d.Measurement(d.Concept("DCM", "113813"), d.Quantity(dlp * events, "mGy.cm")),)),))

    sent = []
    real = raw.run_pipelined

    def spy(conn, statements, *args):
        if statements:
            sent.append([s[0] for s in statements])
        return real(conn, statements, *args)

    with store.transaction() as tx:
        first = report(100.0, 3)
        tx.record_dose_report(first, kept_json=report_json.dump(first))
    monkeypatch.setattr("dacs_fhir.store.transaction.run_pipelined", spy)
    with store.transaction() as tx:
        tx.create({"resourceType": "Device", "manufacturer": "ACME"})
        second = report(50.0, 2)
        tx.record_dose_report(second, kept_json=report_json.dump(second))
    assert len(sent) == 1 and len(sent[0]) == 2
    assert all(sql.startswith("WITH ") for sql in sent[0])
    assert "DELETE FROM irradiation_event" in sent[0][0] and "INSERT INTO resource " in sent[0][1]
    with store.engine.connect() as conn:
        total = conn.execute(text("SELECT value FROM dose_total WHERE study_uid = :s"), {"s": study}).scalars().all()
        events = conn.execute(text("SELECT dlp FROM irradiation_event WHERE study_uid = :s"), {"s": study}).scalars().all()
    assert total == [100.0] and events == [50.0, 50.0]


@pytest.mark.parametrize("value", [0.1 + 0.2, 1e-300, -0.0, 123456789012345678, float("nan"), Decimal("1.10")])
def test_rows_sent_as_json_or_arrays_are_stored_alike(store, value):
    """Index rows go as one JSON text (raw.ArrayInsert json_rows); what JSON cannot carry exactly goes as arrays."""
    from datetime import datetime, timezone

    from dacs_fhir.store.models import idx_code_quantity, idx_date
    from dacs_fhir.store.raw import ArrayInsert, run_pipelined

    pk = uuid.uuid4().int % 2 ** 40
    with store.transaction() as tx:
        created = tx.create({"resourceType": "Device", "manufacturer": "ACME"}).resource["id"]
    with store.engine.connect() as conn:
        res_pk = conn.execute(text("SELECT pk FROM resource WHERE rid = :r"), {"r": created}).scalar()
    texts = ['quote " backslash \\ tab \t', "Ångström 線量 🩻", None]
    quantity_rows = [dict(res_pk=res_pk, rtype="Device", param=f"p{pk}", system=t, code=f"c{i}", value=value,
                          unit_system=None, unit_code="mGy") for i, t in enumerate(texts)]
    date_rows = [dict(res_pk=res_pk, rtype="Device", param=f"p{pk}", low=datetime(1, 1, 1), high=when, wide=True)
                 for when in (datetime(2024, 5, 6, 7, 8, 9, 123456), datetime(2024, 5, 6, 7, 8, 9, tzinfo=timezone.utc))]
    json_sql = []
    for table, rows in ((idx_code_quantity, quantity_rows), (idx_date, date_rows[:1]), (idx_date, date_rows[1:])):
        as_json, as_arrays = ArrayInsert(table, json_rows=True).bind(rows), ArrayInsert(table).bind(rows)
        json_sql.append("json_populate_recordset" in as_json[0])
        with store.engine.begin() as conn:
            for statement in (as_json, as_arrays):
                run_pipelined(conn, [statement])
    exact = not isinstance(value, Decimal) and value == value  # a finite float or int: sent as JSON
    assert json_sql == [exact, True, False]
    with store.engine.connect() as conn:
        stored = conn.execute(text("SELECT system, code, value, unit_code FROM idx_code_quantity WHERE param = :p "
                                   "ORDER BY code"), {"p": f"p{pk}"}).all()
        dates = conn.execute(text("SELECT low, high, wide FROM idx_date WHERE param = :p ORDER BY high"),
                             {"p": f"p{pk}"}).all()
    assert [r[:2] for r in stored] == [(t, f"c{i}") for i, t in enumerate(texts) for _ in range(2)]
    if value == value:
        assert {r[2] for r in stored} == {float(value)}
    else:
        assert all(r[2] != r[2] for r in stored)  # NaN kept as NaN, not turned into NULL
    assert len(dates) == 4 and dates[0] == dates[1] and dates[2] == dates[3]
    assert {d[1] for d in dates} == {datetime(2024, 5, 6, 7, 8, 9), datetime(2024, 5, 6, 7, 8, 9, 123456)}
    assert {d[0] for d in dates} == {datetime(1, 1, 1)}


def test_statements_in_one_keep_their_parameters_apart():
    from dacs_fhir.store.raw import in_one

    [(sql, params)] = in_one([("INSERT INTO a SELECT * FROM unnest(CAST(%(x)b AS int[]))", {"x": [1]}),
                              ("WITH d AS (DELETE FROM b WHERE k = %(x)s) SELECT 1", {"x": "k"}),
                              ("DELETE FROM c WHERE v LIKE '%%(x)s'", {})])
    assert sql == ("WITH w0 AS (INSERT INTO a SELECT * FROM unnest(CAST(%(w0_x)b AS int[]))), "
                   "d AS (DELETE FROM b WHERE k = %(w1_x)s), w2 AS (DELETE FROM c WHERE v LIKE '%%(x)s') SELECT 1")
    assert params == {"w0_x": [1], "w1_x": "k"}
    assert in_one([("SELECT 1", {})]) == [("SELECT 1", {})] and in_one([]) == []
    with pytest.raises(ValueError):
        in_one([("SELECT 1", {}), ("SELECT 2", {}, {"prepare": False})])


def test_a_search_store_plans_with_values_and_a_worker_store_may_reuse_plans(store):
    worker = Store(URL, generic_plans=True)
    try:
        for s, mode in ((store, "force_custom_plan"), (worker, "auto")):
            with s.engine.connect() as conn:
                assert conn.execute(text("SHOW plan_cache_mode")).scalar() == mode
    finally:
        worker.dispose()


def test_a_connection_dropped_while_idle_in_the_pool_is_replaced(monkeypatch):
    """No ping per checkout: a pooled connection is tested only after idle time, and a dead one is replaced."""
    import dacs_fhir.store.store as store_module

    s = Store(URL)
    admin = Store(URL)
    try:
        with s.engine.connect() as conn:
            pid = conn.execute(text("SELECT pg_backend_pid()")).scalar()
        with admin.engine.begin() as conn:  # what a server restart does to the pooled connection
            assert conn.execute(text("SELECT pg_terminate_backend(:p)"), {"p": pid}).scalar()
        clock = store_module.time.monotonic
        monkeypatch.setattr(store_module.time, "monotonic", lambda: clock() + 60)
        with s.engine.connect() as conn:
            assert conn.execute(text("SELECT pg_backend_pid()")).scalar() != pid
    finally:
        s.dispose()
        admin.dispose()


def test_resource_keys_are_drawn_ahead_and_never_shared_with_a_forked_process(store, monkeypatch):
    import dacs_fhir.store.transaction as transaction_module

    with store.transaction() as tx:
        first = tx.create({"resourceType": "Device", "manufacturer": "ACME"})
    with store.transaction() as tx:
        second = tx.create({"resourceType": "Device", "manufacturer": "ACME"})
    with store.engine.connect() as conn:
        pks = dict(conn.execute(text("SELECT rid, pk FROM resource WHERE rid IN (:a, :b)"),
                                {"a": first.resource["id"], "b": second.resource["id"]}).all())
    assert pks[second.resource["id"]] == pks[first.resource["id"]] + 1  # from the keys drawn by the first
    pid = transaction_module.os.getpid()
    monkeypatch.setattr(transaction_module.os, "getpid", lambda: pid + 1)  # as in a prefork child
    with store.transaction() as tx:
        third = tx.create({"resourceType": "Device", "manufacturer": "ACME"})
    with store.engine.connect() as conn:
        pk3 = conn.execute(text("SELECT pk FROM resource WHERE rid = :r"), {"r": third.resource["id"]}).scalar()
        last = conn.execute(text("SELECT last_value FROM resource_pk_seq")).scalar()
    assert pk3 > pks[second.resource["id"]] + 1 and pk3 == last - store._keys.batch + 1  # a fresh draw
