"""Radiopharmaceutical and patient dose containers of a dose SR (PS3.16 TID 10021-10023, TID 10030 / 10031)."""
from __future__ import annotations

from .. import codes as C
from ..domain import CT, RADIOPHARMACEUTICAL, Measurement, OrganDose, Person, RadiopharmaceuticalAdministration
from . import quirks as Q
from .dicom_header import parse_datetime
from .sr_context import Head, person_of
from .sr_tree import Node
from .sr_values import Context, event_uid, laterality

PATIENT_RADIATION_DOSE_REPORT = "128401"  # TID 10030 root (DCM)
RADIATION_DOSE_ESTIMATE = "128402"  # TID 10031


def administration(node: Node, ctx: Context, index: int, head: Head) -> RadiopharmaceuticalAdministration:
    """TID 10022 Radiopharmaceutical Administration."""
    f: dict = {}
    ms: list[Measurement] = []
    organs: list[OrganDose] = []
    persons: list[Person] = []
    for n in node.children:
        if n.is_snomed(C.RP_AGENT):
            f["agent"] = ctx.code(n) if n.vt == "CODE" else None
            f["agent_text"] = f["agent"].meaning if f.get("agent") else ctx.text(n)
            _agent_properties(n, ctx, f)
        elif n.is_snomed(C.RADIONUCLIDE) or n.is_snomed(C.HALF_LIFE):
            _agent_properties(_Single(n), ctx, f)
        elif n.is_snomed(C.ROUTE_OF_ADMINISTRATION):
            f["route"] = ctx.code(n)
            site = n.find_snomed(C.SITE_OF)
            f["site"] = site.coded if site else None
        elif n.scheme == "DCM":
            c = n.code
            if c == C.RP_ADMIN_EVENT_UID:
                f["uid"] = n.text
            elif c == C.RP_START_DATETIME:
                f["started"] = parse_datetime(n.text)
            elif c == C.RP_STOP_DATETIME:
                f["ended"] = parse_datetime(n.text)
            elif c == C.ORGAN_DOSE_INFORMATION:
                organs.extend(_organ_doses(n, ctx))
            elif c == C.PERSON_NAME:
                persons.append(person_of(n, ctx))
            elif n.vt == "NUM":
                ctx.measure_all((n,), ms)
            elif n.vt == "CONTAINER":
                _effective_dose_in(n, ctx, ms)
        elif n.vt == "CONTAINER":  # private wrappers, e.g. Siemens 99SHS 220001 around Effective Dose
            if _effective_dose_in(n, ctx, ms):
                ctx.quirk(Q.PRIVATE_EFFECTIVE_DOSE)
        elif Q.private_scheme(n.scheme):
            ctx.quirk(f"private-codes:{n.scheme}")
    for m in ms:
        if m.concept.code == C.ADMINISTERED_ACTIVITY and m.concept.scheme == "DCM":
            f.setdefault("activity", m.quantity)
        elif m.concept.code == C.EFFECTIVE_DOSE and m.concept.scheme == "DCM":
            f.setdefault("effective_dose", m.quantity)
    head.persons.extend(persons)
    return RadiopharmaceuticalAdministration(
        uid=event_uid(f.pop("uid", ""), ctx, RADIOPHARMACEUTICAL, index),
        organ_doses=tuple(organs),
        persons=tuple(persons),
        measurements=tuple(ms),
        **{k: v for k, v in f.items() if v is not None},
    )


class _Single:
    """A node seen as the only child of a pseudo-parent (radionuclide / half-life beside the agent)."""

    def __init__(self, node: Node):
        self.children = [node]


def _agent_properties(node, ctx: Context, f: dict) -> None:
    for k in node.children:
        if k.is_snomed(C.RADIONUCLIDE):
            f["radionuclide"] = ctx.code(k)
        elif k.is_snomed(C.HALF_LIFE) and k.vt == "NUM":
            m = ctx.measure(k)
            f["half_life"] = m.quantity if m else None


def _effective_dose_in(container: Node, ctx: Context, into: list[Measurement]) -> bool:
    found = False
    for n in container.iter():
        if n.is_(C.EFFECTIVE_DOSE) and n.vt == "NUM":
            m = ctx.measure(n)
            if m is not None:
                into.append(m)
                found = True
    return found


FINDING_SITE = ("G-C0E3", "363698007")
REFERENCE_AUTHORITY = "121406"


def _organ_doses(node: Node, ctx: Context) -> list[OrganDose]:
    """TID 10023 Organ Dose: finding site and laterality modifiers, dose with its reference authority."""
    organ = laterality(node)
    site = node.find_snomed(FINDING_SITE) or node.find_snomed(C.SITE_OF)
    organ_site = site.coded if site else None
    out = []
    for n in node.children:
        if n.is_(C.ORGAN_DOSE) and n.vt == "NUM":
            m = ctx.measure(n)
            if m is None:
                continue
            ref = n.find(REFERENCE_AUTHORITY)
            out.append(OrganDose(organ=organ_site, dose=m.quantity, laterality=organ,
                                 reference_authority=ctx.text(ref) if ref else ""))
    return out


def dose_estimates(node: Node, ctx: Context) -> list[Measurement]:
    """TID 10031 Radiation Dose Estimate: every NUM below it, in canonical units."""
    return [m for n in node.iter() if n.vt == "NUM" for m in [ctx.measure(n)] if m]


def kind_from_modality(modality: str, default: str) -> str:
    """TID 10030 serves every modality: the report kind follows the header's Modality."""
    return {"CT": CT, "NM": RADIOPHARMACEUTICAL, "PT": RADIOPHARMACEUTICAL}.get(modality, default)
