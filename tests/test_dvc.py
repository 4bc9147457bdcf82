"""`dvc repro` in a temporary copy of the repository, and raw data through a DVC remote."""

import filecmp
import json
import secrets
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.project import commit, make_project, project_env, run
from umcl.config import DemoSettings
from umcl.demo.generator import generate_demo
from umcl.dvcops import out_of_date

pytestmark = pytest.mark.slow


def _leaves(tree: object) -> list:
    if isinstance(tree, dict):
        return [leaf for value in tree.values() for leaf in _leaves(value)]
    return [tree]


@pytest.fixture(scope="module")
def project(reproduced: dict) -> Path:
    return reproduced["root"]


def test_repro_runs_from_demo_to_a_bento_then_has_nothing_to_do(project, reproduced):
    out = reproduced["output"]  # the first `dvc repro` of the project
    for stage in (
        "demo",
        "pseudonym_key",
        "validate",
        "unify",
        "preprocess",
        "train",
        "evaluate",
        "gate",
        "package",
        "site_sample",
        "adapt",
    ):
        assert f"Running stage '{stage}" in out  # the demo's is `demo@data/raw/demo`
    # No site sample in params.yaml: the adapt stage says so and packages nothing more.
    assert json.loads((project / "metrics/adapt.json").read_text())["adapted"] is False
    package = json.loads((project / "metrics/package.json").read_text())
    assert package["model"].startswith("umcl:") and package["bento"].startswith("umcl-service:")
    models = run("umcl", "models", "list", cwd=project)
    assert package["model"] in models and "*" in models
    bentos = json.loads(run("bentoml", "list", "-o", "json", cwd=project))
    assert package["bento"] in [b["tag"] for b in bentos]
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
    assert "probe" in metrics and "5xN" in metrics and "passed" in metrics
    # What `dvc exp show` lists: the headline and the verdict, not every per-label figure.
    shown = json.loads(run("dvc", "exp", "show", "--json", cwd=project))
    workspace = next(entry["data"] for entry in shown if entry["rev"] == "workspace")
    numbers = [
        value
        for per_file in workspace["metrics"].values()
        for value in _leaves(per_file.get("data", {}))
        if isinstance(value, int | float)
    ]
    assert 6 <= len(numbers) <= 20, numbers
    assert (project / "reports/model_card.md").is_file()
    again = run("dvc", "repro", cwd=project)
    # Only the key's and the site sample's fingerprints are looked at again (DVC cannot see the
    # environment or files that a param names); both are unchanged, so nothing downstream runs.
    assert sorted(line for line in again.splitlines() if "Running stage" in line) == [
        "Running stage 'pseudonym_key':",
        "Running stage 'site_sample':",
    ]
    assert out_of_date(project) == {}


def test_a_train_param_edit_reruns_only_train(project):
    champion = json.loads((project / "metrics/package.json").read_text())["model"]
    commit(project, "the first model")
    params = yaml.safe_load((project / "params.yaml").read_text())
    params["train"]["lr"] = params["train"]["lr"] / 2
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    out = run("dvc", "repro", cwd=project)
    assert "Running stage 'train'" in out and "Running stage 'package'" in out
    assert (
        json.loads((project / "metrics/package.json").read_text())["previous_champion"] == champion
    )
    assert all(
        f"Running stage '{s}" not in out for s in ("demo", "validate", "unify", "preprocess")
    )
    assert "other params, data or code" in out  # the old checkpoint is not resumed
    # The curves are in git: `dvc plots diff` draws the first model's next to this one's.
    diff = json.loads(run("dvc", "plots", "diff", "HEAD", "--json", cwd=project))["data"]
    roc = diff["plots/roc/learned.csv"][0]["content"]
    assert roc["encoding"]["color"] == {"field": "finding", "type": "nominal"}
    revisions = {point["rev"] for point in roc["data"]["values"]}
    assert revisions == {"HEAD", "workspace"}
    assert len({point["finding"] for point in roc["data"]["values"]}) >= 3  # overlaid in one plot
    run("dvc", "plots", "show", "-o", "plots_html", cwd=project)
    page = (project / "plots_html/index.html").read_text()
    for plot in ("plots/roc/learned.csv", "train_vs_validation_loss", "calibration"):
        assert plot in page, plot


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


def test_a_site_without_the_demo_generates_and_reads_none(tmp_path):
    """`demo.out: []` and only a site's own PACS + RIS export: `dvc repro` runs to a bento, and no
    stage writes, reads or even exists for demo data."""
    project = make_project(tmp_path / "site")
    scratch = tmp_path / "scratch"  # the site's export: shaped like the demo's, minus its manifest
    sizes = {"image_text_studies": 1, "image_label_studies": 1, "text_label_studies": 1}
    generate_demo(DemoSettings(**sizes, pacs_studies=60, image_size=64, fault_rate=0), scratch, 7)
    shutil.move(scratch / "pacs", project / "data/raw/site")
    params = yaml.safe_load((project / "params.yaml").read_text())
    site = next(s for s in params["data"]["sources"] if s["format"] == "dicom_folder")
    site.update(name="site", path="data/raw/site/dicom", reports="data/raw/site/ris.csv")
    params["data"]["sources"], params["demo"]["out"] = [site], []
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    (project / ".umcl").mkdir()
    (project / ".umcl/pseudonym.key").write_text(secrets.token_hex(24))  # not demo data: a key
    out = run("dvc", "repro", cwd=project)
    assert "Running stage 'package'" in out and "Running stage 'demo" not in out
    assert not (project / "data/raw/demo").exists()
    assert "demo" not in run("dvc", "stage", "list", "--name-only", cwd=project)
    lock = yaml.safe_load((project / "dvc.lock").read_text())["stages"]
    assert not [name for name in lock if name.startswith("demo")]
    validation = json.loads((project / "metrics/validation.json").read_text())
    assert list(validation) == ["site"] and validation["site"]["rows_valid"] > 40


def test_a_preset_runs_as_a_dvc_experiment_and_a_wrong_key_is_refused(project, tmp_path):
    commit(project, "before the preset")
    (tmp_path / "bad.yaml").write_text("train: {lrr: 0.1}\n")
    refused = subprocess.run(
        ["umcl", "preset", str(tmp_path / "bad.yaml")],
        cwd=project,
        env=project_env(project),
        capture_output=True,
        text=True,
    )
    assert refused.returncode == 1 and "train.lrr" in refused.stderr
    # The preset continues the image tower from a checkpoint in the git-ignored weights/, which
    # the experiment's temporary copy must see.
    from tests.test_pretrained import save_vision

    save_vision("convnext", project / "weights/convnext-tiny")
    (tmp_path / "tiny.yaml").write_text(
        "train: {lr: 0.002}\nprompt: {n_ctx: 2}\n"
        "model: {image: {pretrained: weights/convnext-tiny, config: {}, pooling: pooler}}\n"
    )
    out = run("umcl", "preset", str(tmp_path / "tiny.yaml"), "--name", "tiny-preset", cwd=project)
    assert "experiment tiny-preset ran to evaluate" in out
    shown = json.loads(run("dvc", "exp", "show", "--json", cwd=project))
    experiments = [e for entry in shown for e in entry.get("experiments") or []]
    ran = next(e for e in experiments if e.get("name") == "tiny-preset")["revs"][0]["data"]
    params = ran["params"]["params.yaml"]["data"]
    assert params["train"]["lr"] == 0.002 and params["prompt"]["n_ctx"] == 2
    assert params["model"]["image"]["pretrained"] == "weights/convnext-tiny"
    shutil.rmtree(
        project / "weights/convnext-tiny"
    )  # the workspace's train stage is up to date again
    assert ran["metrics"]["metrics/headline.json"]["data"]["auroc"] is not None
