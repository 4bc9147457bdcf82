"""`dvc repro` in a temporary copy of the repository, and raw data through a DVC remote."""

import filecmp
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.conftest import REPO, tiny_params

pytestmark = pytest.mark.slow


def run(*command: str, cwd: Path) -> str:
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    env["BENTOML_HOME"] = str(cwd / ".bentoml")  # each project its own model store
    result = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True)
    assert result.returncode == 0, (
        f"{' '.join(command)} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    )
    return result.stdout + result.stderr


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    """The tracked files of this repository, tiny params, as a fresh git + DVC project."""
    root = tmp_path_factory.mktemp("project")
    files = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    for name in files:
        if (REPO / name).is_file() and not name.startswith(("data/", "dvc.lock")):
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, root / name)
    params = tiny_params(Path("data"))
    # A tiny model reaches no useful threshold; any candidate passes, so every run packages.
    params["gate"] = {"min_zero_shot_auroc": None, "min_recall_at_5": None, "max_regression": 1.0}
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    run("git", "init", "-q", cwd=root)
    run(
        "git",
        "-c",
        "user.email=t@t",
        "-c",
        "user.name=t",
        "commit",
        "-qam",
        "init",
        "--allow-empty",
        cwd=root,
    )
    run("git", "add", "-A", cwd=root)
    run("git", "-c", "user.email=t@t", "-c", "user.name=t", "commit", "-qm", "project", cwd=root)
    return root


def test_repro_runs_from_demo_to_a_bento_then_has_nothing_to_do(project):
    out = run("dvc", "repro", cwd=project)
    for stage in (
        "demo",
        "validate",
        "unify",
        "preprocess",
        "train",
        "evaluate",
        "gate",
        "package",
    ):
        assert f"Running stage '{stage}'" in out
    package = json.loads((project / "metrics/package.json").read_text())
    assert package["model"].startswith("umcl:") and package["bento"].startswith("umcl-service:")
    models = run("umcl", "models", "list", cwd=project)
    assert package["model"] in models and "*" in models
    bentos = run("bentoml", "list", cwd=project)
    assert package["bento"].split(":")[1] in bentos
    stored = yaml.safe_load(
        (
            project / ".bentoml/models/umcl" / package["model"].split(":")[1] / "model.yaml"
        ).read_text()
    )
    lock = yaml.safe_load((project / "dvc.lock").read_text())["stages"]
    raw = next(d["md5"] for d in lock["validate"]["deps"] if d["path"] == "data/raw")
    assert stored["metadata"]["data_version"]["raw_data"] == raw
    assert stored["labels"]["champion"] == "true" and "zero_shot" in stored["metadata"]["metrics"]
    assert (project / "data/cache/images.u8").stat().st_size > 0
    assert (project / "models/candidate/model.safetensors").is_file()
    metrics = run("dvc", "metrics", "show", cwd=project)
    assert "train.loss" in metrics and "zero_shot.learned.macro_auroc" in metrics
    assert (project / "reports/model_card.md").is_file()
    again = run("dvc", "repro", cwd=project)
    assert "Running stage" not in again
    assert "Data and pipelines are up to date" in run("dvc", "status", cwd=project)


def test_a_train_param_edit_reruns_only_train(project):
    if not (project / "dvc.lock").is_file():
        run("dvc", "repro", cwd=project)
    champion = json.loads((project / "metrics/package.json").read_text())["model"]
    params = yaml.safe_load((project / "params.yaml").read_text())
    params["train"]["lr"] = params["train"]["lr"] / 2
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    out = run("dvc", "repro", cwd=project)
    assert "Running stage 'train'" in out and "Running stage 'package'" in out
    assert (
        json.loads((project / "metrics/package.json").read_text())["previous_champion"] == champion
    )
    assert all(
        f"Running stage '{s}'" not in out for s in ("demo", "validate", "unify", "preprocess")
    )
    assert "other params, data or code" in out  # the old checkpoint is not resumed
    plots = run("dvc", "plots", "show", "--json", cwd=project)
    assert "loss.tsv" in plots and "plots/roc/learned" in plots


def test_raw_data_round_trips_through_a_remote(project, tmp_path):
    if not (project / "dvc.lock").is_file():
        run("dvc", "repro", "demo", cwd=project)
    run("dvc", "remote", "add", "-d", "local", str(tmp_path / "remote"), cwd=project)
    run("git", "add", "-A", cwd=project)
    run("git", "-c", "user.email=t@t", "-c", "user.name=t", "commit", "-qm", "data", cwd=project)
    run("dvc", "push", "demo", cwd=project)
    clone = tmp_path / "clone"
    run("git", "clone", "-q", str(project), str(clone), cwd=tmp_path)
    run("dvc", "pull", "demo", cwd=clone)
    original, pulled = project / "data/raw/demo", clone / "data/raw/demo"
    files = sorted(p.relative_to(original) for p in original.rglob("*") if p.is_file())
    assert len(files) > 100
    assert files == sorted(p.relative_to(pulled) for p in pulled.rglob("*") if p.is_file())
    match, mismatch, errors = filecmp.cmpfiles(
        original, pulled, [str(f) for f in files], shallow=False
    )
    assert not mismatch and not errors and len(match) == len(files)
