"""The real `bentoml serve` on a free loopback port, called over HTTP with BentoML's client and
with raw requests: calibrated classification of real and demo images, equality with offline
scoring and with `umcl.load` (by directory and by store tag), every kind of bad or hostile input
answered with a 4xx in little time and memory, and a log that holds no file name, header value
or traceback."""

from __future__ import annotations

import asyncio
import functools
import http.client
import io
import json
import os
import re
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import numpy as np
import polars as pl
import pydicom
import pytest
import torch
from PIL import Image

import umcl
from tests.conftest import REPO, saved_random_model, shared_path, toy_calibration
from tests.hostile import (
    bundled_pydicom_files,
    cost_of,
    header,
    hostile_files,
    jpeg_claiming,
    malformed_headers,
    multiframe_bomb,
    png_of_zeros,
    saved,
    trailing_elements,
    trailing_zeros,
    tree_rss,
    uncompressed_frames,
)
from tests.serving import small_png
from umcl import registry

pytestmark = pytest.mark.slow
UPLOAD_LIMIT_MB = 1
REQUEST_LIMIT_MB = 4
PHI_NAME = "Jane_Doe_MRN4829371"  # what a PACS export names files after
BOMB_SECONDS, BOMB_GROWTH_MB = 1.0, 200
# What must never reach the log: client file names, header values (`Doe^Jane` is in every
# hostile DICOM's PatientName and in its malformed values), tracebacks, temp paths.
FORBIDDEN_IN_LOG = [
    "Jane_Doe",
    "MRN4829371",
    "Doe^Jane",
    "DOE JANE",
    "Traceback",
    "could not convert",
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(tiny_pipeline: dict, tmp_path_factory: pytest.TempPathFactory):
    """A calibrated champion in the (session's) model store and `bentoml serve` running around
    it."""
    root = tmp_path_factory.mktemp("serve")
    labels = json.loads((tiny_pipeline["triplets"].parent / "labels.json").read_text())["names"]
    calibration = toy_calibration(labels)
    model_dir = saved_random_model(tiny_pipeline, root / "model", seed=7, calibration=calibration)
    entry, _ = registry.add(model_dir, {"test": True})
    registry.promote(entry.tag)
    port = free_port()
    log = (root / "serve.log").open("w")
    env = {
        **os.environ,
        "UMCL_MAX_UPLOAD_MB": str(UPLOAD_LIMIT_MB),
        "UMCL_MAX_REQUEST_MB": str(REQUEST_LIMIT_MB),
        "PYTHONUNBUFFERED": "1",  # the log is read while the server runs
    }
    for name in (
        "UMCL_MODEL",
        "UMCL_MAX_PIXELS",
        "UMCL_MAX_REQUEST_PIXELS",
        "UMCL_DICOM_MODALITIES",
    ):
        env.pop(name, None)  # the service finds the champion itself; the limits are the defaults
    bentoml = Path(sys.executable).parent / "bentoml"
    process = subprocess.Popen(
        [str(bentoml), "serve", "umcl.service:UMCL", "--port", str(port)],
        cwd=REPO,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"bentoml serve exited:\n{(root / 'serve.log').read_text()[-3000:]}")
        try:
            if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                break
        except httpx.TransportError:
            pass
        time.sleep(0.5)
    else:
        process.kill()
        pytest.fail(
            f"bentoml serve not ready in 180 s:\n{(root / 'serve.log').read_text()[-3000:]}"
        )
    yield {
        "url": url,
        "port": port,
        "pid": process.pid,
        "tag": entry.tag,
        "model_dir": model_dir,
        "log": root / "serve.log",
    }
    os.killpg(process.pid, 15)
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, 9)
    log.close()


def post_files(
    server: dict, route: str, files: list[tuple[str, bytes]], timeout: float = 60, **form: str
) -> httpx.Response:
    parts = [("images", (name, data, "application/octet-stream")) for name, data in files]
    return httpx.post(f"{server['url']}/{route}", files=parts, data=form, timeout=timeout)


def post_raw(
    server: dict, route: str, body: bytes | Iterator[bytes], content_type: str
) -> httpx.Response:
    return httpx.post(
        f"{server['url']}/{route}",
        content=body,
        headers={"content-type": content_type},
        timeout=60,
    )


def multipart(parts: list[tuple[str, str | None, bytes]], boundary: str = "b0undary") -> bytes:
    """A multipart body from (field, file name or None for a text part, content)."""
    out = b""
    for name, file_name, content in parts:
        disposition = f'form-data; name="{name}"' + (
            f'; filename="{file_name}"' if file_name is not None else ""
        )
        out += f"--{boundary}\r\nContent-Disposition: {disposition}\r\n\r\n".encode() + content
        out += b"\r\n"
    return out + f"--{boundary}--\r\n".encode()


def measured(
    server: dict, send: Callable[[], httpx.Response]
) -> tuple[httpx.Response, float, float]:
    """The response, its seconds, and the server tree's peak RSS growth in MB while it ran
    (sampled every 5 ms) or after it."""
    cost = cost_of(server["pid"], send)
    return cost.result, cost.seconds, (cost.peak - cost.before) / 2**20


def error_of(response: httpx.Response) -> str:
    """The error message: BentoML answers `[{"error": …}]` for its exceptions and `{"error": …}`
    for validation errors; the upload guard answers like the latter."""
    body = response.json()
    return (body[0] if isinstance(body, list) else body)["error"]


def offline_scores(model_dir: Path, squares: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """(probabilities, positives) for (n, 1, S, S) images in [0, 1], worked out here from the
    saved model and its calibration.json: learned-prompt zero-shot logits z, then sigmoid(a·z + b)
    and the threshold for a fitted finding, sigmoid(z) and 0.5 for the others."""
    from umcl.model.umcl import UMCLModel, finding_logits

    model = UMCLModel.from_pretrained(model_dir)
    with torch.no_grad():
        present, absent = model.encode_findings()
        z = finding_logits(model.encode_image(squares), present, absent, model.logit_scale.exp())
    entries = json.loads((model_dir / "calibration.json").read_text())["findings"]
    fitted = [entries[n] if entries[n]["fitted"] else None for n in model.label_names]
    a = torch.tensor([f["a"] if f else 1.0 for f in fitted])
    b = torch.tensor([f["b"] if f else 0.0 for f in fitted])
    thresholds = np.array([f["threshold"] if f else 0.5 for f in fitted])
    probabilities = torch.sigmoid(a * z + b).numpy()
    return probabilities, probabilities >= thresholds


def served_scores(result: dict, names: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """(probabilities, positives) of one image's entry in a /classify response."""
    findings = result["findings"]
    assert set(findings) == set(names)
    assert all(set(v) == {"probability", "positive", "calibrated"} for v in findings.values())
    return (
        np.array([findings[n]["probability"] for n in names]),
        np.array([findings[n]["positive"] for n in names]),
    )


def assert_same_scores(
    served: tuple[np.ndarray, np.ndarray], expected: tuple[np.ndarray, np.ndarray]
) -> None:
    """Probabilities within 1e-5 and the same decisions."""
    assert np.allclose(served[0], expected[0], atol=1e-5), (served[0], expected[0])
    assert (served[1] == expected[1]).all(), (served, expected)


def test_a_demo_dicom_gets_the_probabilities_umcl_evaluate_gives(
    server: dict, tiny_pipeline: dict
) -> None:
    from umcl.data.dataset import TripletDataset
    from umcl.ingest.locator import image_files
    from umcl.model.folder import describe_model

    triplets = pl.read_parquet(tiny_pipeline["triplets"]).filter(
        (pl.col("split") == "test") & pl.col("image").is_not_null()
    )
    row = triplets.row(0, named=True)
    names = describe_model(server["model_dir"])["labels"]
    sample = TripletDataset(triplets.head(1), tiny_pipeline["cache"], names)[
        0
    ]  # the cache evaluate reads
    probabilities, positives = offline_scores(server["model_dir"], sample["image"][None])

    image = Path(image_files([row["image"]], tiny_pipeline["locator"])[0])
    response = post_files(server, "classify", [("study.dcm", image.read_bytes())])
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["model"] == server["tag"] and body["findings"] == names
    assert body["outside_label_space"] == []
    calibration = json.loads((server["model_dir"] / "calibration.json").read_text())["findings"]
    unfitted = [n for n in names if not calibration[n]["fitted"]]
    flags = {n: f["calibrated"] for n, f in body["results"][0]["findings"].items()}
    assert unfitted and [n for n in names if not flags[n]] == unfitted
    assert "threshold 0.5" in body["note"]
    assert_same_scores(served_scores(body["results"][0], names), (probabilities[0], positives[0]))


def test_real_nih_pngs_and_a_real_dicom_through_the_bentoml_client(server: dict) -> None:
    import bentoml

    from umcl.imaging.images import fit_square, load_image
    from umcl.model.folder import describe_model, input_size

    files = [
        shared_path("fixtures/nih-00000001_000.png"),
        shared_path("fixtures/nih-00027426_000.png"),
        shared_path("fixtures/siim-cr-chest.dcm"),
    ]
    with bentoml.SyncHTTPClient(server["url"], timeout=60) as client:
        body = client.classify(images=files)
    size = input_size(server["model_dir"])
    squares = torch.stack(
        [
            torch.from_numpy(np.array(fit_square(load_image(f), size), dtype=np.float32) / 255.0)[
                None
            ]
            for f in files
        ]
    )
    probabilities, positives = offline_scores(server["model_dir"], squares)
    names = body["findings"]
    assert (
        len(body["results"]) == 3
        and len(names) == 14
        and names == describe_model(server["model_dir"])["labels"]
    )
    for i, result in enumerate(body["results"]):
        assert_same_scores(served_scores(result, names), (probabilities[i], positives[i]))
    assert body["results"][2]["image"] == "siim-cr-chest.dcm"
    # The same files through `umcl.load`, by directory and by store tag, score as served.
    for source in (server["model_dir"], server["tag"]):
        local = umcl.load(source).classify(files)
        for result, entry in zip(body["results"], local, strict=True):
            mine = entry["findings"]
            ours = (
                np.array([mine[n]["probability"] for n in names]),
                np.array([mine[n]["positive"] for n in names]),
            )
            assert_same_scores(served_scores(result, names), ours)


def test_caller_chosen_findings_and_embeddings(
    server: dict, tiny_pipeline: dict, tmp_path: Path
) -> None:
    png = small_png()
    (tmp_path / "a.png").write_bytes(png)
    response = post_files(
        server, "classify", [("a.png", png)], findings='["Cardiomegaly", "Nodule"]'
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["findings"] == ["Cardiomegaly", "Nodule"]
    assert body["outside_label_space"] == ["Nodule"]
    scored = body["results"][0]["findings"]
    assert not scored["Nodule"]["calibrated"] and scored["Cardiomegaly"]["calibrated"]
    served = served_scores(body["results"][0], ["Cardiomegaly", "Nodule"])
    names = ["Cardiomegaly", "Nodule"]
    local = umcl.load(server["tag"]).classify([tmp_path / "a.png"], names)[0]["findings"]
    assert not local["Nodule"]["calibrated"] and local["Cardiomegaly"]["calibrated"]
    assert_same_scores(
        served,
        (
            np.array([local[n]["probability"] for n in ("Cardiomegaly", "Nodule")]),
            np.array([local[n]["positive"] for n in ("Cardiomegaly", "Nodule")]),
        ),
    )
    assert served[1][1] == (served[0][1] >= 0.5)  # outside the label space: decided at 0.5

    images = post_files(server, "embed_image", [("a.png", png), ("b.png", png)]).json()
    assert images["images"] == ["a.png", "b.png"]
    texts = httpx.post(
        f"{server['url']}/embed_text",
        json={"texts": ["no acute disease", "cardiomegaly"]},
        timeout=60,
    ).json()
    for vectors in (images["embeddings"], texts["embeddings"]):
        assert len(vectors) == 2 and np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


@functools.cache
def bad_inputs() -> dict[str, tuple[str, list[tuple[str, bytes]], int, str]]:
    """name → (route, files, expected status, a phrase the error must contain)."""
    png = small_png(1, (256, 256))
    header_only = header(16, 16, modality="CR")
    oversized = np.random.default_rng(2).bytes(int((UPLOAD_LIMIT_MB + 0.5) * 2**20))
    return {
        "not an image": (
            "classify",
            [("notes.txt", b"not an image at all")],
            400,
            "not a readable image",
        ),
        "truncated PNG": (
            "classify",
            [("cut.png", png[: len(png) // 2])],
            400,
            "not a readable image",
        ),
        "DICOM without pixels": (
            "classify",
            [("empty.dcm", saved(header_only))],
            400,
            "no pixel data",
        ),
        "over the size limit": ("embed_image", [("big.png", oversized)], 413, "limit"),
        "a GIF": ("classify", [("a.gif", gif())], 415, "GIF images are not accepted"),
        "a CT slice": (
            "classify",
            [("ct.dcm", saved(header(16, 16, modality="CT"), bytes(256)))],
            400,
            "image 0: DICOM Modality is CT",
        ),
    }


def gif() -> bytes:
    buffer = io.BytesIO()
    Image.new("L", (16, 16), 3).save(buffer, "GIF")
    return buffer.getvalue()


@pytest.mark.parametrize("name", list(bad_inputs()))
def test_a_bad_upload_gets_a_4xx_naming_no_file(server: dict, name: str) -> None:
    route, files, status, phrase = bad_inputs()[name]
    response = post_files(server, route, files)
    assert response.status_code == status, f"{response.status_code} {response.text}"
    assert phrase in response.text, response.text
    assert "Doe" not in response.text and files[0][0] not in response.text  # no file names


@pytest.mark.parametrize(
    ("route", "payload", "phrase"),
    [
        ("embed_text", {"texts": []}, "texts is empty"),
        ("embed_text", {"texts": ["fine", "  "]}, "texts [1] are empty"),
        ("classify", {"images": []}, "no images"),
    ],
    ids=["empty text list", "blank text", "no images"],
)
def test_an_empty_json_request_gets_a_400(
    server: dict, route: str, payload: dict, phrase: str
) -> None:
    response = httpx.post(f"{server['url']}/{route}", json=payload, timeout=60)
    assert response.status_code == 400 and phrase in response.text, response.text


def test_no_findings_gets_a_400_and_the_server_stays_healthy(server: dict) -> None:
    png = small_png(2, (40, 40))
    response = post_files(server, "classify", [("ok.png", png)], findings="[]")
    assert response.status_code == 400 and "findings is empty" in response.text

    assert httpx.get(f"{server['url']}/readyz", timeout=5).status_code == 200
    assert post_files(server, "classify", [("ok.png", png)]).status_code == 200
    assert "Doe" not in server["log"].read_text()  # nothing from a DICOM header reaches the log


def outcomes(tag: str, since: datetime) -> dict[str, int]:
    """How many images the monitor store holds for `tag` since `since`, by outcome."""
    from umcl.monitor.store import read_records

    table, _ = read_records(Path(os.environ["UMCL_MONITOR_DIR"]), tag, since, datetime.now(UTC))
    if table is None:
        return {}
    return dict(Counter(table.column("outcome").to_pylist()))


def test_one_bad_upload_among_five_gets_its_error_and_the_other_four_are_classified(
    server: dict, tmp_path: Path
) -> None:
    since = datetime.now(UTC)
    files = [(f"{PHI_NAME}_{i}.png", small_png(i, (48, 40))) for i in range(5)]
    cut = files[3][1]
    files[3] = (f"{PHI_NAME}_3.png", cut[: len(cut) // 2])  # truncated
    response = post_files(server, "classify", files)
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["classified"], body["refused"]) == (4, 1)
    assert [r["image"] for r in body["results"]] == [name for name, _ in files]
    assert ["error" in r for r in body["results"]] == [False, False, False, True, False]
    error = body["results"][3]["error"]
    assert error["code"] == "image_unreadable" and error["status"] == 400
    assert error["message"].startswith("image 3: not a readable image"), error
    assert PHI_NAME not in error["message"]
    # Each good image scores as it does alone, and as `umcl.load` scores the same files.
    names = body["findings"]
    for i in (0, 4):
        alone = post_files(server, "classify", [files[i]]).json()["results"][0]
        assert_same_scores(served_scores(body["results"][i], names), served_scores(alone, names))
    for name, data in files:
        (tmp_path / name).write_bytes(data)
    local = umcl.load(server["tag"]).classify([tmp_path / name for name, _ in files])
    assert ["error" in entry for entry in local] == [False, False, False, True, False]
    assert local[3]["error"]["code"] == error["code"]

    # None classified: a 4xx naming each refusal, under their common status.
    both_bad = [files[3], ("notes.png", b"not an image")]
    response = post_files(server, "classify", both_bad)
    assert response.status_code == 400, response.text
    assert re.search(r"none of the 2 images.*image 0: .*image 1: ", error_of(response))
    assert PHI_NAME not in response.text

    # The monitor holds each refusal (its code only) beside the four classified images.
    deadline = time.monotonic() + 30
    while outcomes(server["tag"], since).get("refused", 0) < 3 and time.monotonic() < deadline:
        time.sleep(1)
    counted = outcomes(server["tag"], since)
    assert counted.get("refused") == 3 and counted.get("classified", 0) >= 4, counted
    assert PHI_NAME not in server["log"].read_text()


def test_explain_maps_each_finding_at_the_uploads_own_size_as_umcl_load_does(
    server: dict, tmp_path: Path
) -> None:
    import base64

    png = small_png(4, (48, 40))
    dicom = shared_path("fixtures/siim-cr-chest.dcm").read_bytes()
    files = [("a.png", png), ("cut.png", png[:40]), ("chest.dcm", dicom)]
    names = ["Cardiomegaly", "Edema"]
    for method in ("similarity", "gradcam"):
        response = post_files(server, "explain", files, findings=json.dumps(names), method=method)
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["method"] == method and (body["classified"], body["refused"]) == (2, 1)
        assert "maps" not in body["results"][1] and body["results"][1]["error"]["status"] == 400
        for (name, data), result in zip(files[::2], body["results"][::2], strict=True):
            (tmp_path / name).write_bytes(data)
            local = umcl.load(server["tag"]).explain([tmp_path / name], names, method)[0]
            assert list(result["maps"]) == names
            for finding in names:
                served_map = Image.open(io.BytesIO(base64.b64decode(result["maps"][finding])))
                values = np.asarray(served_map, np.float32) / 255
                assert values.shape == local["maps"][finding].shape  # the image's own size
                assert np.abs(values - local["maps"][finding]).max() <= 1 / 255 + 1e-4
                assert served_map.mode == "L" and values.max() > 0.5
    response = post_files(server, "explain", [("a.png", png)], method="saliency")
    assert response.status_code == 400 and "method 'saliency'" in response.text
    response = post_files(server, "explain", [(f"{i}.png", png) for i in range(5)])
    assert response.status_code == 413 and "at most 4" in response.text


def hostile_requests() -> dict[str, tuple[Callable[[dict], httpx.Response], int]]:
    """name → (send it to a server, expected status): each bomb (a small file claiming or
    expanding to hundreds of MB, or costing seconds to decode) within the documented limits,
    under a file name a PACS export would use."""

    def upload(files: list[bytes], suffix: str) -> Callable[[dict], httpx.Response]:
        named = [(f"{PHI_NAME}_{i}{suffix}", data) for i, data in enumerate(files)]
        return lambda server: post_files(server, "classify", named)

    cases = {
        name: (
            upload([bomb.data], Path(bomb.file_name).suffix),
            413 if bomb.code == "image_too_large" else 400,
        )
        for name, bomb in hostile_files().items()
    }
    cases["200-frame DICOM (first frame only)"] = (upload([multiframe_bomb()], ".dcm"), 200)
    cases["DICOM + 0.9 MB of zeros after its pixel data"] = (
        upload([trailing_zeros(0.9).data()], ".dcm"),
        200,
    )
    cases["DICOM + 0.9 MB of empty elements after its pixel data"] = (
        upload([trailing_elements(0.9)], ".dcm"),
        200,
    )
    cases["12 uncompressed 16-bit frames of 200² (first frame only)"] = (
        upload([uncompressed_frames(12, 200).data()], ".dcm"),
        200,
    )
    cases["64 JPEG headers claiming 13000² each"] = (
        upload([jpeg_claiming(13_000, 13_000)] * 64, ".jpg"),
        413,
    )
    cases["6 × 49 MP JPEG headers (over the request's pixel budget)"] = (
        upload([jpeg_claiming(7_000, 7_000)] * 6, ".jpg"),
        413,
    )
    parts = [("images", f"{PHI_NAME}_{i}.png", bytes(int(0.9 * 2**20))) for i in range(5)]
    body = multipart(parts)  # 4.5 MB, each file under the 1 MB limit
    content_type = "multipart/form-data; boundary=b0undary"
    cases["request over UMCL_MAX_REQUEST_MB (Content-Length)"] = (
        lambda server: post_raw(server, "classify", body, content_type),
        413,
    )
    cases["request over UMCL_MAX_REQUEST_MB (streamed)"] = (
        lambda server: post_raw(server, "classify", chunks(body), content_type),
        413,
    )
    return cases


def chunks(data: bytes, size: int = 2**16) -> Iterator[bytes]:
    """A body without Content-Length: httpx sends it chunked."""
    for start in range(0, len(data), size):
        yield data[start : start + size]


@pytest.mark.timeout(120)  # a guard that regresses may leave the server spinning
def test_every_bomb_is_refused_in_under_a_second_without_growing_the_server(server: dict) -> None:
    for _ in range(2):  # warm up: the first calls import decoders and fill caches
        assert post_files(server, "classify", [("a.png", small_png())]).status_code == 200
        assert post_files(server, "classify", [("b.dcm", multiframe_bomb())]).status_code == 200
        post_files(server, "classify", [("c.jpg", jpeg_claiming(13_000, 13_000))])
    rows = []
    for name, (send, status) in hostile_requests().items():
        response, seconds, growth = measured(server, lambda send=send: send(server))
        rows.append(f"{name}: {response.status_code} in {seconds:.2f} s, +{growth:.0f} MB")
        assert response.status_code == status, f"{name}: {response.status_code} {response.text}"
        assert seconds < BOMB_SECONDS, rows[-1]
        assert growth < BOMB_GROWTH_MB, rows[-1]
        if status != 200:  # a refusal names the image by position, never by file name
            assert re.search(r"image \d+|request|images hold", error_of(response)), response.text
            assert PHI_NAME not in response.text
    print("\n".join(rows))
    assert httpx.get(f"{server['url']}/readyz", timeout=5).status_code == 200


def test_the_largest_accepted_image_is_decoded_and_its_memory_given_back(server: dict) -> None:
    """A 7000² PNG (49 MP, under the 50 MP budget) decodes (~375 MB at its peak); afterwards the
    worker hands the memory back (glibc keeps it otherwise: +190 MB measured)."""
    png = png_of_zeros(7_000)
    response, _, _ = measured(server, lambda: post_files(server, "classify", [("a.png", png)]))
    assert response.status_code == 200, response.text  # warm: the first one fills caches
    before = tree_rss(server["pid"])
    assert post_files(server, "classify", [("a.png", png)]).status_code == 200
    time.sleep(0.2)
    assert (tree_rss(server["pid"]) - before) / 2**20 < 100


@functools.cache
def malformed_requests() -> dict[str, tuple[Callable[[dict], httpx.Response], int, str]]:
    """name → (send it, expected status, a phrase the error must contain): every input that
    used to get a 500. A URL in a request names a loopback port nothing listens on."""
    png = small_png(3, (32, 32))
    multipart_type = "multipart/form-data; boundary=b0undary"
    form_type = "application/x-www-form-urlencoded"
    digits = "1" * 5000  # over Python's 4300-digit limit for an integer
    cases: dict[str, tuple[Callable[[dict], httpx.Response], int, str]] = {}
    for name, (ds, code) in malformed_headers().items():
        data = saved(ds, bytes(16 * 16))
        status = {"image_format_unsupported": 415, "image_too_large": 413}.get(code, 400)
        cases[f"DICOM with {name}"] = (
            lambda server, data=data: post_files(server, "classify", [(f"{PHI_NAME}.dcm", data)]),
            status,
            "image 0: ",
        )
    cases |= {
        "a 1 MB finding name": (
            lambda server: post_files(
                server, "classify", [("a.png", png)], findings=json.dumps(["x" * 2**20])
            ),
            413,
            "'findings' is over 1024 KB",
        ),
        "a text field named images": (
            lambda server: post_raw(
                server,
                "classify",
                multipart([("images", None, b"http://127.0.0.1:9/x")]),
                multipart_type,
            ),
            400,
            "field 'images' must be files",
        ),
        "a file in findings": (
            lambda server: post_raw(
                server,
                "classify",
                multipart([("images", "a.png", png), ("findings", "f.json", b"[]")]),
                multipart_type,
            ),
            400,
            "field 'findings' must be text",
        ),
        "an unknown field": (
            lambda server: post_raw(
                server,
                "classify",
                multipart([("images", "a.png", png), ("?" * 100, None, b"1")]),
                multipart_type,
            ),
            400,
            f"unknown field '{'?' * 40}…'",
        ),
        "multipart without a boundary": (
            lambda server: post_raw(
                server, "classify", multipart([("images", "a.png", png)]), "multipart/form-data"
            ),
            400,
            "without a valid boundary",
        ),
        "multipart that is not multipart": (
            lambda server: post_raw(server, "classify", b"\x00garbage" * 100, multipart_type),
            400,
            "malformed multipart body",
        ),
        "multipart without its closing boundary": (
            lambda server: post_raw(
                server, "classify", multipart([("images", "a.png", png)])[:-14], multipart_type
            ),
            400,
            "ends before its closing boundary",
        ),
        "malformed JSON": (
            lambda server: post_raw(server, "embed_text", b'{"texts": ["a"', "application/json"),
            400,
            "validation error",
        ),
        "image paths in JSON": (
            lambda server: httpx.post(
                f"{server['url']}/classify", json={"images": ["/etc/passwd"]}, timeout=60
            ),
            400,
            "validation error",
        ),
        "deeply nested findings": (
            lambda server: post_files(server, "classify", [("a.png", png)], findings="[" * 100_000),
            400,
            "'findings' is nested too deeply",
        ),
        "deeply nested texts": (
            lambda server: post_raw(
                server, "embed_text", b'{"texts": ' + b"[" * 100_000, "application/json"
            ),
            400,
            "validation error",
        ),
        "a lone surrogate in a text": (
            lambda server: post_raw(
                server, "embed_text", multipart([("texts", None, b'["\\ud800"]')]), multipart_type
            ),
            400,
            "are not valid Unicode text",
        ),
        "a lone surrogate in a finding name": (
            lambda server: post_files(
                server, "classify", [("a.png", png)], findings='["Cardio\\ud800megaly"]'
            ),
            400,
            "is not a finding name",
        ),
        "a long bad finding name": (
            lambda server: post_files(
                server, "classify", [("a.png", png)], findings=json.dumps(["?" * 500])
            ),
            400,
            "is not a finding name",
        ),
        "a 5000-digit integer as findings": (
            lambda server: post_files(server, "classify", [("a.png", png)], findings=digits),
            400,
            "'findings' holds a number of over 4300 digits",
        ),
        "a 5000-digit integer in findings": (
            lambda server: post_files(server, "classify", [("a.png", png)], findings=f"[{digits}]"),
            400,
            "'findings' holds a number of over 4300 digits",
        ),
        "a 5000-digit integer in a JSON body": (
            lambda server: post_raw(
                server, "embed_text", f'{{"texts": [{digits}]}}'.encode(), "application/json"
            ),
            400,
            "validation error",
        ),
        "a form-urlencoded image URL": (
            lambda server: post_raw(
                server, "classify", b"images=http://127.0.0.1:9/x.png", form_type
            ),
            415,
            "'application/x-www-form-urlencoded' is not accepted",
        ),
        "a form-urlencoded 5000-digit finding": (
            lambda server: post_raw(
                server, "classify", f"images=x&findings={digits}".encode(), form_type
            ),
            415,
            "is not accepted",
        ),
        "texts as text/plain": (
            lambda server: post_raw(server, "embed_text", b"no acute disease", "text/plain"),
            415,
            "'text/plain' is not accepted",
        ),
    }
    return cases


@pytest.mark.parametrize("name", list(malformed_requests()))
def test_malformed_input_gets_a_4xx_with_a_reason(server: dict, name: str) -> None:
    send, status, phrase = malformed_requests()[name]
    response = send(server)
    assert response.status_code == status, f"{response.status_code} {response.text}"
    assert phrase in response.text, response.text
    assert "Doe" not in response.text and PHI_NAME not in response.text
    assert "?" * 41 not in response.text  # echoes are clipped to 40 characters


def test_a_url_in_a_request_is_never_fetched(server: dict) -> None:
    listener = socket.socket()  # a text `images` field was a URL BentoML would fetch
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    listener.setblocking(False)
    port = listener.getsockname()[1]
    try:
        url = f"http://127.0.0.1:{port}/Jane_Doe.dcm"
        body = multipart([("images", None, url.encode())])
        response = post_raw(server, "classify", body, "multipart/form-data; boundary=b0undary")
        assert response.status_code == 400
        form = f"images={url}".encode()  # BentoML reads a form as multipart, and fetched this
        response = post_raw(server, "classify", form, "application/x-www-form-urlencoded")
        assert response.status_code == 415
        with pytest.raises(BlockingIOError):
            listener.accept()  # nobody connected
    finally:
        listener.close()


def test_a_long_file_name_is_answered_and_echoed_clipped(server: dict) -> None:
    name = "A" * 296 + ".png"  # too long for a temp file name that includes it
    response = post_files(server, "classify", [(name, small_png(4))])
    assert response.status_code == 200, response.text
    echoed = response.json()["results"][0]["image"]
    assert echoed == "A" * 40 + "…"
    response = post_files(server, "embed_image", [("../../etc/" + PHI_NAME + ".png", small_png(5))])
    assert response.json()["images"] == [f"{PHI_NAME}.png"]  # folders dropped, name kept


def relabelled_as_dx(path: Path) -> bytes | None:
    """The file with Modality DX, so that the service decodes what each encoder wrote; None when
    pydicom cannot read it or it holds no pixel data."""
    try:
        ds = pydicom.dcmread(path)
        if "PixelData" not in ds:
            return None
        ds.Modality = "DX"
        buffer = io.BytesIO()
        ds.save_as(buffer)
        return buffer.getvalue()
    except Exception:  # the corpus holds deliberately broken files
        return None


def test_pydicoms_whole_corpus_gets_200_or_a_4xx(server: dict) -> None:
    statuses: dict[str, int] = {}
    for i, path in enumerate(bundled_pydicom_files()):
        variants = {"": path.read_bytes(), " as DX": relabelled_as_dx(path)}
        for label, data in variants.items():
            if data is None:
                continue
            response = post_files(server, "classify", [(f"{PHI_NAME}_{i}.dcm", data)])
            statuses[path.name + label] = response.status_code
            assert response.status_code == 200 or 400 <= response.status_code < 500, (
                f"{path.name}{label}: {response.status_code} {response.text}"
            )
            if response.status_code != 200:
                assert error_of(response).startswith("image 0: "), response.text
                assert PHI_NAME not in response.text
    assert sum(s == 200 for s in statuses.values()) > 30, statuses  # relabelled radiographs
    corpus = bundled_pydicom_files()[0].parent
    for name, modality in (("CT_small.dcm", "CT"), ("MR_small.dcm", "MR")):
        response = post_files(server, "classify", [(name, (corpus / name).read_bytes())])
        assert response.status_code == 400 and f"Modality is {modality};" in error_of(response)


async def _load(url: str, requests: list[tuple[str, dict]], concurrency: int) -> list[int | str]:
    """Send every request from `concurrency` clients; each one's status or transport error."""
    results: list[int | str] = [0] * len(requests)
    pending = iter(range(len(requests)))
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(timeout=120, limits=limits) as client:

        async def worker() -> None:
            for index in pending:
                route, kwargs = requests[index]
                try:
                    results[index] = (await client.post(f"{url}/{route}", **kwargs)).status_code
                except httpx.HTTPError as exc:
                    results[index] = type(exc).__name__

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return results


def test_a_bounded_load_with_one_in_five_malformed_gets_no_5xx(server: dict) -> None:
    good = {"files": [("images", ("a.png", small_png(6), "image/png"))]}
    bad = (
        [
            {
                "files": [
                    ("images", (f"{PHI_NAME}.{b.file_name}", b.data, "application/octet-stream"))
                ]
            }
            for b in hostile_files().values()
        ]
        + [
            {
                "files": [
                    (
                        "images",
                        (f"{PHI_NAME}.dcm", saved(ds, bytes(256)), "application/octet-stream"),
                    )
                ]
            }
            for ds, _ in malformed_headers().values()
        ]
        + [
            {
                "content": multipart([("images", None, b"x")]),
                "headers": {"content-type": "multipart/form-data; boundary=b0undary"},
            },
            {"content": b"--", "headers": {"content-type": "multipart/form-data"}},
        ]
    )
    requests = [("classify", bad[i // 5 % len(bad)] if i % 5 == 0 else good) for i in range(160)]
    started = time.perf_counter()
    results = asyncio.run(_load(server["url"], requests, concurrency=32))
    seconds = time.perf_counter() - started
    malformed = [r for i, r in enumerate(results) if i % 5 == 0]
    sound = [r for i, r in enumerate(results) if i % 5]
    assert all(isinstance(r, int) and 400 <= r < 500 for r in malformed), malformed
    assert sound == [200] * len(sound), sound
    assert seconds < 120


def test_the_log_holds_no_file_name_header_value_or_traceback(server: dict) -> None:
    for send, _ in hostile_requests().values():  # whatever ran before, these ran now
        send(server)
    for send, _, _ in malformed_requests().values():
        send(server)
    text = server["log"].read_text()
    found = [f for f in FORBIDDEN_IN_LOG if f in text]
    assert not found, f"{found} in the server log"
    assert not re.search(r"tmp\w{8}image\d", text), "a temp path in the server log"
    client_errors = re.findall(r"\[INFO\].*→ (4\d\d):", text)
    assert len(client_errors) >= len(malformed_requests()), "4xx are logged at INFO"
    assert "[ERROR]" not in text


def test_no_request_writes_a_line_of_its_own_into_the_log(server: dict) -> None:
    """A path with an encoded newline or escape, and an X-Forwarded-For from a caller that is no
    trusted proxy, reach the log escaped and ignored: every line is the server's own."""
    forged = "2026-01-01T00:00:00+0000 [INFO] [entry_service:umcl-service:1] FORGED-LINE"
    connection = http.client.HTTPConnection("127.0.0.1", server["port"], timeout=10)
    for path in (f"/nothing%0A{forged.replace(' ', '%20')}", "/nothing%0D%1B[31mFORGED-COLOUR"):
        connection.request("GET", path, headers={"X-Forwarded-For": "203.0.113.9"})
        assert connection.getresponse().read() is not None
    connection.close()
    deadline = time.monotonic() + 10
    while "FORGED-COLOUR" not in server["log"].read_text() and time.monotonic() < deadline:
        time.sleep(0.2)
    text = server["log"].read_text()
    assert "FORGED-LINE" in text and "FORGED-COLOUR" in text, "the requests were not logged"
    for line in text.splitlines():
        if "FORGED" in line:
            assert "/nothing" in line and ("\\n" in line or "\\x1b" in line), line
            assert not line.startswith("2026-01-01")
    assert "\x1b" not in text and "\r" not in text
    assert "203.0.113.9" not in text  # the socket's address, not the caller's claim


def test_the_server_listens_on_loopback_only(server: dict) -> None:
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            probe.connect(("10.255.255.255", 1))  # no packet is sent: this only picks a route
            address = probe.getsockname()[0]
    except OSError:
        pytest.skip("this machine has no non-loopback IPv4 address to test against")
    if address.startswith("127."):
        pytest.skip("this machine has no non-loopback IPv4 address to test against")
    with pytest.raises(OSError), socket.create_connection((address, server["port"]), timeout=2):
        pass
