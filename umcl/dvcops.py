"""DVC as the orchestrators see it: the stage order of `dvc.yaml`, one stage reproduced, what is
out of date, experiments. Everything goes through the `dvc` command, so `dvc.lock` and the
cache stay the single record of what ran, whoever started it (a person or a Prefect flow).
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
from collections.abc import Callable, Iterable
from graphlib import TopologicalSorter
from pathlib import Path

from umcl.errors import UMCLError


class StageFailed(UMCLError, RuntimeError):
    """A DVC command that failed; the message is the failing command's own error."""

    def __init__(self, stage: str, message: str):
        super().__init__(f"stage {stage} failed: {message}")
        self.stage = stage


def stage_order(project: Path) -> list[str]:
    """The stages of `dvc.yaml` in an order that runs each after the stages whose outputs it
    reads (ties keep the file's order)."""
    stages = _stages(project)

    produced = {Path(out): name for name, spec in stages.items() for out in spec["outs"]}

    def upstream(dep: str) -> set[str]:
        dep_path = Path(dep)
        # A dependency on a folder depends on every stage writing into it, and the reverse.
        return {
            stage
            for out, stage in produced.items()
            if out == dep_path or dep_path in out.parents or out in dep_path.parents
        }

    graph = {name: set() for name in stages}
    for name, spec in stages.items():
        for dep in spec["deps"]:
            graph[name] |= upstream(dep) - {name}
    sorter = TopologicalSorter(graph)
    sorter.prepare()
    order, position = [], {name: i for i, name in enumerate(stages)}
    while sorter.is_active():
        ready = sorted(sorter.get_ready(), key=position.__getitem__)
        order += ready
        sorter.done(*ready)
    return order


def _error_message(output: str) -> str:
    """The line a person needs from a failed `dvc` run: the stage command's own error if there
    is one (`umcl <stage>: error: …`), else DVC's `ERROR:` line, else the last lines."""
    lines = [line.strip() for line in re.split(r"[\r\n]+", output) if line.strip()]
    for pattern in (r"^umcl \S+: error: ", r"^ERROR: "):
        found = [line for line in lines if re.search(pattern, line)]
        if found:
            return " | ".join(found[-2:])
    return " | ".join(lines[-5:]) or "no output"


def dvc(project: Path, *args: str, stage: str = "dvc") -> str:
    """Run `dvc ARGS` in `project`; StageFailed with the error message when it fails."""
    result = subprocess.run(["dvc", *args], cwd=project, capture_output=True, text=True)
    output = result.stdout + result.stderr
    if result.returncode != 0:
        raise StageFailed(stage, _error_message(output))
    return output


def repro_stage(
    project: Path, stage: str, force: bool = False, on_line: Callable[[str], None] | None = None
) -> bool:
    """`dvc repro --single-item STAGE`: True when it ran, False when it was up to date.
    `on_line` receives each line of the stage's output as it is written (a progress bar's
    redraws too, which end in a carriage return)."""
    args = ["repro", "--single-item", stage, *(["--force"] if force else [])]
    if on_line is None:
        output = dvc(project, *args, stage=stage)
    else:
        output = _streamed(project, args, stage, on_line)
    return f"Running stage '{stage}'" in output


TAIL_LINES = 10  # a failing stage's last lines go into its error


def _streamed(project: Path, args: list[str], stage: str, on_line: Callable[[str], None]) -> str:
    """`dvc ARGS`, its output handed to `on_line` line by line as it comes; StageFailed with
    the error and the last lines when it fails."""
    lines: list[str] = []

    def hand_on(raw: bytes) -> None:
        if line := raw.decode(errors="replace").strip():
            lines.append(line)
            on_line(line)

    # The stage's own prints unbuffered, so that they arrive as they are written.
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    # Its own process group: a cancelled task takes the stage's command (dvc's child) with it.
    with subprocess.Popen(
        ["dvc", *args],
        cwd=project,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    ) as process:
        try:
            pending = b""
            for chunk in iter(lambda: process.stdout.read1(2**16), b""):  # type: ignore[union-attr]
                *complete, pending = re.split(rb"[\r\n]", pending + chunk)
                for raw in complete:
                    hand_on(raw)
            hand_on(pending)
        except BaseException:  # a cancelled task: no `dvc repro` left holding the repository's lock
            os.killpg(process.pid, signal.SIGKILL)
            raise
    output = "\n".join(lines)
    if process.returncode != 0:
        tail = " | ".join(lines[-TAIL_LINES:])
        raise StageFailed(stage, f"{_error_message(output)} (last lines: {tail})")
    return output


def _stages(project: Path) -> dict[str, dict]:
    """`dvc.yaml`'s stages as DVC resolves them (read only): a `foreach` stage is one stage per
    item (`demo@data/raw/demo`), none for an empty list; metrics and plots count as outs."""
    from dvc.repo import Repo

    with Repo(str(project)) as repo:
        return {
            stage.name: {
                "deps": [str(d.def_path) for d in stage.deps],
                "outs": [str(o.def_path) for o in stage.outs],
                "always_changed": stage.always_changed,
            }
            for stage in repo.index.stages
            if stage.path_in_repo == "dvc.yaml"
        }


def out_of_date(project: Path) -> dict[str, list]:
    """`dvc status`: stage → what changed (raw data, params, code); empty when up to date.

    `always_changed` stages read state DVC cannot see (the pseudonym key's fingerprint), so they
    are run first and then count only through what they change downstream."""
    probes = [name for name, spec in _stages(project).items() if spec.get("always_changed")]
    for name in probes:
        repro_stage(project, name)
    status = json.loads(dvc(project, "status", "--json", stage="status") or "{}")
    return {
        stage: why
        for stage, why in status.items()
        if not (stage in probes and why == ["always changed"])
    }


def hydra_overrides(overrides: dict[str, object], replaced: Iterable[str] = ()) -> list[str]:
    """What `dvc exp run -S` takes: `~block` empties a block, `++key=value` sets a key whether
    or not params.yaml has it."""
    return [f"~{key}" for key in replaced] + [
        f"++{key}={_hydra_value(value)}" for key, value in overrides.items()
    ]


def _hydra_value(value: object) -> str:
    """A value in Hydra's override grammar: JSON, except that mapping keys are bare."""
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {_hydra_value(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(_hydra_value(v) for v in value) + "]"
    return json.dumps(value)


# Pretrained checkpoints (weights/README.md): git-ignored, a dependency of the train stage.
WEIGHTS = "weights"


def exp_run(
    project: Path,
    name: str,
    overrides: dict[str, object],
    target: str,
    replaced: Iterable[str] = (),
) -> None:
    """One DVC experiment up to `target`, in a temporary copy of the workspace (so candidates
    do not see each other's params and may run side by side). `overrides` set keys whether or
    not params.yaml has them; the `replaced` blocks are emptied first, so their overrides
    replace them whole."""
    settings = [
        arg for override in hydra_overrides(overrides, replaced) for arg in ("-S", override)
    ]
    # The temporary copy holds what git and DVC track (weights/README.md); the downloaded
    # checkpoints in weights/ are git-ignored, so each is named to be copied.
    folders = sorted(p for p in (Path(project) / WEIGHTS).glob("*") if p.is_dir())
    weights = [a for f in folders for a in ("--copy-paths", f"{WEIGHTS}/{f.name}")]
    dvc(
        project,
        "exp",
        "run",
        "--temp",
        *weights,
        "--name",
        name,
        *settings,
        target,
        stage=f"experiment {name}",
    )


def exp_file(project: Path, name: str, path: str) -> str:
    """A file as experiment `name` left it (metrics are git-tracked in the experiment's commit)."""
    refs = subprocess.run(
        ["git", "for-each-ref", "--format=%(refname)", "refs/exps"],
        cwd=project,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    matches = [r for r in refs if r.endswith(f"/{name}")]
    if not matches:
        raise StageFailed(f"experiment {name}", f"no experiment named {name} under refs/exps")
    return subprocess.run(
        ["git", "show", f"{matches[0]}:{path}"],
        cwd=project,
        capture_output=True,
        text=True,
        check=True,
    ).stdout


def exp_apply(project: Path, name: str) -> None:
    """Bring experiment `name`'s params, lock and outputs into the workspace."""
    dvc(project, "exp", "apply", name, stage=f"experiment {name}")
