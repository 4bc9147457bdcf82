"""Files written whole or not at all (`umcl/atomic.py`): under an error, and under a real kill."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from umcl.atomic import replacing_directory, write_json, write_text, write_with


def test_a_failed_write_keeps_the_earlier_file_and_leaves_no_temporary(tmp_path: Path) -> None:
    target = write_json(tmp_path / "deep" / "metrics.json", {"auroc": 0.9})
    assert json.loads(target.read_text()) == {"auroc": 0.9}

    def half_then_fail(temporary: Path) -> None:
        temporary.write_text('{"auroc": 0.')
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        write_with(target, half_then_fail)
    assert json.loads(target.read_text()) == {"auroc": 0.9}
    assert sorted(p.name for p in target.parent.iterdir()) == ["metrics.json"]


# A child that writes a large file slowly through `write_with`, saying when it has begun.
_SLOW_WRITER = """
import sys, time
from pathlib import Path
from umcl.atomic import write_with

def slow(temporary: Path) -> None:
    with temporary.open("w") as handle:
        for i in range(10_000):
            handle.write("x" * 1000 + "\\n")
            if i == 10:
                handle.flush()
                print("writing", flush=True)
            time.sleep(0.001)

write_with(Path(sys.argv[1]), slow)
"""


def test_a_killed_writer_leaves_the_earlier_file_whole(tmp_path: Path) -> None:
    target = write_text(tmp_path / "table.csv", "earlier\n")
    child = subprocess.Popen(
        [sys.executable, "-c", _SLOW_WRITER, str(target)],
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])},
    )
    assert child.stdout is not None and child.stdout.readline().strip() == "writing"
    os.killpg(child.pid, signal.SIGKILL)
    child.wait(timeout=30)
    assert target.read_text() == "earlier\n"  # not the half-written table
    leftovers = [p for p in tmp_path.iterdir() if p.name.startswith(".")]
    assert leftovers  # the killed child's hidden temporary, which the next write replaces
    write_text(target, "later\n")
    assert target.read_text() == "later\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["table.csv"]


def test_a_directory_is_replaced_whole_or_not_at_all(tmp_path: Path) -> None:
    model = tmp_path / "model"
    with replacing_directory(model) as folder:
        (folder / "weights").write_text("v1")
        (folder / "stale").write_text("only in v1")
    with pytest.raises(RuntimeError), replacing_directory(model) as folder:
        (folder / "weights").write_text("v2, half")
        raise RuntimeError("export failed")
    assert sorted(p.name for p in model.iterdir()) == ["stale", "weights"]
    assert (model / "weights").read_text() == "v1"
    with replacing_directory(model) as folder:
        (folder / "weights").write_text("v2")
    assert sorted(p.name for p in model.iterdir()) == ["weights"]  # nothing of v1 survives
    assert (model / "weights").read_text() == "v2"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]


def test_a_device_is_written_in_place_and_a_relative_folder_is_replaced(
    tmp_path, monkeypatch
) -> None:
    write_text(Path("/dev/null"), "nothing to rename over\n")  # `umcl label --out /dev/stdout`
    monkeypatch.chdir(tmp_path)
    (tmp_path / "model").mkdir()
    monkeypatch.chdir(tmp_path / "model")
    with replacing_directory(".") as folder:
        (folder / "weights").write_text("v1")
    assert (tmp_path / "model" / "weights").read_text() == "v1"


def test_leftovers_of_any_kind_never_block_a_later_write(tmp_path) -> None:
    target = tmp_path / "metrics.json"
    (tmp_path / ".metrics.json.partial").mkdir()  # a writer that made a folder, then died
    write_json(target, {"a": 1})
    assert json.loads(target.read_text()) == {"a": 1}
    single = write_text(tmp_path / "model", "a file where a folder will go")
    for version in ("v1", "v2"):  # the file, then the first folder, are replaced whole
        with replacing_directory(single) as folder:
            (folder / "weights").write_text(version)
    assert (single / "weights").read_text() == "v2"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["metrics.json", "model"]
