"""Shared fixtures: a tiny demo pipeline run once per session, and the real reference data."""

from __future__ import annotations

import atexit
import contextlib
import io
import json
import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import yaml

from tests.tiny import MODEL as TINY_MODEL

if TYPE_CHECKING:
    from umcl.calibration import Calibration

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data"

for name, value in {
    "HF_HUB_OFFLINE": "1",
    "DVC_NO_ANALYTICS": "1",
    "DO_NOT_TRACK": "1",
    "BENTOML_DO_NOT_TRACK": "true",
    "GX_ANALYTICS_ENABLED": "false",
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "90",
}.items():
    os.environ.setdefault(name, value)
# A model store of the test session's own, never the user's ~/bentoml. Set before anything imports
# bentoml: BentoML reads it once per process.
_STORE = tempfile.mkdtemp(prefix="umcl-test-bentoml-")
os.environ["BENTOML_HOME"] = _STORE
atexit.register(shutil.rmtree, _STORE, ignore_errors=True)
# What the services the tests start record (umcl/monitor/): a folder of the session's own, never
# the repository's data/monitor.
_MONITOR = tempfile.mkdtemp(prefix="umcl-test-monitor-")
os.environ["UMCL_MONITOR_DIR"] = _MONITOR
atexit.register(shutil.rmtree, _MONITOR, ignore_errors=True)


def shared_path(relative: str) -> Path:
    """A file of the real reference data, or skip the test saying what is missing."""
    path = SHARED / relative
    if not path.exists():
        pytest.skip(f"real reference data not available: {path} (see ../shared/data/README.md)")
    return path


def tiny_params(root: Path) -> dict:
    """Demo params shrunk to seconds; every planted fault kind still occurs at least once."""
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["demo"].update(
        out=[str(root / "raw/demo")],
        image_text_studies=40,
        image_label_studies=30,
        text_label_studies=30,
        pacs_studies=24,
        image_size=64,
        fault_rate=0.02,
    )
    for source in params["data"]["sources"]:
        for key in ("path", "reports"):
            if key in source:
                source[key] = str(root / "raw" / Path(source[key]).relative_to("data/raw"))
    params["validate"]["max_bad_fraction"] = 0.3
    params["preprocess"].update(image_size=32, workers=2)
    params["model"] = TINY_MODEL
    params["train"].update(steps=6, batch_size=8, warmup_steps=1, checkpoint_every=3, log_every=1)
    return params


@pytest.fixture(scope="session")
def tiny_pipeline(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Run demo → validate → unify → preprocess through the CLI; keep every output and log."""
    from umcl.cli import main

    root = tmp_path_factory.mktemp("pipeline")
    params_file = root / "params.yaml"
    params_file.write_text(yaml.safe_dump(tiny_params(root)))
    paths = {
        "root": root,
        "params": params_file,
        "validated": root / "validated",
        "quarantine": root / "quarantine",
        "triplets": root / "unified/triplets.parquet",
        "cache": root / "cache",
        "metrics": root / "metrics",
        "locator": root / "locator",
    }
    log_stream = io.StringIO()
    handler = logging.StreamHandler(log_stream)
    logging.getLogger().addHandler(handler)
    commands = [
        ["demo"],
        [
            "validate",
            "--out",
            str(paths["validated"]),
            "--quarantine",
            str(paths["quarantine"]),
            "--locator",
            str(paths["locator"]),
            "--metrics",
            str(paths["metrics"] / "validation.json"),
        ],
        [
            "unify",
            "--validated",
            str(paths["validated"]),
            "--out",
            str(paths["triplets"]),
            "--metrics",
            str(paths["metrics"] / "unify.json"),
        ],
        [
            "preprocess",
            "--triplets",
            str(paths["triplets"]),
            "--locator",
            str(paths["locator"]),
            "--out",
            str(paths["cache"]),
        ],
    ]
    try:
        for command in commands:
            with contextlib.redirect_stdout(log_stream), contextlib.redirect_stderr(log_stream):
                code = main(["--params", str(params_file), "-v", *command])
            assert code == 0, f"umcl {command[0]} failed:\n{log_stream.getvalue()[-3000:]}"
    finally:
        logging.getLogger().removeHandler(handler)
    paths["log"] = log_stream.getvalue()
    paths["manifest"] = json.loads((root / "raw/demo/manifest.json").read_text())
    return paths


@pytest.fixture(scope="session")
def reproduced(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """A tiny copy of the project after one `dvc repro` (shared: a run costs a minute): its root,
    that run's output, and its dvc.lock as the run left it, which tests that go on to change the
    project do not change."""
    from tests.project import make_project, run

    root = make_project(tmp_path_factory.mktemp("reproduced") / "project")
    output = run("dvc", "repro", cwd=root)
    return {"root": root, "output": output, "lock": yaml.safe_load((root / "dvc.lock").read_text())}


@pytest.fixture(scope="session")
def candidates(tiny_pipeline: dict, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """A trained and an untrained model, each with its `umcl evaluate` metrics (the gate and
    adapt tests share them)."""
    from umcl.cli import main

    root = tmp_path_factory.mktemp("candidates")
    params = yaml.safe_load(tiny_pipeline["params"].read_text())
    params["train"]["steps"] = 30
    params_file = root / "params.yaml"
    params_file.write_text(yaml.safe_dump(params))
    data = ["--triplets", str(tiny_pipeline["triplets"]), "--cache", str(tiny_pipeline["cache"])]
    assert (
        main(
            [
                "--params",
                str(params_file),
                "train",
                *data,
                "--out",
                str(root / "trained"),
                "--checkpoints",
                str(root / "checkpoints"),
                "--live",
                str(root / "live"),
            ]
        )
        == 0
    )
    saved_random_model(tiny_pipeline, root / "random")
    found = {"params": params, "data": data, "locator": tiny_pipeline["locator"]}
    for name in ("trained", "random"):
        metrics = root / f"{name}.json"
        assert (
            main(
                [
                    "--params",
                    str(params_file),
                    "evaluate",
                    "--model",
                    str(root / name),
                    *data,
                    "--metrics",
                    str(metrics),
                ]
            )
            == 0
        )
        found[name] = {"model": root / name, "metrics": metrics}
    return found


@pytest.fixture
def empty_store() -> Path:
    """The session's model store with no UMCL models in it; its path."""
    import bentoml
    from bentoml.exceptions import NotFound

    try:
        for model in bentoml.models.list("umcl"):
            bentoml.models.delete(model.tag)
    except NotFound:
        pass
    return Path(os.environ["BENTOML_HOME"])


def toy_calibration(names: list[str], unfitted_every: int = 4) -> Calibration:
    """A calibration with distinct, non-trivial a, b and thresholds per finding; every
    `unfitted_every`-th finding is left unfitted (raw sigmoid, threshold 0.5)."""
    from umcl.calibration import Calibration, FindingCalibration

    findings = {}
    for i, name in enumerate(names):
        if i % unfitted_every == unfitted_every - 1:
            findings[name] = FindingCalibration(1.0, 0.0, 0.5, 2, 3, fitted=False, reason="few")
        else:
            a, b, threshold = 0.6 + 0.15 * i, 0.4 - 0.1 * i, 0.35 + 0.02 * i
            findings[name] = FindingCalibration(a, b, threshold, 10, 20, fitted=True)
    return Calibration("platt", "youden", findings)


def saved_random_model(
    pipeline: dict, directory: Path, seed: int = 3, calibration: Calibration | None = None
) -> Path:
    """An untrained tiny model over the pipeline's labels, saved like `umcl train` saves one: at
    the pipeline's image size, with its weight params as provenance and `calibration`."""
    from tests.tiny import tiny_model
    from umcl.config import load_settings, weight_params

    labels = json.loads((pipeline["triplets"].parent / "labels.json").read_text())["names"]
    settings = load_settings(pipeline["params"])
    model = tiny_model(labels=labels, seed=seed, image_size=settings.preprocess.image_size)
    model.calibration = calibration
    model.save_pretrained(directory, provenance={"params": weight_params(settings)})
    return directory
