"""`dvc.yaml` names, for every stage, every project source file the stage's command runs and every
params key it reads: a change there must rerun the stage. Derived from the imports themselves
(`umcl/imports.py`) and from the keys each stage's command really reads (`tests/params_read.py`),
so the lists cannot drift again as modules and knobs are added."""

from __future__ import annotations

import ast
import copy
import json
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.conftest import REPO
from tests.project import make_project, project_env
from umcl.cli import chosen_command, stage_module
from umcl.config import RUN_ONLY, WEIGHT_PARAMS
from umcl.imports import import_closure, imported_modules
from umcl.training.checkpoint import TRAINING_ENTRY


def needed_files(cmd: str) -> set[str]:
    """The project files `cmd` (a `umcl` command line) runs: its command's module under
    `umcl/stages/` and everything that imports, and for a bento the service it packs. The
    dispatcher (`umcl/cli.py`) is none of them: it holds no command's code."""
    words = shlex.split(cmd)
    assert words[0] == "umcl", f"{cmd!r}: every stage runs a `umcl` command"
    command = chosen_command(words[1:])
    assert command is not None, f"{cmd!r}: names no umcl command"
    roots = {stage_module(command)}
    if "--bentofile" in words:  # the bento packs the service and runs it
        bentofile = REPO / words[words.index("--bentofile") + 1]
        roots.add(yaml.safe_load(bentofile.read_text())["service"].split(":")[0])
    return {str(p.relative_to(REPO)) for p in import_closure(roots)}


def missing_deps(stages: dict) -> dict[str, list[str]]:
    """Per `umcl` stage, the source files it runs that no dependency covers (a dependency on a
    folder covers what is inside)."""
    missing = {}
    for name, stage in stages.items():
        deps = [str(d).rstrip("/") for d in stage.get("deps", [])]
        uncovered = [
            f
            for f in sorted(needed_files(stage["cmd"]))
            if not any(f == d or f.startswith(d + "/") for d in deps)
        ]
        if uncovered:
            missing[name] = uncovered
    return missing


def stages() -> dict:
    """dvc.yaml's stages; a `foreach` stage as its `do` body (every instance runs that)."""
    declared = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
    return {name: stage.get("do", stage) for name, stage in declared.items()}


def test_every_stage_depends_on_the_code_it_runs() -> None:
    assert missing_deps(stages()) == {}


def test_no_stage_lists_code_it_does_not_run() -> None:
    """Each source dependency holds a module the stage runs: an edit elsewhere reruns nothing."""
    unneeded = {}
    for name, stage in stages().items():
        needed = needed_files(stage["cmd"])
        extra = [
            d
            for d in map(str, stage.get("deps", []))
            if d.startswith("umcl")
            and not d.endswith(".html")  # the page the service serves, read by umcl/page.py
            and not any(f == d or f.startswith(d.rstrip("/") + "/") for f in needed)
            and not (d.endswith("/__init__.py") and any(f.startswith(d[:-11]) for f in needed))
        ]
        if extra:
            unneeded[name] = extra
    assert unneeded == {}


def test_no_stage_depends_on_the_dispatcher() -> None:
    """`umcl/cli.py` lists the commands and their one-line help: editing it reruns no stage."""
    for name, stage in stages().items():
        deps = [str(d).rstrip("/") for d in stage.get("deps", [])]
        covering = [d for d in deps if d == "umcl/cli.py" or "umcl/cli.py".startswith(d + "/")]
        assert not covering, (name, covering)


def test_the_bento_packs_every_module_the_service_imports() -> None:
    """bentofile.yaml names what the bento packs one by one (no training, ingestion or CLI
    code); it must hold the service's whole import closure and each package's __init__."""
    import pathspec

    bentofile = yaml.safe_load((REPO / "bentofile.yaml").read_text())
    packed = pathspec.GitIgnoreSpec.from_lines(bentofile["include"])
    service = bentofile["service"].split(":")[0]
    needed = {p.relative_to(REPO) for p in import_closure([service])}
    needed |= {package / "__init__.py" for f in needed for package in f.parents if package.parts}
    missing = sorted(str(f) for f in needed if not packed.match_file(str(f)))
    assert not missing, f"bentofile.yaml does not pack {missing}"
    assert not packed.match_file("umcl/cli.py")


def test_a_stage_missing_an_imported_module_is_caught() -> None:
    for stage, dep in (
        ("train", "umcl/labels.py"),
        ("validate", "umcl/config"),  # a folder: every module in it goes missing
        ("evaluate", "umcl/calibration.py"),
    ):
        broken = copy.deepcopy(stages())
        assert dep in broken[stage]["deps"], (stage, dep)
        broken[stage]["deps"].remove(dep)
        modules = (
            [dep]
            if dep.endswith(".py")
            else sorted(str(p.relative_to(REPO)) for p in (REPO / dep).rglob("*.py"))
        )
        assert missing_deps(broken) == {stage: modules}


def test_the_closure_follows_lazy_and_relative_imports_but_not_type_checking() -> None:
    demo = {str(p.relative_to(REPO)) for p in import_closure([stage_module("demo")])}
    assert "umcl/demo/generator.py" in demo  # imported inside `run`
    assert "umcl/config/__init__.py" in demo  # through the `settings` helper, lazily
    assert "umcl/config/settings.py" in demo  # and what the package's __init__ imports
    assert "umcl/cli.py" not in demo
    source = """
from typing import TYPE_CHECKING
if TYPE_CHECKING:
    from umcl.registry import champion
else:
    from umcl import gate
def later():
    import umcl.model.loss
from .ingest import pacs
from umcl import load
"""
    found = imported_modules(REPO / "umcl/cli.py", ast.parse(source))
    assert found == {"umcl.gate", "umcl.model.loss", "umcl.ingest.pacs", "umcl"}
    deid = {str(p.relative_to(REPO)) for p in import_closure(["umcl.ingest.deid"])}
    assert "umcl/ingest/deid/rules.py" in deid  # its __init__ imports relatively


def test_the_resume_fingerprint_hashes_the_code_the_train_stage_depends_on() -> None:
    """One list: the train stage's code is `umcl train`'s import closure, and so is what a
    checkpoint's code digest covers."""
    fingerprinted = {str(p.relative_to(REPO)) for p in import_closure([TRAINING_ENTRY])}
    assert needed_files(stages()["train"]["cmd"]) == fingerprinted | {
        "umcl/stages/train.py",  # its arguments and messages
        "umcl/stages/common.py",
        "umcl/config/__init__.py",
        "umcl/training/launch.py",  # starts the workers; their number enters the fingerprint
    }


def unlisted(read: list[str], declared: list[str]) -> list[str]:
    """Keys read that no declared params key covers (a key covers what lies under it), except the
    RUN_ONLY knobs, which change how a stage runs, not what it writes."""
    return [
        k
        for k in read
        if k not in RUN_ONLY and not any(k == p or k.startswith(p + ".") for p in declared)
    ]


def test_the_train_stage_lists_every_param_that_shapes_the_weights() -> None:
    """One list (`WEIGHT_PARAMS`): the resume fingerprint, the model's record, and dvc.yaml."""
    assert unlisted(list(WEIGHT_PARAMS), stages()["train"]["params"]) == []


@pytest.mark.slow
def test_every_stage_lists_the_params_it_reads(tmp_path: Path) -> None:
    """Each stage's own command, run in a copy of the project, records the keys it reads."""
    project = make_project(tmp_path / "project")
    demo_out = yaml.safe_load((project / "params.yaml").read_text())["demo"]["out"][0]
    reads: dict[str, list[str]] = {}
    for name, stage in stages().items():  # dvc.yaml lists them in an order that runs
        out = tmp_path / f"{name}.json"
        command = shlex.split(stage["cmd"].replace("${item}", demo_out))
        result = subprocess.run(
            [sys.executable, "-m", "tests.params_read", str(out), *command],
            cwd=project,
            env=project_env(project),
            capture_output=True,
            text=True,
        )
        assert result.returncode == 0, f"{name}: {result.stderr[-3000:]}"
        reads[name] = json.loads(out.read_text())
    assert "train.steps" in reads["train"] and "decode.max_pixels" in reads["validate"]
    gaps = {n: unlisted(reads[n], stages()[n].get("params", [])) for n in reads}
    assert {n: keys for n, keys in gaps.items() if keys} == {}
    without_decode = [p for p in stages()["validate"]["params"] if p != "decode"]
    assert "decode.max_pixels" in unlisted(reads["validate"], without_decode)  # it can fail
