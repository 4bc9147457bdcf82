"""The registry and the gate, on real models in a real BentoML model store (the session's own)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from tests.conftest import REPO, saved_random_model
from umcl import registry
from umcl.cli import main


def test_promote_and_rollback_walk_back_through_earlier_champions(
    tiny_pipeline: dict, empty_store: Path, tmp_path: Path
) -> None:
    tags = []
    for seed in range(3):
        entry, created = registry.add(
            saved_random_model(tiny_pipeline, tmp_path / f"m{seed}", seed), {"seed": seed}
        )
        assert created and entry.tag.startswith("umcl:") and not entry.champion
        tags.append(entry.tag)
    again, created = registry.add(tmp_path / "m1", {"seed": 1})
    assert not created and again.tag == tags[1]  # the same weights are not stored twice
    assert registry.champion() is None
    for tag in tags:
        registry.promote(tag)
    assert registry.champion().tag == tags[2]
    assert sum(e.champion for e in registry.entries()) == 1

    restored, demoted = registry.rollback()
    assert (restored.tag, demoted.tag) == (tags[1], tags[2])
    assert registry.rollback()[0].tag == tags[0]
    with pytest.raises(registry.RegistryError, match="first champion"):
        registry.rollback()
    registry.promote(tags[2])  # promoted again explicitly: rolled-back ones are skipped later
    assert registry.rollback()[0].tag == tags[0]
    stored = registry.get(tags[0])
    assert stored.metadata["seed"] == 0 and (stored.path / "model.safetensors").is_file()
    with pytest.raises(registry.RegistryError, match="no model umcl:nope"):
        registry.get("umcl:nope")


def gate(candidates: dict, which: str, tmp_path: Path, **gate_params) -> tuple[int, dict]:
    params = {**candidates["params"], "gate": gate_params}
    params_file = tmp_path / f"params-{which}.yaml"
    params_file.write_text(yaml.safe_dump(params))
    out = tmp_path / f"gate-{which}.json"
    code = main(
        [
            "--params",
            str(params_file),
            "gate",
            "--metrics",
            str(candidates[which]["metrics"]),
            *candidates["data"],
            "--locator",
            str(candidates["locator"]),
            "--out",
            str(out),
        ]
    )
    return code, json.loads(out.read_text())


def package(candidates: dict, which: str, tmp_path: Path) -> int:
    return main(
        [
            "package",
            "--model",
            str(candidates[which]["model"]),
            "--metrics",
            str(candidates[which]["metrics"]),
            "--gate",
            str(tmp_path / f"gate-{which}.json"),
            "--out",
            str(tmp_path / "package.json"),
            "--no-bento",
        ]
    )


def primary(candidates: dict, which: str) -> float:
    return json.loads(candidates[which]["metrics"].read_text())["zero_shot"]["learned"][
        "macro_auroc"
    ]


def test_a_random_candidate_fails_the_thresholds_and_the_champion_stays(
    candidates: dict, empty_store: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    code, report = gate(
        candidates, "trained", tmp_path, min_zero_shot_auroc=None, min_recall_at_5=None
    )
    assert code == 0 and report["passed"] and report["champion"] is None and report["checks"] == []
    assert package(candidates, "trained", tmp_path) == 0
    champion = registry.champion().tag

    code, report = gate(
        candidates,
        "random",
        tmp_path,
        min_zero_shot_auroc=0.8,
        min_recall_at_5=0.2,
        max_regression=1.0,
    )
    assert code == 1 and not report["passed"]
    failed = {c["name"] for c in report["checks"] if not c["passed"]}
    assert (
        "min_zero_shot_macro_auroc" in failed
    )  # (Recall@5 over the tiny split's few pairs is high)
    message = capsys.readouterr().err
    assert "min_zero_shot_macro_auroc" in message and f"champion {champion} stays" in message
    assert package(candidates, "random", tmp_path) == 1  # packaging refuses a failed gate
    assert registry.champion().tag == champion and len(registry.entries()) == 1


def test_worse_is_refused_better_is_promoted_and_rollback_restores(
    candidates: dict, empty_store: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    better, worse = sorted(
        ["trained", "random"], key=lambda w: primary(candidates, w), reverse=True
    )
    assert primary(candidates, better) > primary(candidates, worse), "the two candidates tie"
    thresholds_off = {"min_zero_shot_auroc": None, "min_recall_at_5": None, "max_regression": 0.0}

    assert gate(candidates, worse, tmp_path, **thresholds_off)[0] == 0
    assert package(candidates, worse, tmp_path) == 0
    first = registry.champion().tag

    code, report = gate(candidates, better, tmp_path, **thresholds_off)
    assert code == 0 and report["champion"]["tag"] == first
    # The champion was re-scored on the same test split: exactly its own `umcl evaluate` figure.
    assert report["champion"]["metrics"]["zero_shot_macro_auroc"] == pytest.approx(
        primary(candidates, worse), abs=1e-6
    )
    assert package(candidates, better, tmp_path) == 0
    second = registry.champion().tag
    assert second != first

    capsys.readouterr()
    code, report = gate(candidates, worse, tmp_path, **thresholds_off)
    assert code == 1 and report["champion"]["tag"] == second
    failed = {c["name"] for c in report["checks"] if not c["passed"]}
    assert "no_regression_zero_shot_macro_auroc" in failed and not any(
        n.startswith("min_") for n in failed
    )
    assert "no_regression_zero_shot_macro_auroc" in capsys.readouterr().err
    assert registry.champion().tag == second

    assert main(["models", "rollback"]) == 0
    assert registry.champion().tag == first
    assert main(["models", "list"]) == 0
    listing = capsys.readouterr().out
    assert "rolled back" in listing and first in listing and second in listing


def test_a_minimum_the_test_split_cannot_measure_fails_or_is_skipped_as_asked() -> None:
    """A site without image–report pairs has no Recall@5: `gate.unmeasurable` decides."""
    from umcl.config import parse_settings
    from umcl.gate import PRIMARY, decide, gated_metrics, unmeasurable

    metrics = {"zero_shot": {"learned": {"macro_auroc": 0.91}}}  # no "retrieval": no pairs
    candidate, reasons = gated_metrics(metrics), unmeasurable(metrics)
    assert reasons == {"recall_at_5": "the test split has no image–report pair"}
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    for policy, passes in (("fail", False), ("skip", True)):
        params["gate"].update(min_zero_shot_auroc=0.8, min_recall_at_5=0.2, unmeasurable=policy)
        checks = {c.name: c for c in decide(candidate, parse_settings(params), None, reasons)}
        assert checks["min_recall_at_5"].passed is passes
        assert checks["min_recall_at_5"].skipped == (reasons["recall_at_5"] if passes else None)
        assert checks[f"min_{PRIMARY}"].passed  # what was measured is still judged
    # Without labelled test images nothing is judged: the zero-shot minimum fails under skip too.
    empty = {"retrieval": {}}
    checks = {
        c.name: c
        for c in decide(gated_metrics(empty), parse_settings(params), None, unmeasurable(empty))
    }
    assert not checks[f"min_{PRIMARY}"].passed and checks["min_recall_at_5"].skipped
    # A measured value never counts as unmeasurable: a low Recall@5 fails under skip too.
    low = {"retrieval": {"image_to_text": {"recall@5": 0.05}}} | metrics
    checks = {
        c.name: c
        for c in decide(gated_metrics(low), parse_settings(params), None, unmeasurable(low))
    }
    assert not checks["min_recall_at_5"].passed
