"""The orchestrators' DVC: a streamed stage cancelled mid-run takes its whole process group
(dvc and the stage's own command) with it, so nothing keeps running or holds the lock."""

import subprocess
import sys
import time

import pytest
import yaml

from tests.project import project_env
from umcl.dvcops import repro_stage


class Cancelled(BaseException):  # what a cancelled Prefect task raises in the middle of a stage
    pass


def alive(marker: str) -> bool:
    return subprocess.run(["pgrep", "-f", marker], capture_output=True).returncode == 0


def test_a_cancelled_streamed_stage_leaves_no_process(tmp_path, monkeypatch):
    for name, value in project_env(tmp_path).items():
        monkeypatch.setenv(name, value)
    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True)
    subprocess.run(["dvc", "init", "-q"], cwd=tmp_path, check=True)
    marker = "sleep 371"  # the stage's own child, found by its command line
    child = (
        f"import subprocess; print('sta' + 'rted', flush=True); subprocess.run({marker.split()!r})"
    )
    stage = {"cmd": f'{sys.executable} -c "{child}"', "outs": ["out.txt"]}
    (tmp_path / "dvc.yaml").write_text(yaml.safe_dump({"stages": {"slow": stage}}))

    def on_line(line: str) -> None:
        if line == "started":
            time.sleep(0.5)  # the child's sleep is running now
            assert alive(marker)
            raise Cancelled

    with pytest.raises(Cancelled):
        repro_stage(tmp_path, "slow", on_line=on_line)
    for _ in range(20):
        if not alive(marker):
            break
        time.sleep(0.1)
    assert not alive(marker), "the stage's command outlived its cancelled task"
