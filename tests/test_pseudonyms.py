"""Pseudonyms: keyed, separated by kind and source, and a key that only the environment holds."""

from pathlib import Path

import pytest

from umcl.ingest.pseudonyms import (
    DEMO_KEY,
    KEY_ENV,
    Pseudonymizer,
    PseudonymKeyError,
    fingerprint,
    resolve_key,
)

KEY = "k" * 32


def test_pseudonyms_are_stable_keyed_and_separated():
    a, b = Pseudonymizer(KEY), Pseudonymizer("another-key-entirely-0123456789")
    assert a.patient("mimic", "4829371") == a.patient("mimic", "4829371")
    assert "4829371" not in a.patient("mimic", "4829371")
    assert a.patient("mimic", "4829371") != b.patient("mimic", "4829371")
    assert a.patient("mimic", "4829371") != a.patient("chexpert", "4829371")
    assert a.record("mimic", "4829371").removeprefix("mimic:") not in a.patient("mimic", "4829371")
    assert a.record("mimic", "x").startswith("mimic:") and a.image("mimic", "x").startswith("img-")


def test_the_key_comes_from_the_environment_then_the_key_file(monkeypatch, tmp_path):
    demo, real = tmp_path / "raw/demo", tmp_path / "raw/site"
    monkeypatch.delenv(KEY_ENV, raising=False)
    missing = tmp_path / "no.key"
    with pytest.raises(PseudonymKeyError):  # no manifest: not demo data, whatever the folder
        resolve_key([demo / "mimic"], demo, missing)
    demo.mkdir(parents=True)
    (demo / "manifest.json").write_text('{"generator": "umcl demo", "folders": ["mimic"]}')
    assert resolve_key([demo / "mimic"], demo, missing) == DEMO_KEY  # demo data only
    for not_demo in ([demo / "mimic", real], [demo / "hospital"], [demo]):
        with pytest.raises(PseudonymKeyError, match=rf"export {KEY_ENV}=.*no\.key"):
            resolve_key(not_demo, demo, missing)
    with pytest.raises(PseudonymKeyError):  # demo.out pointed at all raw data
        resolve_key([real], tmp_path / "raw", missing)
    for folders in (
        '["/"]',
        '[".."]',
        '["mimic/.."]',
        "null",
        '"mimic"',
    ):  # a manifest cannot widen it
        (demo / "manifest.json").write_text(f'{{"generator": "umcl demo", "folders": {folders}}}')
        with pytest.raises(PseudonymKeyError):
            resolve_key([real], demo, missing)
    key_file = tmp_path / "site.key"
    key_file.write_text("from-the-file-0123456789\n")
    assert resolve_key([real], demo, key_file) == "from-the-file-0123456789"
    monkeypatch.setenv(KEY_ENV, "from-the-environment-0123")
    assert resolve_key([real], demo, key_file) == "from-the-environment-0123"
    monkeypatch.setenv(KEY_ENV, "short")
    with pytest.raises(PseudonymKeyError, match="at least 16"):
        resolve_key([real], demo, key_file)


def test_the_fingerprint_is_one_way_and_follows_the_key():
    assert fingerprint(KEY) == fingerprint(KEY) != fingerprint(KEY + "x")
    assert len(fingerprint(KEY)) == 32


def test_params_with_a_key_are_refused(tmp_path: Path):
    from umcl.config import ConfigError, load_settings

    params = tmp_path / "params.yaml"
    params.write_text(
        "data:\n  sources: [{name: a, kind: text_label, format: csv, path: x, columns: {id: i, text: [t]}}]\n"
        "  pseudonym_key: secret\n"
    )
    with pytest.raises(ConfigError, match="pseudonym_key is no longer read from params"):
        load_settings(params)
