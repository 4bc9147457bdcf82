"""The CLI: a dispatcher to the command modules of `umcl/stages/`, which own their arguments (a
pipeline stage's paths have no defaults). Its errors: one a user can fix (`UMCLError`) is one
line and exit 1; anything else is a bug and keeps its traceback."""

import subprocess
import sys

import pytest

import umcl.stages.demo
from umcl.cli import COMMANDS, chosen_command, main
from umcl.errors import InputError, MissingInputError, UMCLError


def test_an_error_the_user_can_fix_is_one_line_and_exit_1(tmp_path, capsys):
    (tmp_path / "p.yaml").write_text("seed: [1,\n")
    assert main(["--params", str(tmp_path / "p.yaml"), "demo"]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("umcl demo: error: ") and "not valid YAML" in err
    assert "Traceback" not in err and len(err.splitlines()) == 1


def test_a_bug_keeps_its_traceback(monkeypatch):
    def broken(args):
        return {}["no such key"]

    monkeypatch.setattr(umcl.stages.demo, "run", broken)
    with pytest.raises(KeyError, match="no such key"):
        main(["demo"])


def test_a_bug_in_a_real_process_exits_with_its_traceback():
    """A programming error in a stage is not dressed up as a user error: Python's own traceback
    and exit status, in a real process."""
    script = (
        "import sys, umcl.cli as cli, umcl.stages.demo as demo; demo.run = lambda args: 1 / 0; "
        "sys.exit(cli.main(['demo']))"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert result.returncode == 1 and "umcl demo: error" not in result.stderr
    assert "Traceback" in result.stderr and "ZeroDivisionError" in result.stderr


def test_the_project_errors_are_user_errors_and_keep_their_builtin_types():
    from umcl.config import ConfigError
    from umcl.gate import GateFailed
    from umcl.imaging.limits import ImageDecodeError
    from umcl.ingest.records import SourceError

    for error in (ConfigError, ImageDecodeError, SourceError, GateFailed, InputError):
        assert issubclass(error, UMCLError)
    assert issubclass(InputError, ValueError) and issubclass(MissingInputError, FileNotFoundError)


def test_a_missing_input_is_a_user_error(tmp_path, capsys):
    out = str(tmp_path / "out.csv")
    args = ["label", str(tmp_path / "nope.csv"), "--id-column", "id", "--text-columns", "t"]
    assert main([*args, "--out", out]) == 1
    assert "nope.csv: no such file" in capsys.readouterr().err


def test_a_stage_is_given_its_paths_never_assumes_them(capsys):
    with pytest.raises(SystemExit) as exited:
        main(["validate", "--out", "data/validated"])
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert "the following arguments are required: --quarantine, --metrics, --locator" in err


def test_the_dispatcher_imports_only_the_chosen_command():
    script = (
        "import sys; from umcl.cli import build_parser, COMMANDS; build_parser('unify'); "
        "print(sorted(m for m in sys.modules if m.startswith('umcl.stages.')))"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "['umcl.stages.common', 'umcl.stages.unify']"
    assert chosen_command(["--params", "validate", "-v", "unify", "--out", "x"]) == "unify"
    assert chosen_command(["--params", "p.yaml", "no-such-command"]) is None
    for name in COMMANDS:  # every command has its module, with its arguments and its work
        stage = __import__(f"umcl.stages.{name.replace('-', '_')}", fromlist=["run"])
        assert callable(stage.add_arguments) and callable(stage.run), name


def test_an_abbreviated_global_option_is_refused_not_misread(capsys):
    with pytest.raises(SystemExit) as exited:
        main(["--para", "p.yaml", "label", "in.csv", "--id-column", "id", "--text-columns", "t"])
    assert exited.value.code == 2 and "--para" in capsys.readouterr().err
