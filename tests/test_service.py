"""The real `bentoml serve` on a free loopback port, called over HTTP with BentoML's client and
with raw requests: classification of real and demo images, equality with offline scoring, and
every kind of bad input answered with a 4xx while the server stays healthy."""

from __future__ import annotations

import io
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np
import polars as pl
import pytest
import torch
from PIL import Image

from tests.conftest import REPO, saved_random_model, shared_path
from umcl import registry

pytestmark = pytest.mark.slow
UPLOAD_LIMIT_MB = 1


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(tiny_pipeline: dict, tmp_path_factory: pytest.TempPathFactory):
    """A champion in the (session's) model store and `bentoml serve` running around it."""
    root = tmp_path_factory.mktemp("serve")
    model_dir = saved_random_model(tiny_pipeline, root / "model", seed=7)
    entry, _ = registry.add(model_dir, {"test": True})
    registry.promote(entry.tag)
    port = free_port()
    log = (root / "serve.log").open("w")
    env = {**os.environ, "UMCL_MAX_UPLOAD_MB": str(UPLOAD_LIMIT_MB)}
    env.pop("UMCL_MODEL", None)  # the service must find the champion itself
    bentoml = Path(sys.executable).parent / "bentoml"
    process = subprocess.Popen(
        [str(bentoml), "serve", "umcl.service:UMCL", "--port", str(port)],
        cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
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


def post_files(server: dict, route: str, files: list[tuple[str, bytes]], **form) -> httpx.Response:
    parts = [("images", (name, data, "application/octet-stream")) for name, data in files]
    return httpx.post(f"{server['url']}/{route}", files=parts, data=form, timeout=60)


def offline_probabilities(model_dir: Path, squares: torch.Tensor) -> torch.Tensor:
    """What `umcl evaluate` computes for (n, 1, S, S) images in [0, 1]: learned-prompt zero-shot."""
    from umcl.evaluate import zero_shot
    from umcl.model.umcl import load_model

    model = load_model(model_dir)
    with torch.no_grad():
        return zero_shot(model, model.encode_image(squares), handcrafted=False)


def test_a_demo_dicom_gets_the_probabilities_umcl_evaluate_gives(
    server: dict, tiny_pipeline: dict
) -> None:
    from umcl.data.dataset import TripletDataset
    from umcl.model.umcl import describe_model

    triplets = pl.read_parquet(tiny_pipeline["triplets"]).filter(
        (pl.col("split") == "test") & pl.col("image").is_not_null()
    )
    row = triplets.row(0, named=True)
    names = describe_model(server["model_dir"])["labels"]
    sample = TripletDataset(triplets.head(1), tiny_pipeline["cache"], names)[
        0
    ]  # the cache evaluate reads
    expected = offline_probabilities(server["model_dir"], sample["image"][None])[0]

    response = post_files(server, "classify", [("study.dcm", Path(row["image"]).read_bytes())])
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["model"] == server["tag"] and body["findings"] == names
    assert body["outside_label_space"] == []
    served = body["results"][0]["probabilities"]
    assert set(served) == set(names)
    assert np.allclose([served[n] for n in names], expected.numpy(), atol=1e-5)


def test_real_nih_pngs_and_a_real_dicom_through_the_bentoml_client(server: dict) -> None:
    import bentoml

    from umcl.data.images import fit_square, load_image
    from umcl.model.umcl import describe_model, input_size

    files = [
        shared_path("fixtures/nih-00000001_000.png"),
        shared_path("fixtures/nih-00027426_000.png"),
        shared_path("fixtures/siim-cr-chest.dcm"),
    ]
    with bentoml.SyncHTTPClient(server["url"], timeout=60) as client:
        body = client.classify(images=files)
    size = input_size(describe_model(server["model_dir"]))
    squares = torch.stack(
        [
            torch.from_numpy(np.array(fit_square(load_image(f), size), dtype=np.float32) / 255.0)[
                None
            ]
            for f in files
        ]
    )
    expected = offline_probabilities(server["model_dir"], squares)
    names = body["findings"]
    assert len(body["results"]) == 3 and len(names) == 14
    for result, row in zip(body["results"], expected, strict=True):
        assert np.allclose([result["probabilities"][n] for n in names], row.numpy(), atol=1e-5)
    assert body["results"][2]["image"] == "siim-cr-chest.dcm"


def test_caller_chosen_findings_and_embeddings(server: dict, tiny_pipeline: dict) -> None:
    png = io.BytesIO()
    Image.fromarray((np.random.default_rng(0).random((80, 60)) * 255).astype(np.uint8)).save(
        png, "PNG"
    )
    response = post_files(
        server, "classify", [("a.png", png.getvalue())], findings='["Cardiomegaly", "Nodule"]'
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["findings"] == ["Cardiomegaly", "Nodule"]
    assert body["outside_label_space"] == ["Nodule"]
    assert set(body["results"][0]["probabilities"]) == {"Cardiomegaly", "Nodule"}

    images = post_files(server, "embed_image", [("a.png", png.getvalue())] * 2).json()
    texts = httpx.post(
        f"{server['url']}/embed_text",
        json={"texts": ["no acute disease", "cardiomegaly"]},
        timeout=60,
    ).json()
    for vectors in (images["embeddings"], texts["embeddings"]):
        assert len(vectors) == 2 and np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


def bad_inputs(tmp_path: Path) -> dict[str, tuple[str, list[tuple[str, bytes]], int, str]]:
    """name → (route, files, expected status, a phrase the error must contain)."""
    import pydicom
    from pydicom.dataset import FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    png = io.BytesIO()
    Image.fromarray((np.random.default_rng(1).random((256, 256)) * 255).astype(np.uint8)).save(
        png, "PNG"
    )
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.1"
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    header_only = pydicom.Dataset()
    header_only.file_meta = meta
    header_only.Modality, header_only.SOPInstanceUID = "CR", meta.MediaStorageSOPInstanceUID
    header_only.PatientName = "Doe^Jane"
    dicom_file = tmp_path / "empty.dcm"
    header_only.save_as(dicom_file, enforce_file_format=True)
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
            [("cut.png", png.getvalue()[: len(png.getvalue()) // 2])],
            400,
            "not a readable image",
        ),
        "DICOM without pixels": (
            "classify",
            [("empty.dcm", dicom_file.read_bytes())],
            400,
            "no pixel data",
        ),
        "over the size limit": ("embed_image", [("big.png", oversized)], 413, "limit"),
    }


def test_bad_input_gets_a_4xx_and_the_server_stays_healthy(server: dict, tmp_path: Path) -> None:
    for name, (route, files, status, phrase) in bad_inputs(tmp_path).items():
        response = post_files(server, route, files)
        assert response.status_code == status, f"{name}: {response.status_code} {response.text}"
        assert phrase in response.text, f"{name}: {response.text}"
        assert "Doe" not in response.text and files[0][0] not in response.text  # no file names
    json_cases = {
        "empty text list": ("embed_text", {"texts": []}, "texts is empty"),
        "blank text": ("embed_text", {"texts": ["fine", "  "]}, "texts [1] are empty"),
        "no images": ("classify", {"images": []}, "no images"),
    }
    for name, (route, payload, phrase) in json_cases.items():
        response = httpx.post(f"{server['url']}/{route}", json=payload, timeout=60)
        assert response.status_code == 400 and phrase in response.text, f"{name}: {response.text}"
    png = io.BytesIO()
    Image.new("L", (40, 40), 128).save(png, "PNG")
    response = post_files(server, "classify", [("ok.png", png.getvalue())], findings="[]")
    assert response.status_code == 400 and "findings is empty" in response.text

    assert httpx.get(f"{server['url']}/readyz", timeout=5).status_code == 200
    assert post_files(server, "classify", [("ok.png", png.getvalue())]).status_code == 200
    assert "Doe" not in server["log"].read_text()  # nothing from a DICOM header reaches the log


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
