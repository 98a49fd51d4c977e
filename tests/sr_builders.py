"""Dose SR builders for the tests: the package's sample builders (dacs_fhir/samples.py)."""
from dacs_fhir.samples import *  # noqa: F401,F403
from dacs_fhir.samples import _header, _root, _uid  # noqa: F401  (used by quirk tests)
