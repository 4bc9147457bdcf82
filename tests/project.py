"""A temporary copy of this repository as a fresh git + DVC project with tiny params, and a
runner for commands inside it (its own BentoML model store, this venv's tools first on PATH)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import yaml

from tests.conftest import REPO, tiny_params


def project_env(root: Path) -> dict[str, str]:
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    env["BENTOML_HOME"] = str(root / ".bentoml")  # each project its own model store
    return env


def run(*command: str, cwd: Path, timeout: float = 600) -> str:
    """Run `command` in a session of its own; past `timeout` the whole session (torchrun's
    launcher and workers included) is killed and the test fails with what it printed, well
    inside pytest's own limit."""
    with subprocess.Popen(
        command,
        cwd=cwd,
        env=project_env(cwd),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    ) as process:
        try:
            stdout, stderr = process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            stdout, stderr = process.communicate()
            raise AssertionError(
                f"{' '.join(command)} still running after {timeout:.0f} s, killed:\n"
                f"{stdout[-3000:]}\n{stderr[-3000:]}"
            ) from None
    assert process.returncode == 0, (
        f"{' '.join(command)} failed:\n{stdout[-3000:]}\n{stderr[-3000:]}"
    )
    return stdout + stderr


def commit(root: Path, message: str) -> None:
    run("git", "add", "-A", cwd=root)
    run(
        "git",
        "-c",
        "user.email=t@t",
        "-c",
        "user.name=t",
        "commit",
        "-qm",
        message,
        "--allow-empty",
        cwd=root,
    )


def make_project(root: Path) -> Path:
    """The tracked and new files of this repository (no data, metrics or lock), tiny params."""
    root.mkdir(parents=True, exist_ok=True)
    files = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    for name in files:
        if (REPO / name).is_file() and not name.startswith(("data/", "metrics/", "dvc.lock")):
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, root / name)
    params = tiny_params(Path("data"))
    # A tiny model reaches no useful threshold; any candidate passes, so every run packages.
    params["gate"] = {"min_zero_shot_auroc": None, "min_recall_at_5": None, "max_regression": 1.0}
    params["sweep"]["candidates"] = [
        {"name": "learning", "overrides": {"train.lr": 2.0e-3}},
        {"name": "frozen", "overrides": {"train.lr": 1.0e-9}},  # barely moves from its random start
    ]
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    run("git", "init", "-q", cwd=root)
    commit(root, "project")
    return root
