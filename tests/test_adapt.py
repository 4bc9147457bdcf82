"""`umcl adapt`: a trained demo model fitted to intensity-shifted demo images, through the gate, the
registry and the real `bentoml serve`, and back by rollback; refusals of a hostile sample."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import numpy as np
import polars as pl
import pytest
import torch
import yaml
from PIL import Image

from tests.serving import served
from umcl import registry
from umcl.adapt import adapt_embedded, sample_logits, threshold_logit
from umcl.calibration import fit_calibration
from umcl.cli import main
from umcl.config import load_settings
from umcl.data.dataset import TripletDataset
from umcl.model.folder import TRAINING_FILE
from umcl.model.umcl import UMCLModel

SHIFTED_IMAGES = 48


def shifted(pixels: np.ndarray) -> np.ndarray:
    """Another detector's look: brighter mid-tones, compressed contrast (uint8 in, uint8 out)."""
    unit = pixels.astype(np.float32) / 255.0
    return (np.clip(unit**0.5 * 0.7 + 0.2, 0, 1) * 255).round().astype(np.uint8)


@pytest.fixture(scope="module")
def site(candidates: dict, tiny_pipeline: dict, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Shifted PNGs of labelled demo images and their site.csv (with a patient column), plus rows
    a real export can hold: a missing file, a bad label, no label, a duplicate, a non-image."""
    root = tmp_path_factory.mktemp("site")
    model = UMCLModel.from_pretrained(candidates["trained"]["model"])
    data = TripletDataset(
        tiny_pipeline["triplets"], tiny_pipeline["cache"], model.label_names, uncertainty="zeros"
    )
    labelled = [
        i for i in range(len(data)) if data.rows[i] is not None and not data.labels[i].isnan().all()
    ][:SHIFTED_IMAGES]
    assert len(labelled) == SHIFTED_IMAGES, "the tiny demo has too few labelled images"
    rows, squares = [], []
    for n, i in enumerate(labelled):
        square = shifted(np.asarray(data.images[data.rows[i]]))
        Image.fromarray(square).save(root / f"img{n}.png")
        squares.append(square)
        label = {
            name: "" if np.isnan(v) else str(int(v))
            for name, v in zip(model.label_names, data.labels[i].tolist(), strict=True)
        }
        rows.append({"path": f"img{n}.png", "patient": f"P{n // 2}", **label})
    good = len(rows)
    (root / "notes.png").write_text("not an image")
    blank = dict.fromkeys(model.label_names, "")
    first = model.label_names[0]
    rows += [
        {**rows[0], "path": "gone.png"},  # missing
        {**rows[1], first: "maybe"},  # a label that is not 1/0/-1/blank
        rows[2] | blank,  # nothing labelled
        {**rows[3], "patient": "P99"},  # the same image again
        {**rows[4], "path": "notes.png"},  # not an image
    ]
    pl.DataFrame(rows).write_csv(root / "site.csv")
    return {
        "root": root,
        "csv": root / "site.csv",
        "good": good,
        "rows": len(rows),
        "squares": np.stack(squares),
        "labels": data.labels[labelled],
    }


def params_file(candidates: dict, tmp_path: Path, **adapt) -> Path:
    params = {
        **candidates["params"],
        "adapt": {"bootstrap": 30, **adapt},
        "gate": {"min_zero_shot_auroc": None, "min_recall_at_5": None, "max_regression": 0.01},
    }
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(params))
    return path


def test_the_adapted_champion_moves_to_the_site_passes_the_gate_is_served_and_rolls_back(
    candidates: dict, site: dict, empty_store: Path, tmp_path: Path, capsys
) -> None:
    params = params_file(candidates, tmp_path)
    trained = candidates["trained"]
    assert (
        main(
            [
                "--params",
                str(params),
                "gate",
                "--metrics",
                str(trained["metrics"]),
                *candidates["data"],
                "--locator",
                str(candidates["locator"]),
                "--out",
                str(tmp_path / "gate.json"),
            ]
        )
        == 0
    )
    assert (
        main(
            [
                "package",
                "--model",
                str(trained["model"]),
                "--metrics",
                str(trained["metrics"]),
                "--gate",
                str(tmp_path / "gate.json"),
                "--out",
                str(tmp_path / "p.json"),
                "--no-bento",
            ]
        )
        == 0
    )
    base = registry.champion()
    out, report_file = tmp_path / "adapted", tmp_path / "adapt.json"
    code = main(
        [
            "--params",
            str(params),
            "adapt",
            "--model",
            "umcl:champion",
            "--labels",
            str(site["csv"]),
            "--out",
            str(out),
            "--report",
            str(report_file),
            "--deploy",
            str(tmp_path / "deploy"),
            *candidates["data"],
            "--locator",
            str(candidates["locator"]),
            "--no-bento",
        ]
    )
    printed = capsys.readouterr()
    assert code == 0, printed.err
    report = json.loads(report_file.read_text())

    # Every row accounted for, each refusal by its row and reason.
    sample = report["sample"]
    assert sample["rows_in"] == site["rows"] == sample["kept"] + sample["refused"]
    assert sample["kept"] == site["good"]
    reasons = {r["row"]: r["reason"] for r in sample["refusals"]}
    good = site["good"]
    assert set(reasons) == {good + 1, good + 2, good + 3, good + 4, good + 5}
    assert "missing" in reasons[good + 1] or "no such" in reasons[good + 1].lower()
    assert "cell is not 1, 0, -1 or blank" in reasons[good + 2] and "maybe" not in reasons[good + 2]
    assert "no finding labelled" in reasons[good + 3]
    assert reasons[good + 4] == "the same image as row 4"
    assert str(site["root"]) not in json.dumps(reasons)

    # The operating points moved to the shifted data's: each refitted threshold is the one fitted
    # on the shifted images' own logits, and not the base model's.
    base_model = UMCLModel.from_pretrained(base.path)
    adapted = UMCLModel.from_pretrained(out)
    pixels = torch.from_numpy(site["squares"].astype(np.float32) / 255)[:, None]
    with torch.no_grad():
        logits = sample_logits(base_model, base_model.encode_image(pixels), base_model.label_names)
    calibration = base_model.calibration
    direct = fit_calibration(
        logits,
        site["labels"],
        base_model.label_names,
        calibration.method,
        calibration.operating_point,
        min_per_class=5,
    )
    refitted = [n for n, f in report["findings"].items() if f["refitted"]]
    assert refitted, report["findings"]
    for name in base_model.label_names:
        entry, before = adapted.calibration.findings[name], calibration.findings[name]
        if name in refitted:
            assert threshold_logit(entry) == pytest.approx(threshold_logit(direct.findings[name]))
            assert threshold_logit(entry) != pytest.approx(threshold_logit(before))
            bootstrap = report["findings"][name]["threshold_bootstrap"]
            low, high = bootstrap["interval"]
            assert low <= high and 0 < bootstrap["resamples_used"] <= 30
        else:
            assert entry == before and "kept" in report["findings"][name]["reason"]
    assert torch.equal(adapted.prompts.context, base_model.prompts.context)

    # Provenance names the base and the sample's hash; no file name or patient reaches the model.
    adaptation = json.loads((out / TRAINING_FILE).read_text())["adaptation"]
    assert adaptation["base"] == {"tag": base.tag, "model_sha256": base.metadata["model_sha256"]}
    expected = report["cross_validated_operating_points"]
    assert set(expected) <= set(refitted)
    assert all(0 <= v["sensitivity"] <= 1 for v in expected.values())
    assert len(adaptation["sample_sha256"]) == 64
    for path in out.rglob("*"):
        if path.is_file() and path.suffix in (".json", ".txt"):
            text = path.read_text()
            assert "img1.png" not in text and "P1" not in text and str(site["root"]) not in text

    # Through the gate and the registry: the adapted model is the champion, its reference the site's.
    champion = registry.champion()
    assert champion.tag == report["deployed"]["model"] != base.tag
    assert report["deployed"]["previous_champion"] == base.tag
    assert (champion.path / "reference.safetensors").is_file()
    from umcl.monitor.reference import model_reference

    assert model_reference(champion.path, champion.tag).images == site["good"]

    # Served: the real service answers with the adapted model's scores.
    image = (site["root"] / "img0.png").read_bytes()
    with served({"UMCL_MODEL": "", "UMCL_MONITOR": "off"}, tmp_path / "serve.log") as server:
        response = httpx.post(
            f"{server.url}/classify", files={"images": ("a.png", image)}, timeout=60
        )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["model"] == champion.tag
    import umcl

    expected = umcl.load(out).classify([site["root"] / "img0.png"])[0]["findings"]
    for name, scored in body["results"][0]["findings"].items():
        assert scored["probability"] == pytest.approx(expected[name]["probability"], abs=1e-5)
        assert scored["positive"] == expected[name]["positive"]

    assert main(["models", "rollback"]) == 0
    assert registry.champion().tag == base.tag


def test_prompt_tuning_moves_only_the_contexts_and_a_thin_finding_keeps_its_calibration(
    candidates: dict, site: dict, tmp_path: Path
) -> None:
    settings = load_settings(
        params_file(
            candidates, tmp_path, prompt_steps=[5, 20], prompt_lr=0.05, folds=3, min_per_class=5
        )
    )
    model = UMCLModel.from_pretrained(candidates["trained"]["model"])
    before = {k: v.clone() for k, v in model.state_dict().items()}
    pixels = torch.from_numpy(site["squares"].astype(np.float32) / 255)[:, None]
    with torch.no_grad():
        embeddings = model.encode_image(pixels)
    names = model.label_names
    labels = site["labels"].clone()
    labels[:, 1] = float("nan")
    labels[:3, 1] = torch.tensor([1.0, 0.0, 1.0])  # too few to refit
    groups = np.arange(len(labels)) // 2
    adapted = adapt_embedded(model, embeddings, labels, names, groups, settings, True)
    tuning = adapted.report["prompt_tuning"]
    assert set(tuning["cross_validated_auroc"]) == {0, 5, 20}
    assert tuning["steps"] in (0, 5, 20)
    changed = {k for k, v in model.state_dict().items() if not torch.equal(v, before[k])}
    assert changed == ({"prompts.context"} if tuning["steps"] else set())
    thin = adapted.report["findings"][names[1]]
    assert not thin["refitted"] and "2 positive and 1 negative" in thin["reason"]
    base = UMCLModel.from_pretrained(candidates["trained"]["model"]).calibration.findings[names[1]]
    kept = adapted.calibration.findings[names[1]]
    assert kept == base or (tuning["steps"] and not kept.fitted)


def test_a_sample_naming_findings_the_model_lacks_is_refused(
    candidates: dict, site: dict, tmp_path: Path, capsys
) -> None:
    table = pl.read_csv(site["csv"], infer_schema=False).with_columns(pl.lit("1").alias("Gout"))
    table.write_csv(tmp_path / "bad.csv")
    code = main(
        [
            "--params",
            str(params_file(candidates, tmp_path)),
            "adapt",
            "--model",
            str(candidates["trained"]["model"]),
            "--labels",
            str(tmp_path / "bad.csv"),
            "--out",
            str(tmp_path / "out"),
        ]
    )
    assert code == 1
    err = capsys.readouterr().err
    assert "['Gout'] are not findings of this model" in err and not (tmp_path / "out").exists()

    # The base model's own directory, or one holding it, is never the destination.
    model = str(candidates["trained"]["model"])
    for out in (model, str(candidates["trained"]["model"].parent)):
        assert main(["adapt", "--model", model, "--labels", str(site["csv"]), "--out", out]) == 1
        assert "a directory apart from the base model's" in capsys.readouterr().err
    assert (candidates["trained"]["model"] / "model.safetensors").is_file()

    # Too few of each class for every finding: nothing to adapt, and no model is written.
    thin = pl.read_csv(site["csv"], infer_schema=False).head(6)
    thin.write_csv(site["root"] / "thin.csv")
    code = main(
        [
            "--params",
            str(params_file(candidates, tmp_path)),
            "adapt",
            "--model",
            model,
            "--labels",
            str(site["root"] / "thin.csv"),
            "--out",
            str(tmp_path / "out"),
        ]
    )
    assert code == 1 and "nothing to adapt" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_without_a_sample_the_stage_adapts_nothing_and_says_so(
    candidates: dict, tmp_path: Path
) -> None:
    report, fingerprint = tmp_path / "adapt.json", tmp_path / "sample.fingerprint"
    params = str(params_file(candidates, tmp_path, labels=None))
    assert main(["--params", params, "adapt", "--fingerprint", str(fingerprint)]) == 0
    assert fingerprint.read_text() == "none\n"
    assert main(["--params", params, "adapt", "--report", str(report)]) == 0
    assert json.loads(report.read_text())["adapted"] is False
