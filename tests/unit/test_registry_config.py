"""Plugin registry and settings."""
import pytest

from dacs_fhir.config import Settings
from dacs_fhir.registry import Registry


def test_registry_register_get_names():
    reg = Registry("dacs_fhir.test-group-without-entry-points")

    @reg.register("double")
    def double(x):
        return 2 * x

    assert reg.get("double")(4) == 8
    assert reg.names() == ["double"]
    with pytest.raises(KeyError, match="no dacs_fhir.test-group"):
        reg.get("missing")


def test_settings_from_env(tmp_path):
    s = Settings.from_env({"DACS_DATA_DIR": str(tmp_path), "DACS_HTTP": "127.0.0.1:0", "DACS_DICOM": "127.0.0.1:104", "DACS_AE_TITLE": "DOSE"})
    assert s.database_url == f"sqlite:///{tmp_path.resolve() / 'dacs.sqlite'}"
    assert s.http == ("127.0.0.1", 0) and s.dicom == ("127.0.0.1", 104) and s.ae_title == "DOSE"
    assert s.broker_url is None and s.inbox_dir == tmp_path / "inbox"
    assert Settings.from_env({}).mllp == ("127.0.0.1", 2575)
