"""Runs a compiled search: one page of matches, total, _include/_revinclude, _summary and _elements
(FHIR R4 search.html#revinclude, #summary, #elements)."""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Optional, Sequence

from sqlalchemy import and_, func, select, union_all
from sqlalchemy.engine import Connection, Row

from . import searchparams, validation
from .models import idx_reference as REF, resource as R
from .query import compile_query, sort_key

COUNT_LIMIT = 1_000  # beyond this many matches the default total is left out (ask _total=accurate)
INCLUDE_LIMIT = 1_000


@dataclass
class SearchResult:
    total: Optional[int]
    resources: list[dict] = field(default_factory=list)
    included: list[dict] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def run_search(conn: Connection, rtype: str, params: list[tuple[str, str]], count: int = 50, offset: int = 0,
               strict: bool = False) -> SearchResult:
    q = compile_query(rtype, params, strict)
    where = q.conditions
    if q.summary == "count":
        return SearchResult(_count(conn, q), warnings=q.warnings)
    if not count:
        rows: Sequence[Row] = []
    elif not q.sort and q.date_rows is not None:
        # one date range: the first rows in (low, high, res_pk) order, the order of the date index, so
        # the database reads one page of index entries instead of sorting every match
        page = list(conn.execute(_date_page(q.date_rows, count, offset)).scalars())
        found = {r.pk: r for r in conn.execute(select(R.c.pk, R.c.rid, R.c.content).where(R.c.pk.in_(page)))}
        rows = [found[pk] for pk in page if pk in found]
    elif not q.sort and _index_only(q):
        # page of ids from the index tables alone, then the content of just that page
        page = list(conn.execute(_index_pks(q).order_by("res_pk").limit(count).offset(offset)).scalars())
        rows = conn.execute(select(R.c.pk, R.c.rid, R.c.content).where(R.c.pk.in_(page)).order_by(R.c.pk)).all()
    else:
        order = [sort_key(rtype, name, desc) for name, desc in q.sort] + [R.c.pk]
        rows = conn.execute(select(R.c.pk, R.c.rid, R.c.content).where(*where).order_by(*order)
                            .limit(count).offset(offset)).all()
    if q.total == "none":
        total = None
    elif offset == 0 and len(rows) < count:
        total = len(rows)
    elif q.total == "accurate":
        total = _count(conn, q)
    else:
        total = _count(conn, q, COUNT_LIMIT + 1)
        total = None if total > COUNT_LIMIT else total
    resources = [json.loads(r.content) for r in rows]
    included = _includes(conn, rows, q.include) + _revincludes(conn, rtype, rows, q.revinclude)
    seen = {(r["resourceType"], r["id"]) for r in resources}
    unique = []
    for res in included:
        key = (res["resourceType"], res["id"])
        if key not in seen:
            seen.add(key)
            unique.append(res)
    resources = [_shape(r, q.summary, q.elements) for r in resources]
    return SearchResult(total, resources, unique, q.warnings)


def _date_page(rows, count: int, offset: int):
    """res_pk of one page of date index rows in (low, high, res_pk) order. The narrow and wide halves
    (see ``query._date_rows``) are each cut to offset + count rows in index order before they are
    merged: PostgreSQL does not see the order of a union's index scans through the boolean ``wide``."""
    halves = []
    for part in getattr(rows, "selects", None) or [rows]:
        cols = part.selected_columns
        cut = part.order_by(cols.low, cols.high, cols.res_pk).limit(count + offset).subquery()
        halves.append(select(cut.c.res_pk, cut.c.low, cut.c.high))
    merged = (union_all(*halves) if len(halves) > 1 else halves[0]).subquery()
    return select(merged.c.res_pk).order_by(merged.c.low, merged.c.high, merged.c.res_pk).limit(count).offset(offset)


def _count(conn: Connection, q, limit: Optional[int] = None) -> int:
    """Number of matches (at most ``limit``); from the index tables alone when they suffice
    (index rows exist only for current versions, so they need no resource-table check)."""
    if q.date_rows is not None:  # one index row per match: nothing to de-duplicate
        sub = q.date_rows.subquery()
        pks = select(sub.c.res_pk)
    elif _index_only(q):
        pks = _index_pks(q)
    else:
        pks = select(R.c.pk).where(*q.conditions)
    if limit is not None:
        pks = pks.limit(limit)
    return conn.execute(select(func.count()).select_from(pks.subquery())).scalar_one()


def _index_only(q) -> bool:
    return bool(q.index_rows) and not q.resource_level


def _index_pks(q):
    """Distinct res_pk matching every index subquery: index rows exist only for current versions of
    live resources, so no resource-table check is needed."""
    first = q.index_rows[0].subquery()
    return select(first.c.res_pk).where(*[first.c.res_pk.in_(rows) for rows in q.index_rows[1:]]).distinct()


def _includes(conn: Connection, rows, specs) -> list[dict]:
    """Resources the page refers to through ``Type:param[:target]``."""
    if not rows or not specs:
        return []
    pks = [r.pk for r in rows]
    targets: set[tuple[str, str]] = set()
    for source, pname, target in specs:
        stmt = select(REF.c.target_type, REF.c.target_id).where(REF.c.res_pk.in_(pks), REF.c.target_id.is_not(None))
        if pname != "*":
            stmt = stmt.where(_reference_param(source, pname))
        if target:
            stmt = stmt.where(REF.c.target_type == target)
        targets.update((t, i) for t, i in conn.execute(stmt) if t)
    return _load(conn, targets)


def _revincludes(conn: Connection, rtype: str, rows, specs) -> list[dict]:
    """Resources of ``Type`` whose ``param`` refers to a resource of the page."""
    if not rows or not specs:
        return []
    ids = [r.rid for r in rows]
    found = []
    for source, pname, _target in specs:
        refs = select(REF.c.res_pk).where(REF.c.rtype == source, REF.c.target_type == rtype, REF.c.target_id.in_(ids))
        if pname != "*":
            refs = refs.where(_reference_param(source, pname))
        stmt = select(R.c.content).where(R.c.pk.in_(refs), R.c.deleted.is_(False)).limit(INCLUDE_LIMIT)
        found += [json.loads(c) for c in conn.execute(stmt).scalars()]
    return found


def _reference_param(source: str, pname: str):
    """Index rows of reference parameter ``pname`` of ``source`` (patient: subject rows of type Patient)."""
    p = searchparams.param(source, pname)
    if p is None or p.type != "reference":
        return REF.c.param == pname
    cond = REF.c.param.in_(p.index_names)
    return and_(cond, REF.c.target_type.in_(p.targets)) if p.targets else cond


def _load(conn: Connection, keys: set[tuple[str, str]]) -> list[dict]:
    out = []
    by_type: dict[str, list[str]] = {}
    for t, i in keys:
        by_type.setdefault(t, []).append(i)
    for t, ids in by_type.items():
        stmt = select(R.c.content).where(R.c.rtype == t, R.c.rid.in_(ids), R.c.deleted.is_(False))
        out += [json.loads(c) for c in conn.execute(stmt).scalars()]
    return out


def _shape(resource: dict, summary: Optional[str], elements: list[str]) -> dict:
    """Apply ``_elements`` or ``_summary=true|text|data`` to one match."""
    if elements:
        return validation.subset(resource, set(elements))
    if summary == "true":
        return validation.subset(resource, set(validation.summary_elements(resource["resourceType"])))
    if summary == "text":
        return validation.subset(resource, {"text"} | _mandatory(resource["resourceType"]))
    if summary == "data":
        return validation.subset(resource, set(resource) - {"text"})
    return resource


def _mandatory(rtype: str) -> set[str]:
    fields = validation.model_class(rtype).model_fields
    return {(f.alias or n) for n, f in fields.items()
            if isinstance(f.json_schema_extra, dict) and f.json_schema_extra.get("element_required")}

