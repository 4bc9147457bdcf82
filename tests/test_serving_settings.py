"""The service's settings come from one place, read once (`umcl/serving/settings.py`): each
variable lands where the guard, the decoder, the routes and the monitor read it, and a malformed
value is refused with the variable's name."""

from __future__ import annotations

from pathlib import Path

import pytest

from umcl.auth import AuthSetupError
from umcl.serving.settings import RequestLimits, ServingSettings


def test_defaults_with_an_empty_environment() -> None:
    settings = ServingSettings.from_env({})
    assert settings == ServingSettings()
    assert settings.api_key is None and settings.host == "127.0.0.1" and settings.model is None
    assert settings.requests == RequestLimits()
    assert settings.monitor.enabled and settings.monitor.params_file == Path("params.yaml")
    assert settings.monitor.store is None
    assert settings.adaptive_batching and settings.max_batch_size == 32


def test_each_variable_reaches_its_setting(tmp_path: Path) -> None:
    environ = {
        "UMCL_API_KEY": "k" * 40,
        "BENTOML_HOST": "0.0.0.0",
        "UMCL_TRUSTED_PROXIES": " 10.0.0.0/8 ",
        "UMCL_MODEL": "umcl:abc",
        "UMCL_MAX_PIXELS": "1e6",
        "UMCL_DICOM_MODALITIES": "cr, dx",
        "UMCL_MAX_UPLOAD_MB": "2.5",
        "UMCL_MAX_REQUEST_MB": "10",
        "UMCL_MAX_IMAGES": "3",
        "UMCL_MAX_REQUEST_PIXELS": "5e6",
        "UMCL_MAX_DECODE_MB": "64",
        "UMCL_MAX_EXPLAIN_IMAGES": "2",
        "UMCL_ADAPTIVE_BATCHING": "Off",
        "UMCL_MAX_BATCH_SIZE": "8",
        "UMCL_MONITOR": "no",
        "UMCL_PARAMS": str(tmp_path / "p.yaml"),
        "UMCL_MONITOR_DIR": str(tmp_path / "records"),
    }
    settings = ServingSettings.from_env(environ)
    assert settings.api_key == "k" * 40 and settings.host == "0.0.0.0"
    assert settings.trusted_proxies == "10.0.0.0/8" and settings.model == "umcl:abc"
    assert settings.decode.max_pixels == 1_000_000
    assert settings.decode.modalities == frozenset({"CR", "DX"})
    assert settings.requests == RequestLimits(2.5, 10, 3, 5_000_000, 64, 2)
    assert not settings.adaptive_batching and settings.max_batch_size == 8
    assert not settings.monitor.enabled
    assert settings.monitor.params_file == tmp_path / "p.yaml"
    assert settings.monitor.store == tmp_path / "records"


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("UMCL_MAX_UPLOAD_MB", "lots"),
        ("UMCL_MAX_IMAGES", "0.5"),
        ("UMCL_MAX_REQUEST_PIXELS", "-1"),
        ("UMCL_MAX_DECODE_MB", "nan"),
        ("UMCL_MAX_BATCH_SIZE", "inf"),
        ("UMCL_ADAPTIVE_BATCHING", "maybe"),
        ("UMCL_MONITOR", "sometimes"),
        ("UMCL_MAX_PIXELS", "0"),
    ],
)
def test_a_malformed_value_is_refused_by_name(variable: str, value: str) -> None:
    with pytest.raises(ValueError, match=variable):
        ServingSettings.from_env({variable: value})


def test_a_weak_key_is_refused() -> None:
    with pytest.raises(AuthSetupError, match="UMCL_API_KEY"):
        ServingSettings.from_env({"UMCL_API_KEY": "short"})
