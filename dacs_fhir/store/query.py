"""Search parameters to SQL: each parameter is a ``pk IN (index rows)`` semi-join on one index table,
comma values are OR, repeated parameters AND (FHIR R4 search.html)."""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from decimal import Decimal, InvalidOperation, getcontext
from typing import Optional

from sqlalchemy import ColumnElement, Select, and_, false, func, not_, or_, select, true, union_all

from . import dates, errors, searchparams
from .models import INDEX_TABLES, resource as R
from .quantities import canonical

PREFIXES = ("eq", "ne", "gt", "lt", "ge", "le", "sa", "eb", "ap")
CONTROL = {"_sort", "_include", "_revinclude", "_summary", "_elements", "_total", "_count", "_format",
           "_pretty", "_getpagesoffset", "_offset", "_include:iterate", "_revinclude:iterate",
           "_include:recurse", "_revinclude:recurse", "_contained", "_containedType"}
MODIFIERS = {
    "token": {"", "not", "missing"},
    "string": {"", "exact", "contains", "missing"},
    "date": {"", "missing"},
    "reference": {"", "missing"},  # plus a resource type, e.g. subject:Patient
    "quantity": {"", "missing"},
    "uri": {"", "below", "missing"},
    "composite": {"", "missing"},
}
_SPLIT = re.compile(r"(?<!\\),")
# what one search may ask: beyond these a statement outgrows the database (SQLite: expression depth
# 1000, sqlite.org/limits.html), so the client gets 400 naming the limit instead of 500 / 503
MAX_PARAMETERS = 50  # (name, value) pairs of one search
MAX_VALUES = 100  # comma-separated alternatives of one parameter (OR)
_LOWEST_FLOOR = dates.MIN + dates.NARROW  # a floor below it cannot be computed, and would bound nothing


@dataclass
class Query:
    """A compiled search: WHERE conditions on the resource table plus result controls."""

    conditions: list[ColumnElement] = field(default_factory=list)
    sort: list[tuple[str, bool]] = field(default_factory=list)  # (parameter, descending)
    include: list[tuple[str, str, Optional[str]]] = field(default_factory=list)  # (source type, param, target)
    revinclude: list[tuple[str, str, Optional[str]]] = field(default_factory=list)
    summary: Optional[str] = None
    elements: list[str] = field(default_factory=list)
    total: Optional[str] = None
    warnings: list[str] = field(default_factory=list)
    # index subqueries every match must be in, and whether other conditions need the resource table
    # (when not, counting is an index-only intersection)
    index_rows: list = field(default_factory=list)
    resource_level: bool = False
    # the search is one date range on a single-valued parameter: its index rows as (res_pk, low, high),
    # one per match, so a page is the first rows in index order and needs no de-duplication
    date_rows: Optional[Select] = None


def compile_query(rtype: str, params: list[tuple[str, str]], strict: bool = False) -> Query:
    """Compile raw (name, value) query pairs for a search on ``rtype``."""
    if len(params) > MAX_PARAMETERS:
        raise errors.InvalidSearch(f"a search takes at most {MAX_PARAMETERS} parameters, not {len(params)}")
    q = Query(conditions=[R.c.rtype == rtype, R.c.deleted == false()])
    params, ranges = _date_ranges(rtype, params)
    for rows, ordered in ranges:
        q.conditions.append(R.c.pk.in_(rows))
        q.index_rows.append(rows)
        q.date_rows = ordered
    for name, value in params:
        base = name.split(":", 1)[0]
        if name in CONTROL or base in ("_include", "_revinclude"):
            _control(q, rtype, name, value, strict)
            continue
        try:
            cond, rows = condition(rtype, name, value)
        except _Unknown as exc:
            if strict:
                raise errors.InvalidSearch(str(exc)) from None
            q.warnings.append(str(exc))
            continue
        q.conditions.append(cond)
        if rows is None:
            q.resource_level = True
        else:
            q.index_rows.append(rows)
    if len(q.index_rows) != 1 or q.resource_level:
        q.date_rows = None
    return q


class _Unknown(Exception):
    """An unknown parameter or modifier: ignored with a warning, or 400 under strict handling."""


def _control(q: Query, rtype: str, name: str, value: str, strict: bool) -> None:
    if name == "_sort":
        for item in split_values(value, name):
            desc = item.startswith("-")
            pname = item.lstrip("-")
            if pname not in searchparams.RESOURCE_COLUMNS and searchparams.param(rtype, pname) is None:
                raise errors.InvalidSearch(f"unknown _sort parameter {pname!r} for {rtype}")
            q.sort.append((pname, desc))
    elif name.startswith(("_include", "_revinclude")):
        parts = value.split(":")
        if len(parts) < 2 or (parts[1] != "*" and searchparams.param(parts[0], parts[1]) is None):
            msg = f"unknown {name.split(':')[0]} {value!r}"
            if strict:
                raise errors.InvalidSearch(msg)
            q.warnings.append(msg)
            return
        spec = (parts[0], parts[1], parts[2] if len(parts) > 2 else None)
        if name.startswith("_include"):
            if parts[0] != rtype:
                q.warnings.append(f"_include {value!r} does not start at {rtype}; ignored")
                return
            q.include.append(spec)
        else:
            q.revinclude.append(spec)
    elif name == "_summary":
        if value not in ("true", "false", "count", "text", "data"):
            raise errors.InvalidSearch(f"_summary must be true, false, count, text or data, not {value!r}")
        q.summary = value
    elif name == "_elements":
        q.elements += [e.strip() for e in value.split(",") if e.strip()]
    elif name == "_total":
        if value not in ("none", "estimate", "accurate"):
            raise errors.InvalidSearch(f"_total must be none, estimate or accurate, not {value!r}")
        q.total = value
    elif strict and name not in ("_count", "_format", "_pretty", "_getpagesoffset", "_offset"):
        raise errors.InvalidSearch(f"{name} is not supported")


def split_values(value: str, name: str = "a parameter") -> list[str]:
    """Comma-separated alternatives, ``\\,`` kept as a literal comma; at most MAX_VALUES."""
    values = _SPLIT.split(value, maxsplit=MAX_VALUES)
    if len(values) > MAX_VALUES:
        raise errors.InvalidSearch(f"{name} takes at most {MAX_VALUES} comma-separated values")
    return [v.replace("\\,", ",") for v in values]


def _unescape(text: str) -> str:
    return text.replace("\\|", "|").replace("\\$", "$").replace("\\\\", "\\")


def condition(rtype: str, name: str, value: str) -> tuple[ColumnElement, Optional[Select]]:
    """One parameter occurrence: (condition on the resource table, the index subquery every match
    is in, or None when the condition is not of that form, e.g. ``:missing=true``, ``:not``)."""
    pname, _, modifier = name.partition(":")
    chain = None
    if "." in pname:
        pname, chain = pname.split(".", 1)
    elif "." in modifier:
        modifier, chain = modifier.split(".", 1)
    if pname in searchparams.RESOURCE_COLUMNS:
        return _resource_column(pname, modifier, value), None
    p = searchparams.param(rtype, pname)
    if p is None:
        raise _Unknown(f"unknown search parameter {pname!r} for {rtype}; ignored")
    if chain is not None:
        if p.type != "reference":
            raise errors.InvalidSearch(f"{pname} is not a reference; it cannot be chained")
        return _chained(rtype, p, modifier, chain, value)
    if modifier not in MODIFIERS[p.type] and not (p.type == "reference" and modifier[:1].isupper()):
        raise errors.InvalidSearch(f"modifier :{modifier} is not supported on {pname} ({p.type})")
    table = INDEX_TABLES[p.table_kind]
    rows = select(table.c.res_pk).where(table.c.rtype == rtype, _param_is(table, p))
    if modifier == "missing":
        if value not in ("true", "false"):
            raise errors.InvalidSearch(f"{name} must be true or false")
        return (R.c.pk.not_in(rows), None) if value == "true" else (R.c.pk.in_(rows), rows)
    alternatives = [_value_condition(p, table, modifier, v) for v in split_values(value, pname)]
    rows = rows.where(or_(*alternatives))
    return (R.c.pk.not_in(rows), None) if modifier == "not" else (R.c.pk.in_(rows), rows)


def _param_is(table, p) -> ColumnElement:
    names = p.index_names
    cond = table.c.param == names[0] if len(names) == 1 else table.c.param.in_(names)
    if p.stored_as and p.type == "reference" and p.targets:
        cond = and_(cond, table.c.target_type.in_(p.targets))
    return cond


def _date_ranges(rtype: str, params: list[tuple[str, str]]):
    """Repeated plain date parameters (``date=ge…&date=lt…``) as one range on one index row."""
    groups: dict[str, list[str]] = {}
    rest = []
    for name, value in params:
        p = searchparams.param(rtype, name)
        if p is not None and p.type == "date" and "," not in value:
            groups.setdefault(name, []).append(value)
        else:
            rest.append((name, value))
    conditions = []
    table = INDEX_TABLES["date"]
    for name, values in groups.items():
        p = searchparams.known(rtype, name)
        where = (table.c.rtype == rtype, _param_is(table, p))
        rows = _date_rows(table, select(table.c.res_pk).where(*where), values)
        ordered = _date_rows(table, select(table.c.res_pk, table.c.low, table.c.high).where(*where), values) if p.single else None
        conditions.append((rows, ordered))
    return rest, conditions


def _date_rows(table, base, values: list[str]):
    """Index rows matching all ``values``. Narrow rows (the bulk) get a lower bound on ``low``, so
    each half is a bounded range scan the planner can estimate."""
    c = table.c
    conds, floors = [], []
    for v in values:
        conds.append(_date_condition(c.low, c.high, v))
        floor = _high_floor(v)
        if floor is not None and floor >= _LOWEST_FLOOR:
            floors.append(c.low > floor - dates.NARROW)
    if not floors:
        return base.where(*conds)
    return union_all(base.where(c.wide == false(), *floors, *conds), base.where(c.wide == true(), *conds))


def _high_floor(value: str) -> Optional[datetime]:
    """The x of a ``high > x`` / ``high >= x`` the prefix implies, if any."""
    prefix, text = _prefix(value)
    try:
        plo, phi = dates.parse_range(text)
    except (ValueError, OverflowError):
        return None
    return {"eq": plo, "ge": plo, "gt": phi, "sa": phi, "le": None, "lt": None, "eb": None}.get(prefix)


def _chained(rtype: str, p, type_modifier: str, chain: str, value: str) -> tuple[ColumnElement, Select]:
    """``subject:Patient.identifier=x``: references to resources of the target type that match."""
    targets = (type_modifier,) if type_modifier else p.targets
    if len(targets) != 1:
        raise errors.InvalidSearch(f"chained {p.name} needs a target type, e.g. {p.name}:Patient.{chain}")
    target = targets[0]
    inner = compile_query(target, [(chain, value)], strict=True)
    ids = select(R.c.rid).where(*inner.conditions)
    table = INDEX_TABLES["reference"]
    rows = select(table.c.res_pk).where(table.c.rtype == rtype, _param_is(table, p),
                                        table.c.target_type == target, table.c.target_id.in_(ids))
    return R.c.pk.in_(rows), rows


def _resource_column(pname: str, modifier: str, value: str) -> ColumnElement:
    if modifier not in ("", "not"):
        raise errors.InvalidSearch(f"modifier :{modifier} is not supported on {pname}")
    values = split_values(value, pname)
    if pname == "_id":
        cond = R.c.rid.in_(values)
        return not_(cond) if modifier == "not" else cond
    return or_(*[_date_condition(R.c.last_updated, R.c.last_updated, v, point=True) for v in values])


def _value_condition(p, table, modifier: str, value: str) -> ColumnElement:
    c = table.c
    if p.type == "token":
        return _token_condition(c.system, c.code, value)
    if p.type == "string":
        if modifier == "exact":
            return c.exact == value
        pattern = _like_escape(searchparams.normalise_text(value))
        return c.norm.like(f"%{pattern}%" if modifier == "contains" else f"{pattern}%", escape="\\")
    if p.type == "date":
        return _date_condition(c.low, c.high, value)
    if p.type == "reference":
        return _reference_condition(p, c, modifier, value)
    if p.type == "quantity":
        if p.table_kind == "composite":
            return _quantity_condition(c.value, c.unit_system, c.unit_code, value)
        return _quantity_condition(c.value, c.system, c.code, value)
    if p.type == "uri":
        return c.uri.like(_like_escape(value) + "%", escape="\\") if modifier == "below" else c.uri == value
    if p.type == "composite":
        if "$" not in value.replace("\\$", ""):
            raise errors.InvalidSearch(f"{p.name} needs code$value, e.g. 113813$gt500, not {value!r}")
        code, quantity = re.split(r"(?<!\\)\$", value, maxsplit=1)
        return and_(_token_condition(c.system, c.code, code),
                    _quantity_condition(c.value, c.unit_system, c.unit_code, quantity))
    raise errors.InvalidSearch(f"{p.name}: unsupported parameter type {p.type}")


def _like_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def split_pipe(text: str) -> list[str]:
    return [_unescape(t) for t in re.split(r"(?<!\\)\|", text)]


def _token_condition(system_col, code_col, value: str) -> ColumnElement:
    parts = split_pipe(value)
    if len(parts) == 1:
        return code_col == parts[0]
    system, code = parts[0], "|".join(parts[1:])
    if not system:
        return and_(code_col == code, system_col.is_(None))
    if not code:
        return system_col == system
    return and_(code_col == code, system_col == system)


def _prefix(value: str) -> tuple[str, str]:
    if value[:2] in PREFIXES and len(value) > 2 and (value[2].isdigit() or value[2] in "-+."):
        return value[:2], value[2:]
    return "eq", value


def _date_condition(low, high, value: str, point: bool = False) -> ColumnElement:
    prefix, text = _prefix(value)
    try:
        plo, phi = dates.parse_range(text)
    except (ValueError, OverflowError):  # OverflowError: a range ending after 9999-12-31
        raise errors.InvalidSearch(f"invalid date {value!r} (expected [prefix]YYYY[-MM[-DD[Thh:mm:ss[zone]]]])") from None
    if point:  # a single instant t: [t, t]
        ops = {"eq": and_(low >= plo, low < phi), "gt": low >= phi, "lt": low < plo, "ge": low >= plo,
               "le": low < phi, "sa": low >= phi, "eb": low < plo}
    else:
        ops = {"eq": and_(low >= plo, high <= phi), "gt": high > phi, "lt": low < plo, "ge": high > plo,
               "le": low < phi, "sa": low >= phi, "eb": high <= plo}
    if prefix == "ne":
        return not_(ops["eq"])
    if prefix == "ap":  # approximately: within 10 % of the distance to now, at least a day
        slack = max(abs(datetime.now(timezone.utc).replace(tzinfo=None) - plo) / 10, timedelta(days=1))
        try:
            return and_(low < phi + slack, (low if point else high) >= plo - slack)
        except OverflowError:  # the range reaches past year 1 or 9999
            raise errors.InvalidSearch(f"date {value!r} with ap is too close to year 1 or 9999") from None
    return ops[prefix]


def _quantity_condition(value_col, system_col, code_col, value: str) -> ColumnElement:
    parts = split_pipe(value)
    prefix, number_text = _prefix(parts[0])
    system = parts[1] if len(parts) > 1 and parts[1] else None
    code = parts[2] if len(parts) > 2 and parts[2] else None
    try:
        number = Decimal(number_text)
        if not number.is_finite():
            raise InvalidOperation
        exponent = number.as_tuple().exponent
        assert isinstance(exponent, int)  # a finite number's exponent
        half = Decimal(1).scaleb(exponent) / 2  # implicit precision (search.html#number)
        low, high = number - half, number + half
    except ArithmeticError:  # not a number, or an exponent past the decimal context's range
        raise errors.InvalidSearch(f"invalid quantity {value[:80]!r} (expected [prefix]number[|system|code], "
                                   f"exponent within ±{getcontext().Emax})") from None
    if code:
        factor, code = canonical(Decimal(1), system, code)
        number, low, high = number * factor, low * factor, high * factor
    n, lo, hi = float(number), float(low), float(high)
    ops = {"eq": and_(value_col >= lo, value_col < hi), "ne": or_(value_col < lo, value_col >= hi),
           "gt": value_col > n, "lt": value_col < n, "ge": value_col >= n, "le": value_col <= n,
           "sa": value_col > n, "eb": value_col < n,
           "ap": and_(value_col >= n - abs(n) * 0.1, value_col <= n + abs(n) * 0.1)}
    cond = ops[prefix]
    if code:
        cond = and_(cond, code_col == code)
    if system:
        cond = and_(cond, system_col == system)
    return cond


def _reference_condition(p, c, modifier: str, value: str) -> ColumnElement:
    rtype, rid = searchparams.split_reference(value)
    if rid is None:
        if "/" in value or ":" in value:
            return c.url == value
        rid = value
        if modifier:
            rtype = modifier
        elif len(p.targets) == 1:
            rtype = p.targets[0]
    cond = c.target_id == rid
    return and_(cond, c.target_type == rtype) if rtype else cond


def sort_key(rtype: str, pname: str, descending: bool):
    """An ORDER BY expression for ``_sort`` on one parameter (lowest value first, highest for ``-``)."""
    col: ColumnElement
    if pname == "_id":
        col = R.c.rid
    elif pname == "_lastUpdated":
        col = R.c.last_updated
    else:
        p = searchparams.known(rtype, pname)  # _sort names are checked by the query's parser
        table = INDEX_TABLES[p.table_kind]
        column = {"token": "code", "string": "norm", "date": "high" if descending else "low",
                  "reference": "target_id", "quantity": "value", "uri": "uri", "composite": "value"}[p.table_kind]
        agg = func.max if descending else func.min
        col = (select(agg(table.c[column])).where(table.c.res_pk == R.c.pk, _param_is(table, p))
               .scalar_subquery())
    return col.desc() if descending else col.asc()

