"""The training loop on the tiny demo: it learns, saves a loadable model, resumes exactly."""

from __future__ import annotations

import csv
import logging
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file

from tests.conftest import REPO
from tests.tiny import MODEL
from umcl.config import parse_settings
from umcl.model.tokenizer import load_tokenizer
from umcl.model.umcl import build_model, load_model
from umcl.train import CHECKPOINT, CheckpointError, train


def params_for(pipeline: dict, **train) -> dict:
    params = yaml.safe_load(pipeline["params"].read_text())
    params["model"] = MODEL
    params["train"] = {
        "steps": 30,
        "batch_size": 8,
        "warmup_steps": 3,
        "checkpoint_every": 5,
        "log_every": 1,
        "lr": 2e-3,
    } | train
    return params


def run(pipeline: dict, out: Path, **train_knobs) -> dict:
    settings = parse_settings(params_for(pipeline, **train_knobs))
    return train(
        settings,
        pipeline["triplets"],
        pipeline["cache"],
        out / "model",
        out / "checkpoints",
        out / "live",
    )


def losses(live: Path) -> list[float]:
    with (live / "plots/metrics/train/loss.tsv").open() as f:
        return [float(row["loss"]) for row in csv.DictReader(f, delimiter="\t")]


def test_training_learns_and_the_model_loads_back(tiny_pipeline: dict, tmp_path: Path) -> None:
    summary = run(tiny_pipeline, tmp_path)
    history = losses(tmp_path / "live")
    assert len(history) == 30
    assert sum(history[-10:]) / 10 < sum(history[:10]) / 10
    assert summary["resumed_from"] == 0 and summary["world_size"] == 1

    loaded = load_model(tmp_path / "model")
    rebuilt = build_model(
        parse_settings(params_for(tiny_pipeline)).model,
        loaded.prompts.settings,
        loaded.label_names,
        load_tokenizer(tmp_path / "model/tokenizer"),
    )
    rebuilt.load_state_dict(
        torch.load(tmp_path / "checkpoints" / CHECKPOINT, weights_only=True)["model"]
    )
    rebuilt.eval()
    images, texts = torch.rand(3, 1, 32, 32), ["no pleural effusion.", "cardiomegaly.", ""]
    with torch.no_grad():
        assert torch.equal(loaded.encode_image(images), rebuilt.encode_image(images))
        assert torch.equal(loaded.encode_text(texts), rebuilt.encode_text(texts))
        assert torch.equal(loaded.encode_findings()[0], rebuilt.encode_findings()[0])
    assert (tmp_path / "model/labels.json").is_file() and (tmp_path / "model/tokenizer").is_dir()


def test_a_corrupt_checkpoint_stops_the_run(tiny_pipeline: dict, tmp_path: Path) -> None:
    checkpoint = tmp_path / "checkpoints" / CHECKPOINT
    checkpoint.parent.mkdir()
    checkpoint.write_bytes(b"PK\x03\x04 torn in half")
    with pytest.raises(CheckpointError, match=r"cannot resume.*Delete it"):
        run(tiny_pipeline, tmp_path, steps=4)
    assert checkpoint.read_bytes() == b"PK\x03\x04 torn in half"
    assert not (tmp_path / "model").exists()


def test_a_checkpoint_from_other_params_is_not_resumed(
    tiny_pipeline: dict, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    assert run(tiny_pipeline, tmp_path, steps=4)["resumed_from"] == 0
    assert run(tiny_pipeline, tmp_path, steps=4)["resumed_from"] == 4  # same params: nothing to do
    with caplog.at_level(logging.WARNING):
        assert run(tiny_pipeline, tmp_path, steps=4, lr=1e-3)["resumed_from"] == 0
    assert "other params, data or code" in caplog.text


def train_arguments(pipeline: dict, out: Path) -> list[str]:
    """`umcl train` options for the tiny pipeline's data, writing under `out`."""
    return ["--triplets", str(pipeline["triplets"]), "--cache", str(pipeline["cache"]), "--out", str(out / "model"),
            "--checkpoints", str(out / "checkpoints"), "--live", str(out / "live")]  # fmt: skip


def _train_process(params: Path, pipeline: dict, out: Path) -> subprocess.Popen:
    command = [
        sys.executable,
        "-m",
        "umcl.cli",
        "--params",
        str(params),
        "-v",
        "train",
        *train_arguments(pipeline, out),
    ]
    return subprocess.Popen(
        command,
        cwd=REPO,
        stderr=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=os.environ | {"PYTHONUNBUFFERED": "1"},
    )


@pytest.mark.slow
def test_kill_and_resume_ends_with_the_uninterrupted_weights(
    tiny_pipeline: dict, tmp_path: Path
) -> None:
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump(params_for(tiny_pipeline, steps=60, checkpoint_every=5)))
    whole = _train_process(params, tiny_pipeline, tmp_path / "whole")
    assert whole.wait(timeout=300) == 0, whole.stderr.read()[-2000:]

    killed = _train_process(params, tiny_pipeline, tmp_path / "killed")
    for line in killed.stderr:  # kill -9 right after the first checkpoint lands
        if "checkpoint at step" in line:
            killed.send_signal(signal.SIGKILL)
            break
    killed.wait(timeout=60)
    assert killed.returncode == -signal.SIGKILL
    assert not (tmp_path / "killed/model").exists()

    resumed = _train_process(params, tiny_pipeline, tmp_path / "killed")
    stdout, stderr = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, stderr[-2000:]
    assert "train: steps 5 → 60" in stdout or "train: steps 10 → 60" in stdout, stdout
    expected = load_file(tmp_path / "whole/model/model.safetensors")
    got = load_file(tmp_path / "killed/model/model.safetensors")
    assert expected.keys() == got.keys()
    for name, tensor in expected.items():
        assert torch.equal(tensor, got[name]), name
    assert losses(tmp_path / "killed/live") == pytest.approx(losses(tmp_path / "whole/live"))


@pytest.mark.slow
def test_torchrun_trains_with_two_gloo_processes(tiny_pipeline: dict, tmp_path: Path) -> None:
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump(params_for(tiny_pipeline, steps=6, batch_size=4)))
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m", "umcl.cli",
               "--params", str(params), "train", *train_arguments(tiny_pipeline, tmp_path)]  # fmt: skip
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert (
        "on 2× cpu" in done.stdout and done.stdout.count("train: steps 0 → 6") == 1
    )  # rank 0 reports
    description = yaml.safe_load((tmp_path / "model/umcl.json").read_text())
    assert description["train"]["world_size"] == 2
    assert len(losses(tmp_path / "live")) == 6
    load_model(tmp_path / "model")


def test_accumulation_and_bf16_autocast_run(tiny_pipeline: dict, tmp_path: Path) -> None:
    summary = run(tiny_pipeline, tmp_path, steps=3, batch_size=4, accumulate=2, precision="bf16")
    assert summary["precision"] == "bf16" and summary["steps"] == 3
    assert len(losses(tmp_path / "live")) == 3
    assert summary["final_loss"] == summary["final_loss"]  # not NaN
