"""The blueprint the FHIR REST routes register on (``/fhir``)."""
from __future__ import annotations

from flask import Blueprint

bp = Blueprint("fhir", __name__, url_prefix="/fhir")
