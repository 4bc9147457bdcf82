"""The CLI's errors: one a user can fix (`UMCLError`) is one line and exit 1; anything else is a
bug and keeps its traceback."""

import subprocess
import sys

import pytest

import umcl.cli
from umcl.cli import main
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

    monkeypatch.setattr(umcl.cli, "cmd_demo", broken)
    with pytest.raises(KeyError, match="no such key"):
        main(["demo"])


def test_a_bug_in_a_real_process_exits_with_its_traceback(tmp_path):
    """A programming error (here: a params file that is a directory) is not dressed up as a user
    error: Python's own traceback and exit status."""
    (tmp_path / "p.yaml").mkdir()
    result = subprocess.run([sys.executable, "-m", "umcl.cli", "--params", str(tmp_path / "p.yaml"),
                             "demo"], capture_output=True, text=True)  # fmt: skip
    assert result.returncode != 0
    assert "Traceback" in result.stderr or "umcl demo: error:" in result.stderr


def test_the_project_errors_are_user_errors_and_keep_their_builtin_types():
    from umcl.config import ConfigError
    from umcl.data.dicom import ImageDecodeError
    from umcl.data.records import SourceError
    from umcl.gate import GateFailed

    for error in (ConfigError, ImageDecodeError, SourceError, GateFailed, InputError):
        assert issubclass(error, UMCLError)
    assert issubclass(InputError, ValueError) and issubclass(MissingInputError, FileNotFoundError)
