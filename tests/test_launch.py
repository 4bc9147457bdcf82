"""The train stage starts its own workers: `train.devices: 2` under the real `dvc repro` trains
the weights one process trains at the same global batch, is recorded in `dvc.lock`, and resumes
exactly after a SIGKILL of the whole process group (its workers included)."""

from __future__ import annotations

import os
import random
import re
import shutil
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file

from tests.project import make_project
from tests.project import run as project_run
from tests.test_train import kill_repro_train, model_digest
from umcl.config import TrainSettings
from umcl.errors import InputError
from umcl.training.launch import launcher_command
from umcl.training.runtime import device_for, intra_op_threads

STAGE = ["train", "--triplets", "data/unified/triplets.parquet", "--cache", "data/cache"]


def test_one_device_trains_in_this_process() -> None:
    assert launcher_command(TrainSettings(devices=1), STAGE, env={}) is None
    assert launcher_command(TrainSettings(devices="auto", device="cpu"), STAGE, env={}) is None
    # A torchrun worker never launches again, whatever the params say.
    worker = {"LOCAL_RANK": "0", "WORLD_SIZE": "2"}
    assert launcher_command(TrainSettings(devices=2), STAGE, env=worker) is None


def test_two_devices_hand_the_stage_command_to_torchrun() -> None:
    command = launcher_command(TrainSettings(devices=2), STAGE, env={})
    assert command[:3] == [sys.executable, "-m", "torch.distributed.run"]
    assert "--nproc-per-node=2" in command and "--standalone" in command
    assert command[-len(STAGE) - 2 :] == ["-m", "umcl.cli", *STAGE]


def test_several_nodes_need_a_rendezvous_and_torchrun_settings_win() -> None:
    with pytest.raises(InputError, match=r"train\.rendezvous"):
        launcher_command(TrainSettings(devices=8, nodes=2), STAGE, env={})
    config = TrainSettings(devices=8, nodes=2, rendezvous="node0:29500")
    command = launcher_command(config, STAGE, env={})
    assert {"--nnodes=2", "--rdzv-backend=c10d", "--rdzv-endpoint=node0:29500"} <= set(command)
    assert "--standalone" not in command
    # A SLURM script's PET_* settings are torchrun's own: not overridden by the params.
    slurm = {"PET_NNODES": "4", "PET_RDZV_ENDPOINT": "head:29400"}
    command = launcher_command(TrainSettings(devices=8), STAGE, env=slurm)
    assert not any(f.startswith(("--nnodes", "--rdzv-endpoint")) for f in command)
    assert "--rdzv-backend=c10d" in command


def test_each_process_trains_on_an_indexed_device() -> None:
    # torch.cuda.set_device refuses a bare "cuda": one GPU alone failed before its first step.
    assert device_for("cuda", 0) == torch.device("cuda:0")
    assert device_for("cuda", 3) == torch.device("cuda:3")
    assert device_for("cuda:1", 0) == torch.device("cuda:1")
    assert device_for("cpu", 2) == torch.device("cpu")


def test_threads_share_the_free_cpus(monkeypatch: pytest.MonkeyPatch) -> None:
    assert intra_op_threads(3, workers=1) == 3
    monkeypatch.setattr(os, "sched_getaffinity", lambda _: set(range(16)))
    monkeypatch.setattr("umcl.training.runtime._cgroup_quota", lambda: None)
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "2")
    assert intra_op_threads("auto", workers=2) == 6  # 16 CPUs / 2 processes − 2 workers
    monkeypatch.setattr("umcl.training.runtime._cgroup_quota", lambda: 2.0)  # docker --cpus=2
    assert intra_op_threads("auto", workers=1) == 1


def set_train(project: Path, **knobs) -> None:
    """Dropout and augmentation off (every rank draws its own masks), select the last step."""
    params = yaml.safe_load((project / "params.yaml").read_text())
    params["model"]["text"]["config"].update(
        hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0
    )
    params["train"]["augment"]["enabled"] = False
    params["train"].update(
        warmup_steps=3, lr=2e-3, log_every=1, eval_every=5, select="last", workers=0
    )
    params["train"].update(knobs)
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


def survivors(project: Path) -> list[int]:
    """Processes still working in `project` (a torchrun worker lives in a session of its own)."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and Path(os.readlink(entry / "cwd")) == project:
                found.append(int(entry.name))
        except OSError:
            continue
    return found


@pytest.mark.slow
def test_dvc_repro_on_two_processes_trains_the_one_process_weights(tmp_path: Path) -> None:
    project = make_project(tmp_path / "project")
    project_run("dvc", "repro", "preprocess", cwd=project)
    set_train(project, steps=20, batch_size=4, devices=2, checkpoint_every=20)
    out = project_run("dvc", "repro", "train", cwd=project)
    assert "on 2× cpu" in out and out.count("train: steps 0 → 20") == 1  # rank 0 reports
    lock = yaml.safe_load((project / "dvc.lock").read_text())["stages"]["train"]
    assert lock["params"]["params.yaml"]["train"]["devices"] == 2

    # One process at the same global batch (2 × 4), its own checkpoints, the same data.
    set_train(project, steps=20, batch_size=8, devices=1, checkpoint_every=20)
    project_run(
        "umcl",
        "train",
        "--triplets",
        "data/unified/triplets.parquet",
        "--cache",
        "data/cache",
        "--out",
        str(tmp_path / "one/model"),
        "--checkpoints",
        str(tmp_path / "one/checkpoints"),
        "--live",
        str(tmp_path / "one/live"),
        cwd=project,
    )
    two = load_file(project / "models/candidate/model.safetensors")
    one = load_file(tmp_path / "one/model/model.safetensors")
    assert two.keys() == one.keys()
    moved = max((one[k] - two[k]).abs().max().item() for k in one)
    assert moved < 1e-4, f"largest weight difference {moved:.2e}"


@pytest.mark.slow
def test_a_killed_two_process_run_resumes_to_the_same_weights(tmp_path: Path) -> None:
    project = make_project(tmp_path / "project")
    project_run("dvc", "repro", "preprocess", cwd=project)
    every, steps = 10, 60
    set_train(project, steps=steps, batch_size=4, devices=2, checkpoint_every=every)
    assert f"train: steps 0 → {steps}" in project_run("dvc", "repro", "train", cwd=project)
    model = project / "models/candidate"
    expected = model_digest(model)
    shutil.rmtree(project / "models")
    shutil.rmtree(project / "metrics/train")

    kill_at = every + random.randint(1, every - 1)
    seen = kill_repro_train(project, kill_at, tmp_path / "killed.log")
    deadline = time.monotonic() + 30
    while survivors(project):  # the workers die with their launcher
        assert time.monotonic() < deadline, f"workers outlived the kill: {survivors(project)}"
        time.sleep(0.1)
    assert seen < steps and not (model / "model.safetensors").exists(), f"killed at {seen}"

    resumed = project_run("dvc", "repro", "train", cwd=project)
    start = int(re.search(rf"train: steps (\d+) → {steps}", resumed)[1])
    assert start % every == 0 and every <= start <= seen, (start, seen)
    assert model_digest(model) == expected, f"killed at step {seen}, resumed from {start}"
