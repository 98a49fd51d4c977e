"""Lossless JSON form of the domain model, kept by the store to re-merge a study's reports.

Driven by the dataclass type hints of :mod:`dacs_fhir.domain`, so a field added there is carried
without change here. Fields equal to their default are left out; ``date`` and ``datetime`` are ISO
8601 strings (with the UTC offset when one was coded); floats go through JSON unchanged (``repr``
round-trips exactly).
"""
from __future__ import annotations

import dataclasses
import types
import typing
from datetime import date, datetime
from functools import lru_cache
from typing import Any, Callable, Union

from .. import domain
from ..domain import DoseReport

FORMAT = "dacs-fhir/dose-report"
VERSION = 1


def dump(report: DoseReport) -> dict:
    """A JSON-serialisable dict of ``report`` (``json.dumps`` ready)."""
    return {"format": FORMAT, "version": VERSION, "report": _dump_dataclass(report)}


def load(data: dict) -> DoseReport:
    """The :class:`DoseReport` of a dict made by :func:`dump`; ValueError for anything else."""
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise ValueError("not a dose report JSON form")
    if data.get("version") != VERSION:
        raise ValueError(f"unsupported dose report JSON version {data.get('version')!r}")
    return _load_dataclass(DoseReport, data["report"])


_REQUIRED = object()


def _dump_dataclass(obj: DoseReport) -> dict:
    return _encoder(DoseReport)(obj)


def _load_dataclass(cls: type, data: dict):
    return _decoder(cls)(data)


def _strip_optional(hint):
    origin = typing.get_origin(hint)
    if origin is Union or origin is types.UnionType:
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        return args[0] if len(args) == 1 else hint
    return hint


@lru_cache(maxsize=None)
def _fields(cls: type) -> tuple[tuple[str, Any, Any], ...]:
    """(name, type hint, default) of each field; ``_REQUIRED`` when there is no default."""
    hints = typing.get_type_hints(cls, vars(domain))
    out = []
    for f in dataclasses.fields(cls):
        if f.default is not dataclasses.MISSING:
            default = f.default
        elif f.default_factory is not dataclasses.MISSING:
            default = f.default_factory()
        else:
            default = _REQUIRED
        out.append((f.name, hints[f.name], default))
    return tuple(out)


# Encoders and decoders are built once per type hint and cached: the store reloads every report
# of a study on each new object, so this path is hot.


@lru_cache(maxsize=None)
def _encoder(hint) -> Callable[[Any], Any]:
    hint = _strip_optional(hint)
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        return _dataclass_encoder(hint)
    if hint is datetime or hint is date:
        return lambda v: None if v is None else v.isoformat()
    if typing.get_origin(hint) is tuple:
        args = typing.get_args(hint)
        if len(args) == 2 and args[1] is Ellipsis:
            item = _encoder(args[0])
            return lambda v: None if v is None else [item(x) for x in v]
        items = tuple(_encoder(a) for a in args)
        return lambda v: None if v is None else [f(x) for f, x in zip(items, v, strict=True)]
    return _same


def _same(value):
    """The encoder of values JSON takes as they are (str, int, float, bool)."""
    return value


def _dataclass_encoder(cls: type) -> Callable[[Any], Any]:
    plan = []
    for name, hint, default in _fields(cls):
        encode = _encoder(hint)
        # a field is left out when its JSON form equals the default's (Concept == ignores meanings)
        plan.append((name, encode, _MISSING if default is _REQUIRED else encode(default)))

    def encode_obj(obj):
        if obj is None:
            return None
        out = {}
        for name, encode, default in plan:
            value = getattr(obj, name)
            if encode is not _same:  # most fields are plain values: no call for them
                value = encode(value)
            if value != default or type(value) is not type(default):
                out[name] = value
        return out

    return encode_obj


_MISSING = object()


@lru_cache(maxsize=None)
def _decoder(hint) -> Callable[[Any], Any]:
    hint = _strip_optional(hint)
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        return _dataclass_decoder(hint)
    if hint is datetime:
        return lambda v: None if v is None else datetime.fromisoformat(v)
    if hint is date:
        return lambda v: None if v is None else date.fromisoformat(v)
    if hint is float:
        return lambda v: None if v is None else float(v)
    if typing.get_origin(hint) is tuple:
        args = typing.get_args(hint)
        if len(args) == 2 and args[1] is Ellipsis:
            item = _decoder(args[0])
            return lambda v: None if v is None else tuple(item(x) for x in v)
        items = tuple(_decoder(a) for a in args)
        return lambda v: None if v is None else tuple(f(x) for f, x in zip(items, v, strict=True))
    return lambda v: v


def _dataclass_decoder(cls: type) -> Callable[[Any], Any]:
    decoders = {name: _decoder(hint) for name, hint, _ in _fields(cls)}

    def decode_obj(data):
        if data is None:
            return None
        try:
            return cls(**{name: decoders[name](value) for name, value in data.items()})
        except KeyError as exc:
            raise ValueError(f"unknown field {exc.args[0]!r} for {cls.__name__}") from None
        except (TypeError, AttributeError) as exc:
            raise ValueError(f"malformed {cls.__name__}: {exc}") from None

    return decode_obj
