"""The Prefect flows against a real Prefect API (one test harness for the module): the pipeline
flow leaves the lock `dvc repro` leaves, fails with the failing stage's message, retries a
transient storage error; retrain says "nothing new" until a param changes; the sweep packages
only its best candidate; a served deployment runs to Completed when triggered."""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml

from tests.conftest import REPO
from tests.project import commit, make_project, project_env, run

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def prefect_api() -> Iterator[str]:
    from prefect.settings import PREFECT_API_URL
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield PREFECT_API_URL.value()


@contextmanager
def inside(project: Path) -> Iterator[None]:
    """The environment a flow's `dvc` and `umcl` commands see: this venv, the project's store."""
    saved = dict(os.environ)
    os.environ.update(project_env(project))
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def task_runs(flow_run_id) -> dict[str, int]:
    """Task run name → how many times it ran, from the Prefect API."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    async def read() -> dict[str, int]:
        async with get_client() as client:
            runs = await client.read_task_runs(
                flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id]))
            )
        return {r.name: r.run_count for r in runs}

    return asyncio.run(read())


def artifact(key: str) -> str:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    async def read() -> str:
        async with get_client() as client:
            found = await client.read_artifacts(
                artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[key]))
            )
        return max(found, key=lambda a: a.created).data

    return asyncio.run(read())


def variant(flowed: Path, destination: Path, **changes: dict) -> Path:
    """A copy of the flowed project (data, cache, lock, store) with some params sections updated."""
    shutil.copytree(flowed, destination, symlinks=True)
    params = yaml.safe_load((destination / "params.yaml").read_text())
    for section, values in changes.items():
        params[section].update(values)
    (destination / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    return destination


@pytest.fixture(scope="module")
def flowed(prefect_api: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny project run end to end by the pipeline flow, then committed."""
    from flows.pipeline import pipeline

    root = make_project(tmp_path_factory.mktemp("flows") / "flowed")
    with inside(root):
        state = pipeline(project=str(root), retry_delay_s=0.2, return_state=True)
    assert state.is_completed(), state.message
    FIRST_RUN["id"] = state.state_details.flow_run_id
    commit(root, "pipeline run by the flow")
    return root


FIRST_RUN: dict = {}  # the flow run of `flowed`


def test_the_run_log_shows_training_as_it_runs_and_promotion_is_an_event(flowed: Path) -> None:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        FlowRunFilter,
        FlowRunFilterId,
        LogFilter,
        LogFilterFlowRunId,
    )
    from prefect.events.filters import EventFilter, EventNameFilter

    from flows.pipeline import PROMOTED

    run_id = FIRST_RUN["id"]

    async def read():
        async with get_client() as client:
            for _ in range(60):  # logs and events reach the API in batches, seconds later
                logs = await client.read_logs(
                    log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=[run_id]))
                )
                events = await client.read_events(
                    EventFilter(event=EventNameFilter(name=[PROMOTED])), limit=50
                )
                if events.events and any(log.message.startswith("train:") for log in logs):
                    break
                await asyncio.sleep(0.5)
            tasks = await client.read_task_runs(
                flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[run_id]))
            )
        return logs, tasks, events.events

    logs, tasks, events = asyncio.run(read())
    train = next(t for t in tasks if t.name == "train")
    progress = [log for log in logs if re.match(r"train: +\d+%\|", log.message)]
    assert progress, [log.message for log in logs][-20:]
    assert min(log.timestamp for log in progress) <= train.end_time  # while it ran, not after
    assert any("Running stage 'train'" in log.message for log in logs)
    package = json.loads((flowed / "metrics/package.json").read_text())
    promoted = [e for e in events if e.payload.get("tag") == package["model"]]
    assert promoted and promoted[0].resource.id == f"umcl.model.{package['model']}"
    assert set(promoted[0].payload["metrics"]) == set(package["gate"])


def test_the_pipeline_flow_leaves_the_lock_dvc_repro_leaves(flowed: Path, reproduced: dict) -> None:
    assert yaml.safe_load((flowed / "dvc.lock").read_text()) == reproduced["lock"]
    summary = artifact("umcl-pipeline")
    assert "| package | ran |" in summary and "Gate: passed" in summary and "umcl:" in summary


def test_a_failing_stage_fails_the_flow_with_its_message_and_is_not_retried(
    flowed: Path, tmp_path: Path
) -> None:
    from flows.pipeline import pipeline

    project = variant(flowed, tmp_path / "strict", gate={"min_zero_shot_auroc": 0.999})
    with inside(project):
        state = pipeline(project=str(project), retry_delay_s=0.2, return_state=True)
    assert state.is_failed()
    assert (
        "stage gate failed" in state.message
        and "candidate refused (min_zero_shot_macro_auroc" in state.message
        and "last lines:" in state.message  # the stage's own output, not only DVC's verdict
    )
    runs = task_runs(state.state_details.flow_run_id)
    assert runs["gate"] == 1 and "package" not in runs  # a refusal is final; nothing is packaged
    assert "REFUSED" in artifact("umcl-pipeline")


def test_a_transient_storage_error_is_retried_and_the_run_completes(
    flowed: Path, tmp_path: Path
) -> None:
    from flows.pipeline import pipeline

    # Another image size: preprocess, and all that follows, must run again.
    project = variant(flowed, tmp_path / "flaky", preprocess={"image_size": 24})
    # A `dvc` in front of the real one whose first `repro` of preprocess fails as a storage
    # outage would: the fault is injected at the storage boundary, not in our code.
    shim = tmp_path / "bin"
    shim.mkdir()
    marker = tmp_path / "failed-once"
    (shim / "dvc").write_text(
        f"#!/bin/sh\n"
        f'case "$*" in *"--single-item preprocess"*) if [ ! -e {marker} ]; then touch {marker}; '
        f'echo "ERROR: failed to transfer outputs to the cache: [Errno 5] Input/output error" >&2; exit 255; fi;; esac\n'
        f'exec {Path(sys.executable).parent / "dvc"} "$@"\n'
    )
    (shim / "dvc").chmod(0o755)
    with inside(project):
        os.environ["PATH"] = f"{shim}{os.pathsep}{os.environ['PATH']}"
        state = pipeline(project=str(project), retry_delay_s=0.2, return_state=True)
    assert state.is_completed(), state.message
    assert marker.exists()
    runs = task_runs(state.state_details.flow_run_id)
    assert runs["preprocess"] == 2 and runs["train"] == 1


def test_retrain_says_nothing_new_until_a_param_changes(flowed: Path, tmp_path: Path) -> None:
    from flows.retrain import NOTHING_NEW, retrain

    project = variant(flowed, tmp_path / "retrain")
    with inside(project):
        assert retrain(project=str(project)) == NOTHING_NEW
        before = json.loads((project / "metrics/package.json").read_text())["model"]
        params = yaml.safe_load((project / "params.yaml").read_text())
        params["train"]["lr"] = params["train"]["lr"] / 2
        (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
        outcome = retrain(project=str(project))
    assert outcome.startswith("retrained") and "train" in outcome
    after = json.loads((project / "metrics/package.json").read_text())
    assert after["model"] != before and after["previous_champion"] == before


def test_the_sweep_packages_only_its_best_candidate(flowed: Path, tmp_path: Path) -> None:
    from flows.sweep import sweep
    from umcl.config import load_settings

    project = variant(flowed, tmp_path / "sweep")
    with inside(project):
        report = sweep(project=str(project), retry_delay_s=0.2)
        champion = json.loads(run("umcl", "models", "champion", cwd=project))
        models = run("umcl", "models", "list", cwd=project)
    scores = {c["name"]: c["zero_shot_macro_auroc"] for c in report["candidates"]}
    assert set(scores) == {"learning", "frozen"}
    assert report["winner"] == max(scores, key=scores.get)
    assert json.loads((project / "metrics/sweep.json").read_text())["winner"] == report["winner"]
    winner_lr = {"learning": 2.0e-3, "frozen": 1.0e-9}[report["winner"]]
    # DVC writes 1e-09 (a float to YAML 1.2, a string to PyYAML's 1.1): read it as umcl does.
    assert load_settings(project / "params.yaml").train.lr == winner_lr
    packaged = json.loads((project / "metrics/package.json").read_text())
    assert champion["tag"] == packaged["model"]
    assert models.count("umcl:") == 2  # the flow's first champion and the winner; the loser never
    table = artifact("umcl-sweep")
    assert "| learning |" in table and "| frozen |" in table and "winner" in table


def test_a_served_retrain_deployment_runs_when_triggered(flowed: Path, prefect_api: str) -> None:
    from prefect.client.orchestration import get_client

    env = {**project_env(flowed), "PREFECT_API_URL": prefect_api}
    serve = subprocess.Popen(
        [sys.executable, "-m", "flows.serve", "--project", str(flowed), "--cron", "0 3 * * *"],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 120
        while True:
            triggered = subprocess.run(
                ["prefect", "deployment", "run", "umcl-retrain/nightly"],
                env=env,
                capture_output=True,
                text=True,
                cwd=REPO,
            )
            if triggered.returncode == 0 or time.monotonic() > deadline:
                break
            time.sleep(2)  # the deployment appears once `serve` has registered it
        assert triggered.returncode == 0, triggered.stdout + triggered.stderr
        run_id = next(line.split()[-1] for line in triggered.stdout.splitlines() if "UUID" in line)

        async def state_of() -> tuple[str, object]:
            async with get_client() as client:
                flow_run = await client.read_flow_run(run_id)
                deployment = await client.read_deployment(flow_run.deployment_id)
            return flow_run.state.type.value, deployment

        while time.monotonic() < deadline + 120:
            state, deployment = asyncio.run(state_of())
            if state in {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"}:
                break
            time.sleep(1)
        assert state == "COMPLETED", state
        assert deployment.schedules and deployment.schedules[0].schedule.cron == "0 3 * * *"

        # A drift event starts the on-drift deployment, which records the drift as its reason.
        from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterName
        from prefect.events import emit_event

        from flows.monitor import DRIFT_EVENT

        emit_event(
            event=DRIFT_EVENT,
            resource={"prefect.resource.id": "umcl.model.umcl:test"},
            payload={
                "model": "umcl:test",
                "since": "then",
                "until": "now",
                "reasons": ["input embeddings differ from the reference"],
            },
        )

        async def drift_runs() -> list:
            async with get_client() as client:
                return await client.read_flow_runs(
                    deployment_filter=DeploymentFilter(name=DeploymentFilterName(any_=["on-drift"]))
                )

        while not (runs := asyncio.run(drift_runs())) and time.monotonic() < deadline + 240:
            time.sleep(1)
        assert runs, "the drift event started no run of umcl-retrain/on-drift"
        assert runs[0].parameters["reason"] == (
            "drift detected for umcl:test (then to now): input embeddings differ from the reference"
        )
    finally:
        os.killpg(serve.pid, signal.SIGTERM)
        try:
            serve.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(serve.pid, signal.SIGKILL)


def frontal_images_outside_the_test_split(project: Path) -> list[Path]:
    """The raw files of the images the project trained and validated on: what the model's
    reference (drawn from the test split) must not call drift."""
    import polars as pl

    from umcl.ingest.locator import image_files

    triplets = pl.read_parquet(project / "data/unified/triplets.parquet")
    keys = triplets.filter(pl.col("image").is_not_null() & (pl.col("split") != "test"))["image"]
    return [project / f for f in image_files(sorted(set(keys)), project / "data/locator")]


def shifted_png(source: Path, destination: Path) -> Path:
    """The same X-ray as a misconfigured export sends it: grey levels inverted (MONOCHROME1
    written as MONOCHROME2), a narrow display window, a steeper gamma and a smaller matrix, as
    an 8-bit PNG."""
    import numpy as np
    from PIL import Image

    from umcl.imaging.images import load_image

    pixels = load_image(source)
    shifted = np.clip((0.65 - pixels) / 0.3, 0, 1) ** 0.6
    image = Image.fromarray((shifted * 255).astype(np.uint8))
    image.resize((image.width // 2, image.height // 2)).save(destination)
    return destination


def test_the_monitor_flow_finds_drift_in_shifted_images_and_none_in_the_sites_own(
    flowed: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The champion the pipeline flow packaged, served; a window of the site's own images, then
    a window of the same images through another site's display settings; the monitor flow under
    Prefect judges each window against the reference packaged with the model."""
    import httpx
    from prefect.events.filters import EventFilter, EventNameFilter

    from flows.monitor import DRIFT_EVENT, monitor
    from tests.serving import served
    from umcl.monitor.drift import DRIFT, NO_DRIFT

    project = variant(
        flowed, tmp_path / "monitored", monitor={"min_images": 30, "permutations": 300}
    )
    tag = json.loads((project / "metrics/package.json").read_text())["model"]
    own = frontal_images_outside_the_test_split(project)[:40]
    assert len(own) == 40
    shifted = [shifted_png(f, tmp_path / f"shifted-{i}.png") for i, f in enumerate(own)]
    store = tmp_path / "records"
    monkeypatch.setenv("UMCL_MONITOR_DIR", str(store))
    env = project_env(project) | {"UMCL_MODEL": tag, "UMCL_PARAMS": str(project / "params.yaml")}

    def classify(url: str, files: list[Path]) -> tuple[str, str]:
        since = datetime.now(UTC).isoformat()
        for f in files:
            upload = [("images", (f"PATIENT^{f.stem}{f.suffix}", f.read_bytes()))]
            assert httpx.post(f"{url}/classify", files=upload, timeout=60).status_code == 200
        return since, datetime.now(UTC).isoformat()

    with served(env, tmp_path / "serve.log") as server:
        windows = {"own": classify(server.url, own), "shifted": classify(server.url, shifted)}
    # `served` stops the service with SIGTERM: its shutdown hook wrote the last batch.
    with inside(project):
        verdicts = {
            name: monitor(project=str(project), since=since, until=until, model=tag)
            for name, (since, until) in windows.items()
        }
        report = json.loads((project / "metrics/drift.json").read_text())
    assert verdicts == {"own": NO_DRIFT, "shifted": DRIFT}, report
    assert report["images"] == 40 and report["input"]["drifted"], (
        report["input"],
        report["reasons"],
    )
    assert "drift" in artifact("umcl-drift").lower()
    # The uploads were demo DICOMs with names, ids and dates in their headers, sent under
    # patient-like file names: the store holds none of it.
    from tests.test_monitor import EPOCH, FUTURE, assert_only_closed_vocabulary
    from umcl.monitor.store import read_records

    records, unreadable = read_records(store, tag, EPOCH, FUTURE)
    assert records.num_rows == 80 and unreadable == []
    assert_only_closed_vocabulary(records, tag)
    rendered = tmp_path / "drift-plot"
    run(
        "dvc",
        "plots",
        "show",
        "plots/drift/positive_rate.csv",
        "--template",
        "drift_rates",
        "-x",
        "finding",
        "-y",
        "positive_rate",
        "-o",
        str(rendered),
        cwd=project,
    )
    html = (rendered / "index.html").read_text()
    assert all(name in html for name in report["prediction"]["findings"]) and "window" in html

    async def drift_events():
        async with get_client() as client:
            for _ in range(60):  # events reach the API in batches, seconds later
                found = await client.read_events(
                    EventFilter(event=EventNameFilter(name=[DRIFT_EVENT])), limit=50
                )
                if any(e.payload.get("since") == windows["shifted"][0] for e in found.events):
                    return found.events
                await asyncio.sleep(0.5)
            return found.events

    from prefect.client.orchestration import get_client

    events = [e for e in asyncio.run(drift_events()) if e.payload.get("model") == tag]
    assert [e.payload["since"] for e in events] == [windows["shifted"][0]]
    assert events[0].resource.id == f"umcl.model.{tag}" and events[0].payload["reasons"]


def test_the_scoring_flow_scores_only_files_no_earlier_run_scored(
    prefect_api: str, tiny_pipeline: dict, tmp_path: Path
) -> None:
    """`umcl-score` under Prefect over a folder that fills between runs: each run's predictions
    hold the new files only; a run with nothing new writes nothing; a run stopped part-way is
    finished by the next."""
    import numpy as np
    import polars as pl
    from PIL import Image

    from flows.score import score
    from tests.conftest import saved_random_model

    project = tmp_path / "site"
    incoming = project / "incoming"
    incoming.mkdir(parents=True)
    shutil.copy(tiny_pipeline["params"], project / "params.yaml")
    model = saved_random_model(tiny_pipeline, tmp_path / "model")

    def arrive(numbers: range) -> None:
        for i in numbers:
            pixels = np.full((40, 32), 20 + i, np.uint8)
            Image.fromarray(pixels).save(incoming / f"{i:02d}.png")

    def scored() -> list[pl.DataFrame]:
        return [pl.read_parquet(f) for f in sorted((project / "predictions").glob("*.parquet"))]

    arrive(range(5))
    with inside(project):
        first = score(project=str(project), source="incoming", model=str(model))
        assert (first["files"], first["classified"]) == (5, 5)
        assert score(project=str(project), source="incoming", model=str(model))["out"] is None
        assert "nothing new" in artifact("umcl-score")
        arrive(range(5, 8))
        # A stopped run's parts (one file's row, as a run killed after its first batch leaves):
        # the next run finishes that file and scores the rest of the new ones.
        stopped = project / "predictions" / "scores-stopped.parquet.parts"
        stopped.mkdir()
        part = (
            scored()[0]
            .head(1)
            .with_columns(
                path=pl.lit("incoming/05.png"), file=pl.lit(str((incoming / "05.png").resolve()))
            )
        )
        part.write_parquet(stopped / "000000.parquet")
        second = score(project=str(project), source="incoming", model=str(model))
    assert second["out"].endswith("scores-stopped.parquet") and not stopped.exists()
    assert (second["files"], second["resumed"], second["scored_before"]) == (3, 1, 5)
    rows = pl.concat(scored())
    assert rows.height == 8 and rows["path"].n_unique() == 8
    assert sorted(rows["path"]) == [f"incoming/{i:02d}.png" for i in range(8)]
    assert "3 new files" in artifact("umcl-score")
