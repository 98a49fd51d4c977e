"""Value readers of dose SR content items: NUM -> :class:`Measurement`, CODE, TEXT and UID readers.

One :class:`Context` per document carries what the readers share: the named
quirk fixes applied (they end up in ``DoseReport.quirks``), concept names
decoded once per code, and the document's character sets.
"""
from __future__ import annotations

from typing import Optional

from .. import codes as C
from ..domain import Concept, Measurement, Quantity
from ..units import UnitError, normalise, parse_decimal
from . import quirks as Q
from .sr_tree import Node, tree_of


class Context:
    """Per-document state: quirks applied, decoded concepts, the document's character sets."""

    __slots__ = ("sop_uid", "tree", "_quirks", "_concepts", "_quantities")

    def __init__(self, root: Node, sop_uid: str):
        self.sop_uid = sop_uid
        self.tree = tree_of(root)
        self._quirks: dict[str, None] = {}
        self._concepts: dict[tuple[str, str], Concept] = {}
        # (coded value, coded unit) -> (quantity or None, quirks applied): values and units repeat across events
        self._quantities: dict[tuple[str, str], tuple[Optional[Quantity], tuple[str, ...]]] = {}

    def quirk(self, name: Optional[str]) -> None:
        if name:
            self._quirks[name] = None

    def finish(self) -> tuple[str, ...]:
        if "SNM3" in self.tree.schemes:
            self.quirk(Q.snomed_scheme("SNM3")[1])
        return tuple(self._quirks)

    def concept(self, node: Node) -> Concept:
        """Concept name of a node (meanings decoded once per code)."""
        key = (node.scheme, node.code)
        c = self._concepts.get(key)
        if c is None:
            c = self._concepts[key] = node.concept
        return c

    def text(self, node: Node) -> str:
        """TEXT / PNAME / CODE-meaning value, repaired when UTF-8 bytes were read as Latin-1."""
        value = node.text
        if node.vt in ("TEXT", "PNAME") and value and not value.isascii():
            value, fixed = Q.repair_mojibake(value, self.tree.encodings)
            self.quirk(fixed)
        return value

    def code(self, node: Node) -> Optional[Concept]:
        value = node.coded
        if value is None and node.vt == "CODE":
            self.quirk(Q.EMPTY_CODE)
        return value

    def measure(self, node: Node, concept: Optional[Concept] = None) -> Optional[Measurement]:
        """A NUM item in canonical units (None when it carries no value)."""
        value, unit, _qualifier = node.numeric
        if value is None:
            self.quirk(Q.EMPTY_NUMERIC)
            return None
        known = self._quantities.get((value, unit))
        if known is None:
            known = self._quantities[value, unit] = _quantity(value, unit)
        quantity, quirks = known
        for name in quirks:
            self._quirks[name] = None
        if quantity is None:
            return None
        modifier = None
        for k in node.children:
            if k.rel == "HAS CONCEPT MOD" and k.vt == "CODE":
                modifier = k.coded
                break
        return Measurement(concept or self.concept(node), quantity, modifier)

    def measure_all(self, nodes, into: list[Measurement]) -> None:
        """Measurements of the standard NUM items among ``nodes`` (private ones are ignored)."""
        for n in nodes:
            if n.vt == "NUM":
                if Q.private_scheme(n.scheme):
                    self.quirk(f"private-codes:{n.scheme}")
                    continue
                m = self.measure(n)
                if m is not None:
                    into.append(m)


def _quantity(value: str, unit: str) -> tuple[Optional[Quantity], tuple[str, ...]]:
    """A coded value and unit in canonical units, with the quirk fixes applied (None when no number)."""
    value, fixed_value = Q.fix_numeric_text(value)
    ucum, fixed_unit = Q.fix_unit(unit)
    quirks = tuple(name for name in (fixed_value, fixed_unit) if name)
    try:
        return normalise(value, ucum), quirks
    except UnitError:
        try:
            number = float(parse_decimal(value))
        except UnitError:
            return None, quirks + (Q.NON_NUMERIC,)
        return Quantity(number, ucum), quirks + (f"{Q.UNKNOWN_UNIT}:{unit}",)


def yes_no(node: Node) -> Optional[bool]:
    """A CODE item valued Yes / No (CID 230), None for anything else."""
    value = node.coded
    if value is None:
        return None
    return True if value.code in C.YES else False if value.code in C.NO else None


def laterality(node: Node) -> Optional[Concept]:
    """Laterality concept modifier (G-C171 / 272741003) of an item, if any."""
    lat = node.find_snomed(C.LATERALITY)
    return lat.coded if lat is not None else None


def event_uid(uid: str, ctx: Context, kind: str, index: int) -> str:
    """The event's own UID, or one derived from the document UID when the item is missing."""
    if uid:
        return uid
    ctx.quirk("synthesized-event-uid")
    return Q.synthesize_uid(ctx.sop_uid, kind, index)


def coded_items(nodes: list[Node], ctx: Context) -> tuple[tuple[Concept, Concept], ...]:
    """(concept name, value) pairs of CODE items no field is kept for."""
    out = []
    for n in nodes:
        value = n.coded
        if value is not None:
            out.append((ctx.concept(n), value))
    return tuple(out)
