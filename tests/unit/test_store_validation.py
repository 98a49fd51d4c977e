"""Resources are refused before any write when they break the R4 structure or a required binding."""
import pytest

from dacs_fhir.store import errors, validation


@pytest.mark.parametrize(
    "resource, path",
    [
        ({"resourceType": "Patient", "gender": "banana"}, "Patient.gender"),
        ({"resourceType": "Patient", "name": [{"use": "weird", "family": "X"}]}, "Patient.name[0].use"),
        ({"resourceType": "ImagingStudy", "status": "done", "subject": {"reference": "Patient/1"}}, "ImagingStudy.status"),
        ({"resourceType": "Observation", "code": {"text": "x"}}, "Observation.status"),
    ],
)
def test_invalid_resources_name_the_offending_path(resource, path):
    with pytest.raises(errors.InvalidResource) as err:
        validation.validate(resource)
    assert err.value.status == 422
    assert path in str(err.value)


def test_valid_codes_and_extensible_bindings_pass():
    assert validation.validate({"resourceType": "Patient", "gender": "unknown", "name": [{"use": "official", "family": "X"}]}) == "Patient"
    # Observation.status is bound to a required value set, but the R4B model marks it open ("+"): accepted
    assert validation.validate({"resourceType": "Observation", "status": "final", "code": {"text": "x"}}) == "Observation"
