"""The monitor: its store (atomic batches, concurrent writers, retention, a damaged file left
out by name), the drift tests' false alarms and power on samples whose truth is known, and the
real `bentoml serve` killed mid-load, after which the store is whole and holds every record
that was answered more than one flush interval before the kill."""

from __future__ import annotations

import contextlib
import json
import multiprocessing
import os
import signal
import subprocess
import sys
import threading
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import httpx
import numpy as np
import psutil
import pytest
import yaml

from tests.conftest import saved_random_model, tiny_params
from tests.serving import served, small_png
from umcl import registry
from umcl.cli import main
from umcl.config import MonitorSettings
from umcl.errors import InputError
from umcl.imaging.limits import COLOUR, GRAYSCALE, KNOWN_MODALITIES
from umcl.monitor.drift import (
    DRIFT,
    NO_DRIFT,
    TOO_FEW,
    Window,
    detect,
    input_drift,
    mean_shift_test,
    mmd_test,
    prediction_drift,
    window_of,
)
from umcl.monitor.reference import build_reference, load_reference, save_reference
from umcl.monitor.report import moment
from umcl.monitor.store import (
    CLASSIFIED,
    LARGEST_SIZE_CLASS,
    REFUSED,
    SIZE_CLASSES,
    Recorder,
    classified_records,
    delete_expired,
    read_records,
    refused_record,
    schema,
    write_batch,
)

EPOCH = datetime(2000, 1, 1, tzinfo=UTC)
FUTURE = datetime(2100, 1, 1, tzinfo=UTC)
FACTS = {
    "format": "PNG",
    "bits": 8,
    "photometric": "MONOCHROME2",
    "modality": "none",
    "size_class": "<512",
}


def unit_rows(rng: np.random.Generator, n: int, dim: int = 16, shift: float = 0.0) -> np.ndarray:
    """Points on the sphere spread most along the first axes, as embeddings are."""
    rows = rng.normal(size=(n, dim)) * np.linspace(3, 0.5, dim)
    rows[:, 0] += shift
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def records(n: int, model: str = "umcl:test", dim: int = 16, seed: int = 0) -> list[dict]:
    rng = np.random.default_rng(seed)
    return classified_records(
        model, [FACTS] * n, unit_rows(rng, n, dim).astype(np.float32), rng.random((n, 3))
    )


# --- the store --------------------------------------------------------------------------------


def test_a_batch_is_written_whole_and_read_back_by_model_and_time(tmp_path: Path) -> None:
    write_batch(
        tmp_path,
        records(5)
        + records(3, model="umcl:other")
        + [refused_record("umcl:test", "image_unreadable")],
    )
    table, unreadable = read_records(tmp_path, "umcl:test", EPOCH, FUTURE)
    assert unreadable == [] and table.num_rows == 6
    assert table.schema.names == schema().names
    assert sorted(table.column("outcome").to_pylist()) == [CLASSIFIED] * 5 + [REFUSED]
    later, _ = read_records(tmp_path, "umcl:test", datetime.now(UTC) + timedelta(seconds=1), FUTURE)
    assert later is None
    assert not list(tmp_path.rglob(".*")), "no temporary file is left behind"


def _write_many(store: str, seed: int) -> None:
    for batch in range(20):
        write_batch(Path(store), records(7, seed=seed * 100 + batch))


def test_concurrent_writer_processes_never_corrupt_the_store(tmp_path: Path) -> None:
    context = multiprocessing.get_context("spawn")
    workers = [context.Process(target=_write_many, args=(str(tmp_path), s)) for s in range(4)]
    for worker in workers:
        worker.start()
    # A reader while they write sees only whole files.
    while any(w.is_alive() for w in workers):
        _, unreadable = read_records(tmp_path, "umcl:test", EPOCH, FUTURE)
        assert unreadable == []
    assert all(w.exitcode == 0 for w in workers)
    table, unreadable = read_records(tmp_path, "umcl:test", EPOCH, FUTURE)
    assert unreadable == [] and table.num_rows == 4 * 20 * 7


def test_a_damaged_file_is_named_and_the_rest_still_read(tmp_path: Path) -> None:
    (written,) = write_batch(tmp_path, records(4))
    (written.parent / "foreign.parquet").write_bytes(b"PAR1 not really")
    table, unreadable = read_records(tmp_path, "umcl:test", EPOCH, FUTURE)
    assert table.num_rows == 4
    assert len(unreadable) == 1 and "foreign.parquet" in unreadable[0]


def test_retention_deletes_only_day_folders_past_it(tmp_path: Path) -> None:
    for day in ("2026-08-01", "2026-11-01", "2026-11-28"):
        (tmp_path / f"date={day}").mkdir()
    (tmp_path / "notes").mkdir()
    deleted = delete_expired(tmp_path, retention_days=30, today=date(2026, 11, 29))
    assert deleted == ["date=2026-08-01"]
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "date=2026-11-01",
        "date=2026-11-28",
        "notes",
    ]


def test_the_recorder_writes_by_count_by_age_and_on_close(tmp_path: Path) -> None:
    recorder = Recorder(tmp_path, flush_records=10, flush_seconds=0.5, retention_days=30)
    recorder.add(records(10))  # full batch: written at once
    recorder.add(records(3))  # a partial batch: written once it is 0.5 s old
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        table, _ = read_records(tmp_path, "umcl:test", EPOCH, FUTURE)
        if table is not None and table.num_rows == 13:
            break
        time.sleep(0.1)
    assert table is not None and table.num_rows == 13
    recorder.add(records(2))
    recorder.close()  # the service's shutdown: the rest is written
    assert read_records(tmp_path, "umcl:test", EPOCH, FUTURE)[0].num_rows == 15


def test_a_failed_write_keeps_the_records_for_the_next_try(tmp_path: Path) -> None:
    blocked = tmp_path / "store"
    blocked.write_text("a file where the store's folder should be")
    recorder = Recorder(blocked, flush_records=100, flush_seconds=60, retention_days=30)
    recorder.add(records(4))
    recorder.flush()
    assert len(recorder.buffer) == 4
    blocked.unlink()
    recorder.close()
    assert read_records(blocked, "umcl:test", EPOCH, FUTURE)[0].num_rows == 4


# --- the drift tests ---------------------------------------------------------------------------


def reference_of(
    embeddings: np.ndarray, probabilities: np.ndarray, size: int = 1000, axes: int = 8
):
    return build_reference(
        embeddings,
        probabilities,
        np.full(probabilities.shape[1], 0.5),
        ["A", "B", "C"],
        size=size,
        axes=axes,
        seed=0,
    )


@pytest.mark.parametrize("size", [400, 0], ids=["mmd", "summary"])
def test_false_alarms_stay_near_alpha_and_a_shift_is_found(size: int) -> None:
    rng = np.random.default_rng(1)
    reference = reference_of(unit_rows(rng, 400), rng.random((400, 3)), size)
    settings = MonitorSettings(permutations=200, alpha=0.05)

    def p_value(window: np.ndarray, seed: int) -> float:
        if size:
            return mmd_test(reference.embeddings, window, settings.permutations, seed)[1]
        return mean_shift_test(reference, window, axes=8)[1]

    null = [p_value(unit_rows(rng, 60), s) for s in range(40)]
    shifted = [p_value(unit_rows(rng, 60, shift=3.0), s) for s in range(10)]
    assert np.mean(np.array(null) < settings.alpha) <= 0.125  # 5 of 40 at most
    assert all(p < settings.alpha for p in shifted)


def test_prediction_drift_names_the_finding_whose_rate_moved() -> None:
    rng = np.random.default_rng(2)
    reference = reference_of(unit_rows(rng, 500), rng.random((500, 3)))
    window = rng.random((200, 3))
    window[:, 1] = rng.random(200) * 0.4  # B: far fewer positives at 0.5
    window = Window.from_arrays(unit_rows(rng, 200), window, reference.thresholds)
    result = prediction_drift(reference, window, alpha=0.01)
    assert result["drifted"] == ["B"]
    assert result["findings"]["B"]["window_rate"] == 0.0


def test_the_verdict_reads_refusals_and_a_thin_window() -> None:
    rng = np.random.default_rng(3)
    reference = reference_of(unit_rows(rng, 300), rng.random((300, 3)))
    settings = MonitorSettings(min_images=50, permutations=50)
    args = {"model": "umcl:t", "since": EPOCH, "until": FUTURE}

    def window(n: int, refused: int) -> Window:
        facts = {"format": {"PNG": n}}
        return Window.from_arrays(
            unit_rows(rng, n),
            rng.random((n, 3)),
            reference.thresholds,
            {"image_unreadable": refused} if refused else {},
            facts,
        )

    assert detect(reference, window(10, 0), None, settings, **args)["verdict"] == TOO_FEW
    thin_but_refused = detect(reference, window(10, 5), None, settings, **args)
    assert thin_but_refused["verdict"] == DRIFT and "refused" in thin_but_refused["reasons"][0]
    assert detect(reference, window(120, 0), None, settings, **args)["verdict"] == NO_DRIFT


def test_a_reference_round_trips_and_keeps_no_more_than_asked(tmp_path: Path) -> None:
    rng = np.random.default_rng(4)
    reference = reference_of(unit_rows(rng, 50), rng.random((50, 3)), size=20)
    save_reference(reference, tmp_path / "r.safetensors")
    again = load_reference(tmp_path / "r.safetensors")
    assert (
        again.embeddings.shape == (20, 16)
        and again.images == 50
        and again.labels == ["A", "B", "C"]
    )
    assert np.allclose(again.mean, reference.mean)
    summary = reference_of(unit_rows(rng, 50), rng.random((50, 3)), size=0, axes=8)
    assert summary.embeddings.shape == (0, 16) and summary.axes.shape == (8, 16)


# --- the real service, killed -------------------------------------------------------------------

CLOSED_VOCABULARY = {
    "outcome": {CLASSIFIED, REFUSED},
    "format": {"PNG", "JPEG", "DICOM", None},
    "photometric": GRAYSCALE | COLOUR | {"PALETTE COLOR", None},
    "modality": set(KNOWN_MODALITIES) | {"none", "other", None},
    "size_class": {name for _, name in SIZE_CLASSES} | {LARGEST_SIZE_CLASS, None},
}


def assert_only_closed_vocabulary(table, model: str) -> None:
    """No string in the store but a tag and the defined terms: no file name or header value."""
    assert table.schema.names == schema().names
    assert set(table.column("model").to_pylist()) == {model}
    for column, allowed in CLOSED_VOCABULARY.items():
        assert set(table.column(column).to_pylist()) <= allowed, column


def test_killing_the_service_mid_load_loses_at_most_the_unflushed_batch(
    tiny_pipeline: dict, tmp_path: Path
) -> None:
    entry, _ = registry.add(saved_random_model(tiny_pipeline, tmp_path / "model"), {"test": True})
    params = tiny_params(tmp_path)
    flush_seconds = 1.0
    params["monitor"] = {"flush_records": 100_000, "flush_seconds": flush_seconds}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    store = tmp_path / "store"
    env = {
        "UMCL_MODEL": entry.tag,
        "UMCL_MONITOR_DIR": str(store),
        "UMCL_PARAMS": str(tmp_path / "params.yaml"),
    }
    answered: list[float] = []
    sent: list[int] = []  # list.append is atomic across threads
    stop = threading.Event()

    def client(server_url: str, seed: int) -> None:
        files = [("images", (f"DOE^JOHN_{seed}.png", small_png(seed), "image/png"))]
        with httpx.Client(timeout=30) as http:
            while not stop.is_set():
                sent.append(seed)
                try:
                    response = http.post(f"{server_url}/classify", files=files)
                except httpx.HTTPError:
                    return  # the server is gone
                if response.status_code == 200:
                    answered.append(time.time())

    with served(env, tmp_path / "serve.log") as server:
        clients = [threading.Thread(target=client, args=(server.url, s)) for s in range(4)]
        for thread in clients:
            thread.start()
        time.sleep(8)
        # The whole service dies at once, as in a crash or an OOM kill: its process group and
        # BentoML's workers, which run in process groups of their own. No shutdown hook runs.
        workers = psutil.Process(server.process.pid).children(recursive=True)
        killed_at = time.time()
        os.killpg(server.process.pid, signal.SIGKILL)
        for worker in workers:
            with contextlib.suppress(psutil.NoSuchProcess):
                worker.kill()
        server.process.wait(timeout=30)
        psutil.wait_procs(workers, timeout=30)
        stop.set()
        for thread in clients:
            thread.join(timeout=60)
    table, unreadable = read_records(store, entry.tag, EPOCH, FUTURE)
    assert unreadable == []
    stored = 0 if table is None else table.num_rows
    # A record is written once it is flush_seconds old (the writer looks four times as often);
    # two seconds more cover the write itself on a busy machine.
    settled = sum(t <= killed_at - flush_seconds - 2.0 for t in answered)
    assert settled > 20, f"only {settled} answers before the kill: the load did not run"
    assert settled <= stored <= len(sent), (settled, stored, len(sent))
    assert_only_closed_vocabulary(table, entry.tag)


def test_a_summary_of_too_few_images_is_refused_not_trusted() -> None:
    """A handful of test images cannot estimate principal axes: a summary-only reference of
    them is refused with the fix, and with a sample only the MMD decides."""
    rng = np.random.default_rng(5)
    small = reference_of(unit_rows(rng, 40), rng.random((40, 3)), size=0)
    with pytest.raises(InputError, match="reference_size > 0"):
        input_drift(small, unit_rows(rng, 30), MonitorSettings())
    sampled = reference_of(unit_rows(rng, 40), rng.random((40, 3)), size=40)
    assert set(
        input_drift(sampled, unit_rows(rng, 30), MonitorSettings(permutations=50))["tests"]
    ) == {"mmd"}


def test_a_foreign_schema_is_named_and_a_castable_one_read(tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    (written,) = write_batch(tmp_path, records(3))
    table = pq.read_table(written)
    pq.write_table(
        table.cast(
            table.schema.set(table.schema.get_field_index("bits"), pa.field("bits", pa.int32()))
        ),
        written.parent / "wider-bits.parquet",
    )
    pq.write_table(table.drop_columns(["modality"]), written.parent / "older.parquet")
    read, unreadable = read_records(tmp_path, "umcl:test", EPOCH, FUTURE)
    assert read.num_rows == 6
    assert len(unreadable) == 1 and "older.parquet" in unreadable[0]


def test_writes_failing_for_long_keep_a_bounded_buffer_and_lose_nothing_written(
    tmp_path: Path,
) -> None:
    blocked = tmp_path / "store"
    blocked.write_text("a file where the store's folder should be")
    recorder = Recorder(blocked, flush_records=5, flush_seconds=60, retention_days=30)
    for seed in range(40):
        recorder.add(records(5, seed=seed))
        recorder.flush()
    assert len(recorder.buffer) <= 20 * 5 and recorder.dropped == 40 * 5 - len(recorder.buffer)
    assert not list(tmp_path.glob("**/.*.partial"))
    kept = len(recorder.buffer)
    blocked.unlink()
    recorder.close()
    assert read_records(blocked, "umcl:test", EPOCH, FUTURE)[0].num_rows == kept


def test_a_lone_refusal_is_not_drift_and_a_nan_record_is_left_out() -> None:
    import pyarrow as pa

    rng = np.random.default_rng(6)
    reference = reference_of(unit_rows(rng, 300), rng.random((300, 3)))
    settings = MonitorSettings(min_images=50, permutations=50)
    args = {"model": "umcl:t", "since": EPOCH, "until": FUTURE}

    def of(rows: list[dict]) -> Window:
        return window_of(
            lambda: [pa.Table.from_pylist(rows, schema=schema())], 16, reference.thresholds
        )

    lone = of([refused_record("umcl:test", "image_unreadable")])
    assert detect(reference, lone, None, settings, **args)["verdict"] == TOO_FEW
    rows = records(80, seed=7)
    rows[0]["embedding"] = [float("nan")] * 16
    rows[1]["probabilities"] = [0.5, 0.5]  # another model's label count
    rows[2]["embedding"] = None
    window = of(rows)
    assert window.images == 77 and window.unusable == 3
    report = detect(reference, window, None, settings, **args)
    assert report["quality"]["unusable_records"] == 3
    json.dumps(report, allow_nan=False)  # the report stays valid JSON


def test_a_window_start_out_of_the_calendar_is_a_clear_error() -> None:
    for text in (
        "1000000d",
        "99999999999999999999h",
        "yesterday",
        "9999-12-31T23:59:59-14:00",
        "0001-01-01T00:00:00+14:00",
    ):
        with pytest.raises(InputError):
            moment(text)


def test_a_reference_file_is_the_same_bytes_in_every_process(tmp_path: Path) -> None:
    """dvc.lock records the reference's hash: two runs must write the same bytes (safetensors
    orders its metadata map differently from process to process)."""
    import subprocess
    import sys

    script = (
        "import sys, numpy as np; from pathlib import Path;"
        "from umcl.monitor.reference import build_reference, save_reference;"
        "rng = np.random.default_rng(0);"
        "r = build_reference(rng.normal(size=(60, 8)), rng.random((60, 3)), np.full(3, 0.5),"
        " ['A', 'B', 'C'], 20, 4, 0); save_reference(r, Path(sys.argv[1]))"
    )
    files = [tmp_path / f"{i}.safetensors" for i in range(4)]
    for file in files:
        subprocess.run([sys.executable, "-c", script, str(file)], check=True)
    assert len({f.read_bytes() for f in files}) == 1


def test_drift_over_a_million_records_stays_under_a_gigabyte(
    tiny_pipeline: dict, empty_store: Path, tmp_path: Path
) -> None:
    """`umcl drift` reads a window a batch at a time: 10⁶ records (a few kilobytes of Parquet)
    take memory for one batch and a `monitor.max_images` sample, not for every record."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from umcl.monitor.reference import REFERENCE_FILE

    model_dir = saved_random_model(tiny_pipeline, tmp_path / "model")
    description = json.loads((model_dir / "umcl.json").read_text())
    dim, labels = description["model"]["embed_dim"], description["labels"]
    rng = np.random.default_rng(9)
    reference = build_reference(
        unit_rows(rng, 300, dim),
        rng.random((300, len(labels))),
        np.full(len(labels), 0.5),
        labels,
        size=200,
        axes=4,
        seed=0,
    )
    save_reference(reference, model_dir / REFERENCE_FILE)
    entry, _ = registry.add(model_dir, {"test": True})
    registry.promote(entry.tag)
    rows = classified_records(
        entry.tag,
        [FACTS] * 1000,
        unit_rows(rng, 1000, dim).astype(np.float32),
        rng.random((1000, len(labels))),
    )
    block = pa.Table.from_pylist(rows, schema=schema())
    store = tmp_path / "store"
    folder = store / f"date={datetime.now(UTC).date().isoformat()}"
    folder.mkdir(parents=True)
    pq.write_table(
        pa.concat_tables([block] * 1000), folder / "many.parquet", row_group_size=100_000
    )
    # The peak of this process image (VmHWM, kB): ru_maxrss would also count what the forked
    # child held of pytest's memory before it started Python.
    script = (
        "import re, sys; from pathlib import Path; from umcl.cli import main; code = main(sys.argv[1:]);"
        "print('peak', re.search(r'VmHWM:\\s+(\\d+)', Path('/proc/self/status').read_text())[1]); sys.exit(code)"
    )
    run = subprocess.run(
        [
            sys.executable,
            "-c",
            script,
            "--params",
            str(tiny_pipeline["params"]),
            "drift",
            "--since",
            "1d",
            "--store",
            str(store),
            "--out",
            str(tmp_path / "drift.json"),
            "--plots",
            str(tmp_path / "plots"),
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    report = json.loads((tmp_path / "drift.json").read_text())
    assert report["images"] == 1_000_000
    assert report["input"]["reference_images"] == 200
    peak_mib = int(run.stdout.split("peak")[-1]) / 1024
    assert peak_mib < 1024, f"{peak_mib:.0f} MiB"
    # Out-of-range ends are one line, not a traceback.
    far = main(["drift", "--until", "9999-12-31T23:59:59-14:00", "--store", str(store)])
    assert far == 1


def test_a_window_that_changes_between_its_two_reads_is_an_error_not_a_zero_sample() -> None:
    """With more images than `max_images`, the window is read twice (count, then sample): a
    file that goes between the reads (retention) must not leave zero rows in the sample."""
    import pyarrow as pa

    tables = [pa.Table.from_pylist(records(60, seed=s), schema=schema()) for s in range(2)]
    reads = iter([tables, tables[:1]])
    thresholds = np.full(3, 0.5)
    with pytest.raises(InputError, match="changed while they were read"):
        window_of(lambda: next(reads), 16, thresholds, max_images=50)
    steady = window_of(lambda: tables, 16, thresholds, max_images=50)
    assert steady.images == 120 and len(steady.embeddings) == 50
    assert np.all(np.abs(np.linalg.norm(steady.embeddings, axis=1) - 1) < 1e-5)  # no zero rows
