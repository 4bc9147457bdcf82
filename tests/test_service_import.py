"""Importing the service reads settings from the environment and does nothing else: no file, no
model store, no subprocess, no socket (issue: a module import that does work makes every tool
that imports it slow and fragile). The model, the params file and the C library are read when
the service starts (`umcl/service.py`)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import umcl

UMCL_DIR = str(Path(umcl.__file__).parent)

# A child interpreter records each audited I/O event whose innermost frame of UMCL's own code is
# calling something other than the import machinery: what a library does while it is imported
# is its business, what our modules run at import is ours. A library reading its own installed
# files or the system's (pydantic looks up its plugins' entry points when a model class is
# defined; psutil reads /proc when BentoML's container is first used) is not the service's I/O.
PROBE = textwrap.dedent(
    f"""
    import json, sys
    WATCHED = {{"open", "os.listdir", "os.scandir", "os.mkdir", "os.remove", "os.rename",
               "os.chmod", "os.truncate", "subprocess.Popen", "os.system", "os.posix_spawn",
               "os.exec", "socket.connect", "socket.bind", "ctypes.dlopen", "shutil.rmtree",
               "shutil.copyfile"}}
    LIBRARY_FILES = (sys.prefix, sys.base_prefix, "/proc/", "/sys/")
    READS = {{"open", "os.listdir", "os.scandir"}}
    ours = []

    def audit(event, args):
        if event not in WATCHED:
            return
        target = str(args[0] if args else "")
        mode = args[1] if event == "open" and len(args) > 1 else "r"
        reading = event in READS and mode in ("r", "rb", None)
        if reading and (target.startswith(LIBRARY_FILES) or "__editable__" in target):
            return  # a library reading its own files or the system's (entry points, /proc)
        frames, frame = [], sys._getframe(1)  # innermost first; no source lines read
        while frame is not None:
            frames.append((frame.f_code.co_filename, frame.f_lineno))
            frame = frame.f_back
        mine = [i for i, (name, _) in enumerate(frames) if name.startswith({UMCL_DIR!r})]
        if not mine:
            return
        callee = frames[mine[0] - 1][0] if mine[0] > 0 else ""
        if callee.startswith("<frozen importlib"):
            return
        name, line = frames[mine[0]]
        ours.append([event, target[:120], f"{{name}}:{{line}}"])

    sys.addaudithook(audit)
    import umcl.service
    print(json.dumps({{"events": ours, "model": repr(umcl.service.MODEL)}}))
    """
)


def test_importing_the_service_with_no_store_and_no_environment_does_no_io(tmp_path: Path) -> None:
    home = tmp_path / "home"
    store = tmp_path / "bentoml"  # does not exist: no model store
    environment = {
        "PATH": "/usr/bin:/bin",
        "HOME": str(home),
        "BENTOML_HOME": str(store),
        "PYTHONDONTWRITEBYTECODE": "1",
    }
    # -P: the working folder is not on the import path
    done = subprocess.run(
        [sys.executable, "-P", "-c", PROBE],
        env=environment,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["events"] == [], report["events"]
    assert report["model"] == "None"  # no model named: the champion is looked up at start
    assert not store.exists() and not home.exists()
