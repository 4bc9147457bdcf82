"""`umcl classify SOURCE --out FILE`: one row per file of a real PACS export (the demo's: vendor
layouts, laterals, a structured report, a CT, a DICOMDIR, viewer files, planted corrupt and cut-short
DICOMs) or of a CSV of paths, errors and skips as rows, the scores `umcl.load` gives; a run killed
with SIGKILL resumes without a duplicated or missing row."""

from __future__ import annotations

import contextlib
import fcntl
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from PIL import Image

import umcl
from tests.conftest import REPO, saved_random_model
from umcl.batch_classify import CLASSIFIED, REFUSED, SKIPPED, parts_folder
from umcl.cli import main
from umcl.ingest.records import walk_files
from umcl.registry import model_digest


@pytest.fixture(scope="module")
def model(tiny_pipeline: dict, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return saved_random_model(tiny_pipeline, tmp_path_factory.mktemp("batch") / "model", seed=5)


def classify(params: Path, *args: str) -> tuple[int, dict | str]:
    """`umcl classify …` in this process: (exit code, its JSON counts or its error)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(["--params", str(params), "classify", *args])
    return code, json.loads(out.getvalue().splitlines()[-1]) if code == 0 else err.getvalue()


def scores(frame: pl.DataFrame, names: list[str]) -> np.ndarray:
    return frame.select([f"{n}.probability" for n in names]).to_numpy()


def test_a_pacs_export_gets_one_row_per_file_with_skips_and_errors_as_rows(
    tiny_pipeline: dict, model: Path, tmp_path: Path
) -> None:
    export = tiny_pipeline["root"] / "raw/demo/pacs/dicom"
    counted = tiny_pipeline["manifest"]["pacs"]
    files = [str(f) for f in walk_files(export) if isinstance(f, Path)]
    out = tmp_path / "predictions.parquet"
    code, counts = classify(
        tiny_pipeline["params"],
        str(export),
        "--out",
        str(out),
        "--model",
        str(model),
        "--batch-size",
        "8",
    )
    assert code == 0, counts
    table = pl.read_parquet(out)
    assert sorted(table["path"].to_list()) == sorted(files)  # every file once
    assert counts["files"] == len(files) == table.height and not parts_folder(out).exists()
    status = dict(table.group_by("status").len().iter_rows())
    assert sum(status.values()) == len(files)

    planted = [
        f
        for f in tiny_pipeline["manifest"]["faults"]
        if f["source"] == "pacs" and f["fault"] in ("corrupt_dicom", "truncated_dicom")
    ]
    assert planted and status[REFUSED] >= 1
    assert status[CLASSIFIED] + status[REFUSED] <= counted["frontal"]
    assert status[CLASSIFIED] >= counted["frontal"] - len(planted)
    codes = table.filter(pl.col("status") == SKIPPED)["code"].value_counts()
    skipped = dict(codes.iter_rows())
    assert skipped["view_excluded"] == counted["lateral"]
    assert skipped["structured_report"] == counted["structured_report"]
    assert skipped["modality_out_of_scope"] == counted["other_modality"]
    assert skipped["dicomdir"] == counted["dicomdir"]
    assert skipped["not_an_image"] == counted["not_dicom"]  # AUTORUN.INF, README.TXT, viewer.exe
    refused = table.filter(pl.col("status") == REFUSED)
    assert refused["code"].null_count() == 0 and refused["message"].null_count() == 0

    # Classified rows carry their header's study, series and view, and the scores umcl.load gives.
    classified = table.filter(pl.col("status") == CLASSIFIED)
    assert classified["study"].null_count() == 0 and set(classified["view"]) <= {"PA", "AP"}
    predictor = umcl.load(model)
    names = predictor.labels
    expected = predictor.classify(classified["path"].to_list())
    assert all("findings" in e for e in expected)
    wanted = np.array([[e["findings"][n]["probability"] for n in names] for e in expected])
    assert np.allclose(scores(classified, names), wanted, atol=1e-6)
    decided = classified.select([f"{n}.positive" for n in names]).to_numpy()
    assert (
        decided == np.array([[e["findings"][n]["positive"] for n in names] for e in expected])
    ).all()

    # Two decode processes give the same rows; an existing file is kept unless --overwrite.
    code, message = classify(
        tiny_pipeline["params"], str(export), "--out", str(out), "--model", str(model)
    )
    assert code == 1 and "exists: pass --overwrite" in message
    code, _ = classify(
        tiny_pipeline["params"],
        str(export),
        "--out",
        str(out),
        "--model",
        str(model),
        "--workers",
        "2",
        "--overwrite",
    )
    assert code == 0
    again = pl.read_parquet(out)
    assert again.drop([c for c in again.columns if c.endswith(".probability")]).equals(
        table.drop([c for c in table.columns if c.endswith(".probability")])
    )
    assert np.allclose(scores(again, names), scores(table, names), atol=1e-6, equal_nan=True)


def test_a_csv_of_paths_lists_relative_and_absolute_files_once_each(
    tiny_pipeline: dict, model: Path, tmp_path: Path
) -> None:
    Image.fromarray(np.full((40, 30), 90, np.uint8)).save(tmp_path / "a.png")
    (tmp_path / "cut.png").write_bytes((tmp_path / "a.png").read_bytes()[:60])
    (tmp_path / "notes.txt").write_text("not an image")
    listed = ["a.png", str(tmp_path / "a.png"), "cut.png", "gone.png", "notes.txt", "a.png", ""]
    (tmp_path / "list.csv").write_text("path\n" + "\n".join(listed) + "\n")
    out = tmp_path / "predictions.csv"
    code, counts = classify(
        tiny_pipeline["params"],
        str(tmp_path / "list.csv"),
        "--out",
        str(out),
        "--model",
        str(model),
    )
    assert code == 0, counts
    table = pl.read_csv(out)
    # In order; a file listed again (by another spelling too) once, a blank path not at all.
    assert table["path"].to_list() == ["a.png", "cut.png", "gone.png", "notes.txt"]
    assert table["file"].to_list()[0] == str((tmp_path / "a.png").resolve())
    assert table["status"].to_list() == [CLASSIFIED, REFUSED, REFUSED, SKIPPED]
    assert table["code"].to_list()[1:] == ["image_unreadable", "image_missing", "not_an_image"]
    assert counts == {
        "out": str(out),
        "files": 4,
        "classified": 1,
        "refused": 2,
        "skipped": 1,
        "resumed": 0,
        "scored_before": 0,
        "not_listed": 0,
    }
    code, message = classify(
        tiny_pipeline["params"],
        str(tmp_path / "missing.csv"),
        "--out",
        str(tmp_path / "x.csv"),
        "--model",
        str(model),
    )
    assert code == 1 and "no such folder or CSV" in message
    code, message = classify(
        tiny_pipeline["params"],
        str(tmp_path),
        "--out",
        str(tmp_path / "y.csv"),
        "--model",
        str(model),
        "--views",
        "SIDEWAYS",
    )
    assert code == 1 and "views ['SIDEWAYS']" in message
    # --overwrite checks before it replaces: the source itself, a bad model, keep what is there.
    before = out.read_bytes()
    for args, reason in (
        (["--out", str(tmp_path / "list.csv")], "is the source itself"),
        (["--out", str(out), "--model", str(tmp_path / "no-model")], "neither a model directory"),
    ):
        code, message = classify(
            tiny_pipeline["params"],
            str(tmp_path / "list.csv"),
            *args,
            *(["--model", str(model)] if "--model" not in args else []),
            "--overwrite",
        )
        assert code == 1 and reason in message, message
    assert out.read_bytes() == before and (tmp_path / "list.csv").is_file()


def test_hostile_names_links_and_neighbours_of_the_output_get_their_rows(
    tiny_pipeline: dict, model: Path, tmp_path: Path
) -> None:
    folder = tmp_path / "export"
    folder.mkdir()
    Image.fromarray(np.full((30, 30), 90, np.uint8)).save(folder / "ok.png")
    odd = os.fsdecode(b"bad\xffname.png")  # a name that is not UTF-8
    shutil.copy(folder / "ok.png", folder / odd)
    (folder / "outside.png").symlink_to(tmp_path / "elsewhere.png")
    shutil.copy(folder / "ok.png", tmp_path / "elsewhere.png")
    (folder / "loop.png").symlink_to(folder / "loop.png")
    (folder / "same.png").symlink_to(folder / "ok.png")  # one file, listed twice
    out = folder / "predictions.parquet"  # inside the source: its own files are not rows
    parts = parts_folder(out)
    parts.mkdir()
    with (parts / ".lock").open("w") as held:  # another run is writing: refused, not interleaved
        fcntl.flock(held, fcntl.LOCK_EX)
        code, message = classify(
            tiny_pipeline["params"], str(folder), "--out", str(out), "--model", str(model)
        )
    assert code == 1 and "another `umcl classify` is writing" in message
    (folder / "old.parquet").write_bytes(b"PAR1 not really")  # --not-in: corrupt, passed over
    code, counts = classify(
        tiny_pipeline["params"],
        str(folder),
        "--out",
        str(out),
        "--model",
        str(model),
        "--not-in",
        str(folder),
    )
    assert code == 0, counts
    rows = {r["path"]: r for r in pl.read_parquet(out).iter_rows(named=True)}
    assert set(rows) == {
        str(folder / n) for n in ("ok.png", "bad\\xffname.png", "outside.png", "loop.png")
    }
    assert rows[str(folder / "bad\\xffname.png")]["status"] == CLASSIFIED
    assert rows[str(folder / "outside.png")]["code"] == "path_outside_source"
    assert rows[str(folder / "loop.png")]["code"] == "path_unresolvable"


def test_a_run_killed_mid_way_resumes_without_a_duplicated_or_missing_row(
    tiny_pipeline: dict, model: Path, tmp_path: Path
) -> None:
    folder = tmp_path / "incoming"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(400):
        Image.fromarray((rng.random((48, 40)) * 255).astype(np.uint8)).save(folder / f"{i:03d}.png")
    out = tmp_path / "predictions.parquet"
    command = [
        str(Path(sys.executable).parent / "umcl"),
        "--params",
        str(tiny_pipeline["params"]),
        "classify",
        str(folder),
        "--out",
        str(out),
        "--model",
        str(model),
        "--batch-size",
        "2",
    ]
    process = subprocess.Popen(
        command, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, start_new_session=True
    )
    deadline = time.monotonic() + 120
    while len(list(parts_folder(out).glob("*.parquet"))) < 5 and time.monotonic() < deadline:
        assert process.poll() is None, "the run ended before it could be killed"
        time.sleep(0.01)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=30)
    assert not out.exists(), "the run finished before the kill: nothing resumed"
    done = sum(pl.read_parquet(p).height for p in parts_folder(out).glob("*.parquet"))
    assert 10 <= done < 400

    # Resumed with another model (or findings), the run would mix two models' rows: refused.
    other = saved_random_model(tiny_pipeline, tmp_path / "other", seed=6)
    code, message = classify(
        tiny_pipeline["params"], str(folder), "--out", str(out), "--model", str(other)
    )
    assert code == 1 and "unfinished run with another model" in message, message
    code, message = classify(
        tiny_pipeline["params"],
        str(folder),
        "--out",
        str(out),
        "--model",
        str(model),
        "--findings",
        "Edema",
    )
    assert code == 1 and "another findings" in message, message

    code, counts = classify(
        tiny_pipeline["params"],
        str(folder),
        "--out",
        str(out),
        "--model",
        str(model),
        "--batch-size",
        "16",
    )
    assert code == 0, counts
    assert counts["resumed"] == done and counts["files"] == 400 == counts["classified"]
    resumed = pl.read_parquet(out)
    assert resumed["path"].n_unique() == 400 == resumed.height
    assert resumed["model"].unique().to_list() == [f"umcl:{model_digest(model)[:16]}"]
    whole = tmp_path / "whole.parquet"
    assert (
        classify(tiny_pipeline["params"], str(folder), "--out", str(whole), "--model", str(model))[
            0
        ]
        == 0
    )
    names = umcl.load(model).labels
    assert np.allclose(
        scores(resumed.sort("path"), names),
        scores(pl.read_parquet(whole).sort("path"), names),
        atol=1e-6,
    )

    # --not-in: a later run over the same folder scores only the files that arrived since.
    for i in range(400, 403):
        Image.fromarray(np.full((30, 30), i % 255, np.uint8)).save(folder / f"{i:03d}.png")
    later = tmp_path / "later.parquet"
    code, counts = classify(
        tiny_pipeline["params"],
        str(folder),
        "--out",
        str(later),
        "--model",
        str(model),
        "--not-in",
        str(tmp_path),
    )
    assert code == 0 and counts["scored_before"] == 400 and counts["files"] == 3, counts
    assert sorted(pl.read_parquet(later)["path"]) == [
        str(folder / f"{i}.png") for i in (400, 401, 402)
    ]
