"""JSON text: compact text of stored documents (resources, kept dose reports), and the nesting depth
of inbound JSON measured before it is parsed.

orjson writes what ``json.dumps(value, separators=(",", ":"), ensure_ascii=False)`` writes, keys in
their order, in about a tenth of the time: every stored object's resources are serialised once
each, and the standard library's encoder was a fourteenth of a worker's CPU. Values orjson does
not take (float subclasses such as pydicom's DSfloat, integers beyond 64 bits) go through the
standard library's encoder.
"""
from __future__ import annotations

import json
import re

import orjson

MAX_DEPTH = 100  # nesting of objects and arrays accepted in inbound FHIR JSON (REST bodies, imports)


def compact(value) -> str:
    try:
        return orjson.dumps(value).decode()
    except TypeError:
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


# the nesting of a JSON text is that of its brackets outside strings: escapes go first (so an
# escaped quote does not end a string), then strings, then every byte but a bracket
_ESCAPE = re.compile(rb"\\.", re.S)
_STRING = re.compile(rb'"[^"]*"')
_INNERMOST = re.compile(rb"\[\]|\{\}")
_NOT_BRACKETS = bytes(c for c in range(256) if c not in b"[]{}")


def nesting_depth(raw: bytes, limit: int = MAX_DEPTH) -> int:
    """How deep objects and arrays nest in the JSON text ``raw``, counted up to ``limit + 1``
    without recursion: each pass removes the innermost empty pairs (C speed, no parse)."""
    brackets = _STRING.sub(b"", _ESCAPE.sub(b"", raw)).translate(None, _NOT_BRACKETS)
    depth = 0
    while brackets and depth <= limit:
        brackets, removed = _INNERMOST.subn(b"", brackets)
        if not removed:  # unbalanced: not JSON, the parser says so
            break
        depth += 1
    return depth
