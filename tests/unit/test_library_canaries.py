"""Canaries: the undocumented library behaviour the code relies on (docs/architecture.md, section 4).

Each test checks one internal that a hot path uses (SQLAlchemy's compiled statement, psycopg's
query-conversion cache, pydicom's element dictionary and raw elements, pynetdicom's server list
and association socket, waitress' socket map, fhir.resources' field metadata). When a library
upgrade changes one, the failure names the library, its installed version, what changed and
which of our modules to fix.
"""
from __future__ import annotations

import inspect
import io
import socket
import threading
import urllib.request
from datetime import datetime
from importlib.metadata import version

import pytest


def expect(condition: object, library: str, what: str, used_by: str) -> None:
    """Fail with the library's installed version, what changed and who relied on it."""
    if not condition:
        pytest.fail(f"{library} {version(library)}: {what} no longer holds; {used_by} relies on it", pytrace=False)


# ---------------------------------------------------------------------------- SQLAlchemy (store/raw.py)


def _table():
    from sqlalchemy import Boolean, Column, DateTime, Integer, MetaData, String, Table

    return Table("canary", MetaData(), Column("pk", Integer, primary_key=True), Column("name", String),
                 Column("at", DateTime), Column("deleted", Boolean))


def test_sqlalchemy_compiled_statement_exposes_binds_and_processors() -> None:
    from sqlalchemy import bindparam, insert, select
    from sqlalchemy.dialects import postgresql, sqlite

    from dacs_fhir.store import raw

    t = _table()
    used_by = "store/raw.py Statement._for"
    c = insert(t).compile(dialect=sqlite.dialect(), column_keys=["pk", "name", "at", "deleted"])
    expect(isinstance(getattr(c, "_bind_processors", None), dict), "SQLAlchemy",
           "Compiled._bind_processors is a dict of bind name -> processor", used_by)
    at = c._bind_processors.get("at")
    expect(callable(at) and isinstance(at(datetime(2024, 5, 1, 12, 0)), str), "SQLAlchemy",
           "the SQLite DateTime bind processor is in Compiled._bind_processors and gives a string", used_by)
    expect(c.positional and list(c.positiontup) == ["pk", "name", "at", "deleted"], "SQLAlchemy",
           "a qmark-compiled INSERT lists its bind names in order in Compiled.positiontup", used_by)

    q = select(t.c.pk).where(t.c.name == "literal", t.c.pk == bindparam("name"))
    c = q.compile(dialect=postgresql.psycopg.dialect())
    binds = {name: b for b, name in c.bind_names.items()}
    literal = [b for b in binds.values() if b.value == "literal"]
    expect(len(literal) == 1 and not literal[0].required, "SQLAlchemy",
           "a literal in a WHERE clause is a BindParameter in Compiled.bind_names with its value, not required", used_by)
    expect(binds.get("name") is not None and binds["name"].required and binds["name"].value is None, "SQLAlchemy",
           "an explicit bindparam() is a required BindParameter without a value", used_by)
    expect(not c.positional and sorted(name for name, _ in raw._PLACEHOLDER.findall(c.string)) == sorted(binds),
           "SQLAlchemy",
           "the psycopg dialect compiles named %(name)s placeholders", "store/raw.py _PLACEHOLDER and in_one")


def test_sqlalchemy_statement_runs_on_the_dbapi_cursor() -> None:
    """Our Statement, end to end on SQLite: processors applied, literal binds filled in, rows as tuples."""
    from sqlalchemy import bindparam, create_engine, insert, select

    from dacs_fhir.store.raw import Statement

    t = _table()
    engine = create_engine("sqlite://")
    t.metadata.create_all(engine)
    write = Statement(insert(t), keys=["pk", "name", "at", "deleted"])
    read = Statement(select(t.c.pk, t.c.at).where(t.c.deleted == False, t.c.name == "a",  # noqa: E712
                                                  t.c.pk <= bindparam("most")))
    with engine.begin() as conn:
        write.execute(conn, {"pk": 1, "name": "a", "at": datetime(2024, 5, 1, 12, 0), "deleted": False})
        write.execute(conn, {"pk": 2, "name": "a", "at": datetime(2024, 5, 2, 12, 0), "deleted": True})
        rows = read.execute(conn, {"most": 5}).fetchall()
    expect(rows == [(1, "2024-05-01 12:00:00.000000")], "SQLAlchemy",
           f"compiled SQL, positiontup and bind processors run straight on sqlite3 (got {rows})",
           "store/raw.py Statement")


def test_sqlalchemy_union_keeps_its_selects() -> None:
    from sqlalchemy import select, union_all

    t = _table()
    a, b = select(t.c.pk).where(t.c.pk < 3), select(t.c.pk).where(t.c.pk > 5)
    expect(list(getattr(union_all(a, b), "selects", [])) == [a, b], "SQLAlchemy",
           "CompoundSelect.selects lists the selects of a UNION ALL", "store/searching.py _date_page")


# ---------------------------------------------------------------------------- psycopg (store/raw.py)


def test_psycopg_caches_the_parse_of_statements_within_our_limits() -> None:
    """``in_one`` sizes its combined statements so psycopg keeps their parse (``_query2pg``'s cache)."""
    from psycopg import _queries
    from psycopg.adapt import Transformer

    from dacs_fhir.store import raw

    used_by = "store/raw.py in_one (_CACHED_PARAMS, _CACHED_LENGTH)"
    expect(getattr(_queries, "MAX_CACHED_STATEMENT_PARAMS", 0) >= raw._CACHED_PARAMS
           and getattr(_queries, "MAX_CACHED_STATEMENT_LENGTH", 0) >= raw._CACHED_LENGTH, "psycopg",
           f"a query of up to {raw._CACHED_PARAMS} parameters and {raw._CACHED_LENGTH} bytes is cached "
           "(psycopg/_queries.py MAX_CACHED_STATEMENT_PARAMS / _LENGTH)", used_by)
    expect(hasattr(getattr(_queries, "_query2pg", None), "cache_info"), "psycopg",
           "psycopg._queries._query2pg is an lru_cache", used_by)
    part = "INSERT INTO t (a, b, c, d, e, f) VALUES (%(a)s, %(b)s, %(c)s, %(d)s, %(e)s, %(f)s)"
    statements = [(f"{part} -- {i}", dict.fromkeys("abcdef", i)) for i in range(30)]
    combined = raw.in_one(statements)
    expect(len(combined) > 1, "psycopg", "30 six-parameter parts do not fit one cached statement", used_by)
    for sql, params in combined:
        before = _queries._query2pg.cache_info().hits
        for _ in range(2):
            _queries.PostgresQuery(Transformer()).convert(sql, params)
        expect(_queries._query2pg.cache_info().hits > before, "psycopg",
               f"the parse of a {len(params)}-parameter, {len(sql)}-byte statement is kept and reused", used_by)


# ---------------------------------------------------------------------------- pydicom (mappers/)


def _part10(**attributes) -> bytes:
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    ds = Dataset()
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.88.67"
    ds.SOPInstanceUID = generate_uid()
    for name, value in attributes.items():
        setattr(ds, name, value)
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return buf.getvalue()


def test_pydicom_keeps_unread_elements_raw_in_dataset_dict() -> None:
    import pydicom
    from pydicom.dataelem import DataElement, RawDataElement

    used_by = "mappers/dicom_header.py text() and mappers/sr_tree.py read_tree"
    ds = pydicom.dcmread(io.BytesIO(_part10(PatientID="P1", StudyDescription="CT HEAD")))
    elements = getattr(ds, "_dict", None)
    expect(isinstance(elements, dict), "pydicom", "Dataset._dict is the dict of its elements by tag", used_by)
    raw = elements.get(0x00081030)  # a plain int finds the BaseTag key
    expect(type(raw) is RawDataElement and raw.value == b"CT HEAD " and raw.VR == "LO", "pydicom",
           "an element not yet accessed stays a RawDataElement in Dataset._dict (value: its bytes)", used_by)
    expect(ds.StudyDescription == "CT HEAD" and type(elements[0x00081030]) is DataElement, "pydicom",
           "accessing an element replaces its raw entry in Dataset._dict by a DataElement", used_by)


def test_pydicom_raw_element_and_file_dataset_shapes() -> None:
    from pydicom.dataelem import RawDataElement
    from pydicom.dataset import Dataset, FileDataset

    used_by = "mappers/dicom_fast.py fast_read"
    expect(RawDataElement._fields[:7] == ("tag", "VR", "length", "value", "value_tell", "is_implicit_VR",
                                          "is_little_endian"), "pydicom",
           "RawDataElement's first seven fields, built positionally", used_by)
    params = list(inspect.signature(FileDataset.__init__).parameters)
    expect(params[1:7] == ["filename_or_obj", "dataset", "preamble", "file_meta", "is_implicit_VR",
                           "is_little_endian"], "pydicom", "FileDataset's positional parameters", used_by)
    expect(list(inspect.signature(Dataset.set_original_encoding).parameters)[1:4]
           == ["is_implicit_vr", "is_little_endian", "character_encoding"], "pydicom",
           "Dataset.set_original_encoding(is_implicit_vr, is_little_endian, character_encoding)", used_by)
    ds = Dataset()
    ds.SpecificCharacterSet = "ISO_IR 100"
    expect(getattr(ds, "_character_set", None) == ["latin_1"], "pydicom",
           "Dataset._character_set gives the Python codecs of Specific Character Set", used_by)
    object.__setattr__(ds, "_dacs_canary", {1: 2})
    expect(ds.__dict__.get("_dacs_canary") == {1: 2} and len(ds) == 1, "pydicom",
           "an attribute set with object.__setattr__ sits in Dataset.__dict__, not among the elements",
           "mappers/dicom_fast.py PARSED")


def test_pydicom_reads_file_meta_up_to_the_data_set() -> None:
    from pydicom import filereader

    used_by = "mappers/dicom_fast.py fast_read"
    expect(callable(getattr(filereader, "_read_file_meta_info", None)), "pydicom",
           "pydicom.filereader._read_file_meta_info exists", used_by)
    data = _part10(PatientID="P1")
    fp = io.BytesIO(data)
    filereader.read_preamble(fp, False)
    meta = filereader._read_file_meta_info(fp)
    expect(meta.TransferSyntaxUID == "1.2.840.10008.1.2.1" and data[fp.tell():fp.tell() + 4] == b"\x08\x00\x16\x00",
           "pydicom", "_read_file_meta_info returns group 2 and leaves the stream at the first data set element",
           used_by)


def test_fast_read_matches_pydicom() -> None:
    """The whole fast reader on a fresh object: the same values as ``dcmread``."""
    import pydicom

    from dacs_fhir.mappers.dicom_fast import fast_read

    data = _part10(PatientID="P1", PatientName="Doe^Jane", StudyDescription="CT HEAD")
    fast, slow = fast_read(data), pydicom.dcmread(io.BytesIO(data))
    expect(fast is not None and [(e.tag, e.value) for e in fast] == [(e.tag, e.value) for e in slow]
           and fast.file_meta.TransferSyntaxUID == slow.file_meta.TransferSyntaxUID, "pydicom",
           "a dataset built from RawDataElements reads as dcmread's", "mappers/dicom_fast.py fast_read")


# ---------------------------------------------------------------------------- pynetdicom (listeners/dicom_scp.py)


def test_pynetdicom_ae_shutdown_stops_servers_in_its_server_list() -> None:
    from pynetdicom import AE
    from pynetdicom.sop_class import Verification
    from pynetdicom.transport import ThreadedAssociationServer

    used_by = "listeners/dicom_scp.py start_scp (ae._servers.append)"
    ae = AE()
    ae.add_supported_context(Verification)
    expect(isinstance(getattr(ae, "_servers", None), list), "pynetdicom", "AE._servers is a list", used_by)
    server = ae.make_server(("127.0.0.1", 0), server_class=ThreadedAssociationServer)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    ae._servers.append(server)
    ae.shutdown()
    thread.join(timeout=5)
    expect(not thread.is_alive() and ae._servers == [], "pynetdicom",
           "AE.shutdown() shuts down every server in AE._servers and empties it", used_by)


def test_pynetdicom_server_hooks_we_override() -> None:
    from pynetdicom.transport import ThreadedAssociationServer

    used_by = "listeners/dicom_scp.py _Server (TLS handshake in the connection's thread)"
    expect(inspect.getmodule(ThreadedAssociationServer.get_request).__name__ == "pynetdicom.transport", "pynetdicom",
           "the association server's own get_request accepts (and wraps TLS in the accept loop)", used_by)
    params = list(inspect.signature(ThreadedAssociationServer.process_request_thread).parameters)
    expect(params == ["self", "request", "client_address"], "pynetdicom",
           "ThreadedAssociationServer.process_request_thread(request, client_address)", used_by)


def test_pynetdicom_connection_event_reaches_the_socket() -> None:
    from pynetdicom import AE, evt
    from pynetdicom.sop_class import Verification

    seen: list[object] = []

    def on_open(event) -> None:
        seen.append(event.assoc.dul.socket.socket)

    scp = AE()
    scp.add_supported_context(Verification)
    server = scp.start_server(("127.0.0.1", 0), block=False, evt_handlers=[(evt.EVT_CONN_OPEN, on_open)])
    try:
        scu = AE()
        scu.add_requested_context(Verification)
        assoc = scu.associate("127.0.0.1", server.server_address[1])
        assert assoc.is_established
        assoc.release()
    finally:
        server.shutdown()
    expect(seen and isinstance(seen[0], socket.socket), "pynetdicom",
           "EVT_CONN_OPEN's event.assoc.dul.socket.socket is the connection's socket",
           "listeners/dicom_scp.py set_nodelay")


# ---------------------------------------------------------------------------- waitress (listeners/http_server.py)


def test_waitress_server_socket_map_and_clean_stop() -> None:
    from waitress import create_server

    from dacs_fhir.listeners.http_server import start_http

    used_by = "listeners/http_server.py HttpServer (polls and closes the server's socket map)"
    probe = create_server(lambda env, start: [], host="127.0.0.1", port=0)
    try:
        expect(isinstance(getattr(probe, "_map", None), dict) and probe.socket.fileno() in probe._map, "waitress",
               "a waitress server keeps its sockets in server._map", used_by)
        expect(callable(getattr(getattr(probe, "task_dispatcher", None), "shutdown", None)), "waitress",
               "server.task_dispatcher.shutdown()", used_by)
    finally:
        probe.close()

    def app(environ, start_response):
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"ok"]

    server = start_http(app)
    try:
        with urllib.request.urlopen(server.url + "/", timeout=5) as reply:
            body = reply.read()
    finally:
        server.stop()
    expect(body == b"ok" and not server._thread.is_alive(), "waitress",
           "serving from the socket map with wasyncore.loop and stopping with close_all", used_by)


# ---------------------------------------------------------------------------- fhir.resources (store/validation.py)


def test_fhir_resources_field_metadata_for_required_bindings_and_summary() -> None:
    from fhir.resources.R4B.observation import Observation
    from fhir.resources.R4B.patient import Patient

    used_by = "store/validation.py _code_rules and summary_elements"
    gender = Patient.model_fields["gender"].json_schema_extra
    expect(isinstance(gender, dict) and gender.get("enum_values") == ["male", "female", "other", "unknown"],
           "fhir.resources", "a required binding's codes are in json_schema_extra['enum_values']", used_by)
    status = Observation.model_fields["status"].json_schema_extra
    expect(isinstance(status, dict) and status.get("summary_element_property") is True
           and "+" in status.get("enum_values", []), "fhir.resources",
           "json_schema_extra marks summary elements and extensible bindings ('+')", used_by)
    patient = Patient.model_validate({"resourceType": "Patient", "gender": "female"})
    expect(patient.__dict__.get("gender") == "female", "fhir.resources",
           "a model's field values are in its __dict__ by field name", "store/validation.py _check_codes")


def test_required_binding_check_still_refuses_a_bad_code() -> None:
    from dacs_fhir.store import errors, validation

    with pytest.raises(errors.InvalidResource, match="gender"):
        validation.validate({"resourceType": "Patient", "gender": "bogus"})
    assert "status" in validation.summary_elements("Observation")
