"""Search parameter values the query compiler refuses (FHIR R4 search.html#quantity): a 400, never a 500."""
from __future__ import annotations

import pytest

from dacs_fhir.store import errors
from dacs_fhir.store.query import compile_query

DCM_DLP = "http://dicom.nema.org/resources/ontology/DCM|113813"


@pytest.mark.parametrize("number", ["NaN", "sNaN", "Infinity", "-Infinity", "ltInfinity", "1e", ""])
def test_quantity_that_is_not_a_finite_number_is_an_invalid_search(number):
    with pytest.raises(errors.InvalidSearch, match="invalid quantity"):
        compile_query("Observation", [("component-code-value-quantity", f"{DCM_DLP}${number}")], strict=True)


def test_finite_quantity_compiles():
    q = compile_query("Observation", [("component-code-value-quantity", f"{DCM_DLP}$gt5e2|http://unitsofmeasure.org|mGy.cm")],
                      strict=True)
    assert len(q.conditions) == 3  # resource type, not deleted, the quantity
