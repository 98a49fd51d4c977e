"""Database tables: versioned resources, search index tables and dose analytics tables.

Resources are kept as JSON text (every version), the search index as narrow rows keyed by
(resource type, parameter, value) so searches are index range scans, never JSON scans.
"""
from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    UniqueConstraint,
)

metadata = MetaData(naming_convention={
    "ix": "ix_%(column_0_label)s", "uq": "uq_%(table_name)s_%(column_0_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s", "pk": "pk_%(table_name)s",
})

PK = BigInteger().with_variant(Integer, "sqlite")  # SQLite autoincrements INTEGER PRIMARY KEY only


def _res_pk(foreign_key: bool = False) -> Column:
    """The owning resource; index rows are derived data written with it, so they skip the FK check."""
    if foreign_key:
        return Column("res_pk", PK, ForeignKey("resource.pk", ondelete="CASCADE"), nullable=False)
    return Column("res_pk", PK, nullable=False)


# ---- resources and versions
resource = Table(
    "resource", metadata,
    Column("pk", PK, primary_key=True, autoincrement=True),
    Column("rtype", String(64), nullable=False),
    Column("rid", String(64), nullable=False),
    Column("version", Integer, nullable=False),
    Column("last_updated", DateTime, nullable=False),
    Column("deleted", Boolean, nullable=False, default=False),
    Column("content", Text),  # current version as JSON; NULL when deleted
    UniqueConstraint("rtype", "rid", name="uq_resource_rtype_rid"),
    Index("ix_resource_type_updated", "rtype", "last_updated"),
)

resource_version = Table(
    "resource_version", metadata,
    _res_pk(foreign_key=True),
    Column("version", Integer, nullable=False),
    Column("rtype", String(64), nullable=False),
    Column("rid", String(64), nullable=False),
    Column("last_updated", DateTime, nullable=False),
    Column("method", String(8), nullable=False),  # create | update | delete
    Column("content", Text),  # NULL for a delete (tombstone)
    PrimaryKeyConstraint("res_pk", "version", name="pk_resource_version"),
    Index("ix_version_updated", "last_updated"),
    Index("ix_version_type_updated", "rtype", "last_updated"),
)

# ---- search index (FHIR R4 search.html parameter types)
# Value indexes end in res_pk: a parameter's subquery is an index-only scan, and for an equality
# it yields res_pk in order, so a page of a large match set stops after a few index entries.
idx_token = Table(
    "idx_token", metadata, _res_pk(),
    Column("rtype", String(64), nullable=False), Column("param", String(64), nullable=False),
    Column("system", String), Column("code", String),
    Index("ix_token_value", "rtype", "param", "code", "system", "res_pk"),
    Index("ix_token_res", "res_pk", "param"),
)

idx_string = Table(
    "idx_string", metadata, _res_pk(),
    Column("rtype", String(64), nullable=False), Column("param", String(64), nullable=False),
    Column("norm", String, nullable=False),  # lower case, accents removed
    Column("exact", String, nullable=False),
    Index("ix_string_norm", "rtype", "param", "norm", "res_pk", postgresql_ops={"norm": "text_pattern_ops"}),
    Index("ix_string_res", "res_pk", "param"),
)

idx_date = Table(
    "idx_date", metadata, _res_pk(),
    Column("rtype", String(64), nullable=False), Column("param", String(64), nullable=False),
    Column("low", DateTime, nullable=False), Column("high", DateTime, nullable=False),  # [low, high)
    # wide: the range spans more than a day (a Period, a year); narrow rows have low > high - 1 day,
    # which turns "high > x" into a bounded range scan on low (see query.py)
    Column("wide", Boolean, nullable=False),
    Index("ix_date_low", "rtype", "param", "wide", "low", "high", "res_pk"),
    Index("ix_date_res", "res_pk", "param"),
)

idx_reference = Table(
    "idx_reference", metadata, _res_pk(),
    Column("rtype", String(64), nullable=False), Column("param", String(64), nullable=False),
    Column("target_type", String(64)), Column("target_id", String(255)),
    Column("url", String),  # as written, for references that are not Type/id
    Index("ix_reference_target", "target_id", "target_type", "param", "rtype", "res_pk"),
    Index("ix_reference_res", "res_pk", "param"),
)

idx_quantity = Table(
    "idx_quantity", metadata, _res_pk(),
    Column("rtype", String(64), nullable=False), Column("param", String(64), nullable=False),
    Column("value", Float, nullable=False), Column("system", String), Column("code", String),
    Index("ix_quantity_value", "rtype", "param", "code", "value", "system", "res_pk"),
    Index("ix_quantity_res", "res_pk", "param"),
)

idx_uri = Table(
    "idx_uri", metadata, _res_pk(),
    Column("rtype", String(64), nullable=False), Column("param", String(64), nullable=False),
    Column("uri", String, nullable=False),
    Index("ix_uri_value", "rtype", "param", "uri", "res_pk"),
    Index("ix_uri_res", "res_pk", "param"),
)

# composite token$quantity (e.g. Observation combo-code-value-quantity): one row per (code, value) pair
idx_code_quantity = Table(
    "idx_code_quantity", metadata, _res_pk(),
    Column("rtype", String(64), nullable=False), Column("param", String(64), nullable=False),
    Column("system", String), Column("code", String, nullable=False),
    Column("value", Float, nullable=False), Column("unit_system", String), Column("unit_code", String),
    Index("ix_code_quantity_value", "rtype", "param", "code", "value", "system", "unit_code", "res_pk"),
    Index("ix_code_quantity_res", "res_pk", "param"),
)

INDEX_TABLES = {
    "token": idx_token, "string": idx_string, "date": idx_date, "reference": idx_reference,
    "quantity": idx_quantity, "uri": idx_uri, "composite": idx_code_quantity,
}

# ---- dose analytics (derived from the domain model, same transaction as the resources)
dose_study = Table(
    "dose_study", metadata,
    Column("study_uid", String(64), primary_key=True),
    Column("patient_key", String(64)),  # sha256 of issuer|id, never the identifier itself
    Column("patient_ref", String(128)),  # Patient/<id> in this store
    Column("accession_number", String(64)),
    Column("started", DateTime),
    Column("modalities", String(64)),
    Column("institution", String(128)),
    Column("study_ref", String(128)),  # ImagingStudy/<id>
    Column("updated", DateTime, nullable=False),
    Index("ix_dose_study_patient", "patient_key"),
    Index("ix_dose_study_started", "started"),
)

dose_summary = Table(
    "dose_summary", metadata,
    Column("study_uid", String(64), ForeignKey("dose_study.study_uid", ondelete="CASCADE"), nullable=False),
    Column("kind", String(24), nullable=False),  # CT | PROJECTION | RADIOPHARMACEUTICAL
    Column("device_key", String(255), nullable=False),
    Column("source", String(24)), Column("modality", String(16)),
    Column("manufacturer", String(128)), Column("model", String(128)), Column("station_name", String(64)),
    Column("started", DateTime), Column("event_count", Integer),
    Column("summary_ref", String(128)),  # Observation/<id> of the dose summary
    PrimaryKeyConstraint("study_uid", "kind", "device_key", name="pk_dose_summary"),
    Index("ix_dose_summary_kind_started", "kind", "started"),
)

dose_total = Table(
    "dose_total", metadata,
    Column("study_uid", String(64), ForeignKey("dose_study.study_uid", ondelete="CASCADE"), nullable=False),
    Column("kind", String(24), nullable=False), Column("device_key", String(255), nullable=False),
    Column("scheme", String(16), nullable=False), Column("code", String(32), nullable=False),
    Column("qualifier", String(32), nullable=False, default=""),
    Column("value", Float, nullable=False), Column("unit", String(32), nullable=False),
    Index("ix_dose_total_study", "study_uid", "kind"),
    Index("ix_dose_total_code", "code", "kind"),
)

irradiation_event = Table(
    "irradiation_event", metadata,
    Column("study_uid", String(64), ForeignKey("dose_study.study_uid", ondelete="CASCADE"), nullable=False),
    Column("kind", String(24), nullable=False), Column("device_key", String(255), nullable=False),
    Column("event_uid", String(64), nullable=False),
    Column("started", DateTime), Column("event_type", String(32)), Column("protocol", String(255)),
    Column("target_region", String(32)),
    Column("ctdivol", Float), Column("dlp", Float), Column("ssde", Float),  # mGy, mGy.cm, mGy
    Column("dap", Float), Column("dose_rp", Float), Column("agd", Float),  # mGy.cm2, mGy, mGy
    Column("kvp", Float), Column("exposure_time", Float),  # kV, s
    Column("observation_ref", String(128)),
    Index("ix_irradiation_event_study", "study_uid", "kind"),
    Index("ix_irradiation_event_uid", "event_uid"),
    Index("ix_irradiation_event_protocol", "kind", "protocol"),
)

dose_report = Table(
    "dose_report", metadata,
    Column("study_uid", String(64), nullable=False),
    Column("sop_instance_uid", String(64), nullable=False),
    Column("kind", String(24)),
    Column("recorded", DateTime, nullable=False),
    Column("content", Text, nullable=False),  # mappers.report_json.dump(report)
    PrimaryKeyConstraint("study_uid", "sop_instance_uid", name="pk_dose_report"),
)

# ---- outbound queue (delivery.outbox): written in the transaction of the result it carries
outbox_message = Table(
    "outbox_message", metadata,
    Column("id", PK, primary_key=True, autoincrement=True),  # a destination's messages go in id order
    Column("destination", String, nullable=False),  # the destination URL
    Column("key", String(255)),  # idempotency key within a destination (NULL: none)
    Column("content_type", String(64), nullable=False),
    Column("report", Text),  # the result to send (report_json form), until its payload is built
    Column("corrected", Boolean, nullable=False, default=False),
    Column("payload", LargeBinary),  # the bytes sent, built once before the first attempt
    Column("status", String(16), nullable=False, default="pending"),  # pending | sent | parked | replayed
    Column("attempts", Integer, nullable=False, default=0),
    Column("next_attempt", Float, nullable=False, default=0.0),  # epoch seconds
    Column("last_error", Text, nullable=False, default=""),
    Column("created", Float, nullable=False),
    Column("sent", Float),
    UniqueConstraint("destination", "key", name="uq_outbox_message_destination_key"),
    Index("ix_outbox_message_queue", "destination", "status", "id"),
)

# one row per destination: its sender holds the row lock (PostgreSQL) or the lease (SQLite)
outbox_lease = Table(
    "outbox_lease", metadata,
    Column("destination", String, primary_key=True),
    Column("owner", String(255), nullable=False, default=""),  # host:pid:thread (SQLite lease)
    Column("until", Float, nullable=False, default=0.0),  # epoch seconds the SQLite lease lasts
)
