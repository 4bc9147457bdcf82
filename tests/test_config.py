from pathlib import Path

import pytest
import yaml

from tests.conftest import REPO
from umcl.config import ConfigError, load_settings, parse_settings


def base() -> dict:
    return yaml.safe_load((REPO / "params.yaml").read_text())


def test_repository_params_are_valid():
    settings = load_settings(REPO / "params.yaml")
    assert [s.name for s in settings.data.sources] == ["mimic", "chexpert", "reports", "pacs"]
    assert settings.validate_.max_bad_fraction == 0.05


def test_unknown_key_is_named_with_its_path():
    raw = base()
    raw["preprocess"]["imagesize"] = 64
    with pytest.raises(ConfigError, match=r"preprocess\.imagesize: unknown key"):
        parse_settings(raw)


def test_wrong_type_names_key_and_value():
    raw = base()
    raw["data"]["sources"][1]["kind"] = "images"
    raw["demo"]["fault_rate"] = "often"
    with pytest.raises(ConfigError) as error:
        parse_settings(raw)
    message = str(error.value)
    assert "data.sources.1.kind" in message and "'images'" in message
    assert "demo.fault_rate" in message and "'often'" in message


def test_csv_source_needs_columns_and_names_must_be_unique():
    raw = base()
    raw["data"]["sources"].append(
        {"name": "mimic", "kind": "text_label", "format": "csv", "path": "x.csv"}
    )
    with pytest.raises(ConfigError) as error:
        parse_settings(raw)
    assert "data.sources.4" in str(error.value) and "columns" in str(error.value)
    raw["data"]["sources"][4]["columns"] = {"id": "uid", "text": ["report"]}
    with pytest.raises(ConfigError, match=r"data: .*repeated: \['mimic'\]"):
        parse_settings(raw)


def test_missing_file_and_bad_yaml(tmp_path: Path):
    with pytest.raises(ConfigError, match="no such params file"):
        load_settings(tmp_path / "nope.yaml")
    (tmp_path / "bad.yaml").write_text("seed: [1,\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_settings(tmp_path / "bad.yaml")


def test_a_key_given_twice_is_refused_with_both_lines(tmp_path: Path):
    text = (
        (REPO / "params.yaml").read_text().replace("  lr: 1.0e-3\n", "  lr: 1.0e-3\n  lr: 50.0\n")
    )
    (tmp_path / "params.yaml").write_text(text)
    with pytest.raises(ConfigError, match=r"key 'lr' appears twice \(lines \d+ and \d+\)"):
        load_settings(tmp_path / "params.yaml")


def test_label_names_that_map_to_no_label_are_refused():
    raw = base()
    raw["labels"]["synonyms"] = {"Opacity": "Lung Opactiy"}
    with pytest.raises(
        ConfigError, match=r"labels\.synonyms\.Opacity: 'Lung Opactiy' is not a label"
    ):
        parse_settings(raw)
    raw = base()
    raw["data"]["sources"].append(
        {
            "name": "notes",
            "kind": "text_label",
            "format": "csv",
            "path": "n.csv",
            "columns": {"id": "uid", "text": ["report"], "labels": ["effusion", "Cardiomegally"]},
        }
    )
    with pytest.raises(
        ConfigError, match=r"data\.sources\.4\.columns\.labels\.1: 'Cardiomegally' maps to no label"
    ):
        parse_settings(raw)
    raw["labels"]["synonyms"] = {"Cardiomegally": "Cardiomegaly"}  # a declared synonym is fine
    assert parse_settings(raw).data.sources[4].columns.labels[1] == "Cardiomegally"


def test_a_broken_patient_pattern_and_clashing_synonyms_are_refused():
    raw = base()
    raw["data"]["sources"][0]["patient_pattern"] = "(unclosed"
    with pytest.raises(
        ConfigError, match=r"data\.sources\.0\.patient_pattern: .*not a regular expression"
    ):
        parse_settings(raw)
    raw = base()
    raw["labels"]["synonyms"] = {"Opacity": "Lung Opacity", "opacity": "Edema"}
    with pytest.raises(
        ConfigError, match=r"labels\.synonyms\.opacity: the same name as another synonym"
    ):
        parse_settings(raw)


def test_yaml_merge_keys_are_not_duplicates_and_utf16_is_refused(tmp_path: Path):
    text = (REPO / "params.yaml").read_text()
    old = "    - {name: mimic, kind: image_text, format: mimic_cxr, path: data/raw/demo/mimic}\n"
    assert old in text
    merged = "    - &mimic {name: mimic, kind: image_text, format: mimic_cxr, path: data/raw/demo/mimic}\n"
    merged += "    - {<<: *mimic, name: mimic2, path: data/raw/demo/mimic2}\n"
    (tmp_path / "params.yaml").write_text(text.replace(old, merged))
    second = load_settings(tmp_path / "params.yaml").data.sources[1]
    assert (second.name, second.format, str(second.path)) == (
        "mimic2",
        "mimic_cxr",
        "data/raw/demo/mimic2",
    )
    (tmp_path / "params.yaml").write_bytes(text.encode("utf-16"))
    with pytest.raises(ConfigError, match="not UTF-8 text"):
        load_settings(tmp_path / "params.yaml")


def test_custom_findings_join_the_label_space_and_clashes_are_refused():
    from umcl.labels import CHEXPERT_LABELS, LabelSpace

    raw = base()
    raw["labels"]["custom"] = [
        {"name": "Hernia", "phrases": ["hiatal hernia", "hernia"]},
        {"name": "Pneumonia", "phrases": ["lobar infiltrate"]},  # more phrases for a built-in
    ]
    raw["labels"]["synonyms"] = {"Hiatus Hernia": "Hernia"}  # a dataset column may name it
    space = LabelSpace.from_settings(parse_settings(raw).labels)
    assert space.names == (*CHEXPERT_LABELS, "Hernia")
    assert space.phrases["Hernia"] == ("hiatal hernia", "hernia")
    raw["labels"]["custom"].append({"name": "hernia", "phrases": ["paraesophageal hernia"]})
    with pytest.raises(ConfigError, match="hernia"):
        parse_settings(raw)
    for bad in (
        {"name": "Hernia", "phrases": []},
        {"name": "Hernia", "phrases": ["  "]},
        {"name": "Hernia ", "phrases": ["hernia"]},
        {"name": "12", "phrases": ["hernia"]},
        {"name": "Hernia", "phrases": ["--"]},
    ):
        raw["labels"]["custom"] = [bad]
        with pytest.raises(ConfigError, match=r"labels\.custom\.0\.(name|phrases)"):
            parse_settings(raw)


def test_the_gpu_preset_lands_in_params_yaml_as_dvc_applies_it(tmp_path: Path):
    """`umcl preset configs/gpu.yaml` hands DVC these overrides: applied to params.yaml the way
    `dvc exp run -S` applies them, they give exactly the preset laid over params.yaml (its
    backbone configs replaced whole, keys params.yaml lacks added)."""
    import shutil

    from dvc.utils.hydra import apply_overrides

    from umcl.config import dotted, read_params
    from umcl.dvcops import hydra_overrides

    shutil.copy(REPO / "params.yaml", tmp_path / "params.yaml")
    overrides, replaced = dotted(read_params(REPO / "configs/gpu.yaml"))
    apply_overrides(tmp_path / "params.yaml", hydra_overrides(overrides, replaced))
    applied = load_settings(tmp_path / "params.yaml")
    assert applied == load_settings(REPO / "params.yaml", overlay=REPO / "configs/gpu.yaml")
    assert applied.model.image.config["model_type"] == "swin"
    assert "hidden_sizes" not in applied.model.image.config  # not ConvNeXt's leftovers


def test_a_preset_sets_plain_keys_only(tmp_path: Path):
    from umcl.config import dotted

    with pytest.raises(
        ConfigError, match=r"labels\.synonyms\.Lung Opacity: a preset can set plain"
    ):
        dotted({"labels": {"synonyms": {"Lung Opacity": "Lung Opacity"}}})
    with pytest.raises(ConfigError, match=r"data\.sources: a preset cannot set a list of mappings"):
        dotted({"data": {"sources": [{"name": "x"}]}})
