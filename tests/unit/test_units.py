"""UCUM normalisation: canonical units, vendor spellings, exact decimal conversion."""
import pytest

from dacs_fhir.units import UNIT_SPELLING_FIXES, UnitError, canonical_unit, convert, fix_spelling, normalise


@pytest.mark.parametrize(
    "value, unit, expected, canonical",
    [
        ("1.6e-005", "Gym2", 160.0, "mGy.cm2"),  # Siemens AXIOM-Artis
        ("0.00015356864017", "Gy.m2", 1535.6864017, "mGy.cm2"),
        ("126.596", "dGy.cm2", 12659.6, "mGy.cm2"),  # Canon Ultimax
        ("0.2359", "Gy.cm^2", 235.9, "mGy.cm2"),  # Siemens ARCADIS Varic
        ("4.1", "uGy.m2", 41.0, "mGy.cm2"),
        ("724.52", "mGycm", 724.52, "mGy.cm"),
        ("0.5", "Gy.m", 50000.0, "mGy.cm"),
        ("0.00252", "Gy", 2.52, "mGy"),
        ("30.573", "mGy", 30.573, "mGy"),
        ("0.01373", "dGy", 1.373, "mGy"),
        ("90200.00", "uAs", 90.2, "mA.s"),
        ("854.00", "ms", 0.854, "s"),
        ("2", "min", 120.0, "s"),
        ("221596288", "Bq", 221.596288, "MBq"),
        ("10", "mCi", 370.0, "MBq"),
        ("7.486", "mSv", 7.486, "mSv"),
        ("1.78", "m", 1780.0, "mm"),
        ("0.12", "kV", 0.12, "kV"),
        ("120000", "V", 120.0, "kV"),
        ("250", "g", 0.25, "kg"),
    ],
)
def test_normalise_to_canonical(value, unit, expected, canonical):
    q = normalise(value, unit)
    assert q.unit == canonical
    assert q.value == pytest.approx(expected, rel=1e-12)


def test_exact_decimal_conversion_has_no_binary_noise():
    assert normalise("1.6e-005", "Gy.m2").value == 160.0
    assert normalise("0.0000021200", "Gym2").value == 21.2


@pytest.mark.parametrize("unit", ["{events}", "1", "{ratio}", "{X-Ray sources}", "{pulse}/s", "%"])
def test_counts_and_annotations_keep_their_code(unit):
    assert normalise("5", unit).unit == unit


def test_spelling_fixes_are_named_and_valid_ucum():
    for spelling, fix in UNIT_SPELLING_FIXES.items():
        assert fix.seen_on
        canonical_unit(fix.ucum)  # parses
        assert fix_spelling(spelling) == (fix.ucum, f"unit-spelling:{spelling}")
    assert fix_spelling("mGy") == ("mGy", None)


@pytest.mark.parametrize("value, unit", [("abc", "mGy"), ("1", "furlong"), ("1", "Gy.m2x"), ("nan", "mGy"), ("inf", "s")])
def test_bad_values_and_units_raise(value, unit):
    with pytest.raises(UnitError):
        normalise(value, unit)


def test_convert_refuses_other_dimension():
    with pytest.raises(UnitError):
        convert("1", "mGy", "mSv")
    assert convert("1", "Gy.m2", "Gy.cm2").value == 10000.0
