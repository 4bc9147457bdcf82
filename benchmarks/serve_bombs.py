"""Hostile uploads against the served model: status, seconds and memory per bomb.

Starts `bentoml serve umcl.service:UMCL` on a free loopback port with the default limits, warms
it up, then sends each bomb (every one within the documented per-file limits: small files that
claim or expand to hundreds of MB or cost seconds to decode, DICOM files whose size is trailing
data or later frames, bodies BentoML would have answered with a 500) and, for comparison, the
largest images the limits accept. Per case: the HTTP status, the seconds
until the answer, and the growth of the server's resident memory (all its processes: API
worker and encoder), as the peak while the request ran (sampled every 5 ms) and after it.
A bomb is refused from its header, or stopped as soon as it passes what its header declares,
so neither its time nor its memory depends on the size it claims.

    python benchmarks/serve_bombs.py [--model umcl:<version> | --untrained]

`--untrained` serves a throwaway tiny model from a temporary model store (no `make run` needed):
the refusals never reach the model, so their rows do not depend on it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # the hostile-file builders live in tests/hostile.py

from serve_load import Server  # noqa: E402  (this folder: the script's own sys.path entry)

from tests.hostile import (  # noqa: E402
    cost_of,
    header_of_empty_elements,
    hostile_files,
    jpeg_claiming,
    jpeg_dicom,
    multiframe_bomb,
    png16,
    png_of_zeros,
    progressive_jpeg,
    progressive_scan_bomb,
    trailing_elements,
    trailing_zeros,
    tree_rss,
    uncompressed_frames,
)

PHI_NAME = "Jane_Doe_MRN4829371"
MB = 2**20


def untrained_store(root: Path) -> dict[str, str]:
    """A model store holding one promoted, untrained tiny model; the environment that uses it."""
    os.environ["BENTOML_HOME"] = str(root)
    from tests.tiny import tiny_model
    from umcl import registry

    params = yaml.safe_load((REPO / "params.yaml").read_text())
    model = tiny_model(seed=1)
    model.image_size = params["preprocess"]["image_size"]  # what a trained model would take
    model.save_pretrained(root / "model")
    entry, _ = registry.add(root / "model", {"benchmark": "serve_bombs"})
    registry.promote(entry.tag)
    return {"BENTOML_HOME": str(root)}


def files_request(files: list[tuple[str, bytes]]) -> dict:
    return {"files": [("images", (name, data, "application/octet-stream")) for name, data in files]}


def zeros_body(
    files: int, megabytes: float, boundary: str = "b0undary"
) -> tuple[int, Callable[[], Iterator[bytes]]]:
    """A multipart body of `files` files of zeros, streamed (never held in memory): its length
    and a generator of its chunks."""
    size = int(megabytes * MB)
    heads = [
        f'--{boundary}\r\nContent-Disposition: form-data; name="images"; filename="{PHI_NAME}_{i}.png"\r\n\r\n'.encode()
        for i in range(files)
    ]
    tail = f"--{boundary}--\r\n".encode()
    length = sum(len(h) + size + 2 for h in heads) + len(tail)

    def chunks() -> Iterator[bytes]:
        block = bytes(MB)
        for head in heads:
            yield head
            for start in range(0, size, MB):
                yield block[: min(MB, size - start)]
            yield b"\r\n"
        yield tail

    return length, chunks


Send = Callable[[httpx.Client, str], list[int | str]]


def status_of(post: Callable[[], httpx.Response]) -> int | str:
    """The status, or the name of the transport error (a reset connection) instead."""
    try:
        return post().status_code
    except httpx.HTTPError as exc:
        return type(exc).__name__


def cases() -> dict[str, tuple[str, int, Send]]:
    """name → (what is sent, expected status, send it and return the statuses)."""

    def one(files: list[tuple[str, bytes]]) -> Send:
        return lambda client, url: [
            status_of(lambda: client.post(f"{url}/classify", **files_request(files)))
        ]

    def at_once(files: list[tuple[str, bytes]], n: int) -> Send:
        async def send(url: str) -> list[int | str]:
            async with httpx.AsyncClient(timeout=120) as client:
                answers = await asyncio.gather(
                    *(client.post(f"{url}/classify", **files_request(files)) for _ in range(n)),
                    return_exceptions=True,
                )
            return [
                a.status_code if isinstance(a, httpx.Response) else type(a).__name__
                for a in answers
            ]

        return lambda client, url: asyncio.run(send(url))

    def streamed(n: int, megabytes: float, declare: bool) -> Send:
        length, chunks = zeros_body(n, megabytes)
        headers = {"content-type": "multipart/form-data; boundary=b0undary"}
        if declare:
            headers["content-length"] = str(length)
        return lambda client, url: [
            status_of(lambda: client.post(f"{url}/classify", content=chunks(), headers=headers))
        ]

    def raw(body: bytes, content_type: str, route: str = "classify") -> Send:
        headers = {"content-type": content_type}
        return lambda client, url: [
            status_of(lambda: client.post(f"{url}/{route}", content=body, headers=headers))
        ]

    def size(data: bytes) -> str:
        if len(data) >= 10**6:
            return f"{len(data) / 10**6:,.1f} MB"
        return f"{len(data):,} B" if len(data) < 10_000 else f"{len(data) / 1000:,.0f} KB"

    table: dict[str, tuple[str, int, Send]] = {}
    for name, bomb in hostile_files().items():
        status = 413 if bomb.code == "image_too_large" else 400
        suffix = Path(bomb.file_name).suffix
        table[name] = (
            f"1 file, {size(bomb.data)}",
            status,
            one([(f"{PHI_NAME}{suffix}", bomb.data)]),
        )
    png = png_of_zeros(13_000)
    table["3 PNGs of 13000² zeros at once"] = (
        f"3 requests, {size(png)} each",
        413,
        at_once([("a.png", png)], 3),
    )
    table["32 PNGs of 13000² zeros at once"] = (
        f"32 requests, {size(png)} each",
        413,
        at_once([("a.png", png)], 32),
    )
    frames = multiframe_bomb()
    table["200-frame RLE DICOM, 512² (first frame only)"] = (
        f"1 file, {size(frames)}",
        200,
        one([(f"{PHI_NAME}.dcm", frames)]),
    )
    for name, data, status in (
        ("DICOM header of 450,000 empty elements", header_of_empty_elements(450_000), 413),
        ("64² DX + 60 MB of zeros after the pixel data", trailing_zeros(60).data(), 200),
        ("64² DX + 60 MB of empty elements after the pixel data", trailing_elements(60), 200),
        (
            "7 uncompressed 16-bit frames of 2000² (first frame only)",
            uncompressed_frames(7).data(),
            200,
        ),
    ):
        table[name] = (f"1 file, {size(data)}", status, one([(f"{PHI_NAME}.dcm", data)]))
    digits = "1" * 5000
    form = "application/x-www-form-urlencoded"
    table["form-urlencoded `images=<URL>`"] = (
        "form body, 31 B",
        415,
        raw(b"images=http://127.0.0.1:9/x.png", form),
    )
    table["form-urlencoded 5000-digit `findings`"] = (
        "form body, 5 KB",
        415,
        raw(f"images=x&findings={digits}".encode(), form),
    )
    table["multipart 5000-digit `findings`"] = (
        "multipart, 5 KB text part",
        400,
        lambda client, url: [
            status_of(
                lambda: client.post(
                    f"{url}/classify",
                    data={"findings": digits},
                    **files_request([("a.png", png_of_zeros(64))]),
                )
            )
        ],
    )
    claims = jpeg_claiming(13_000, 13_000)
    table["64 JPEG headers claiming 13000² in one request"] = (
        f"64 files, {size(claims)} each",
        413,
        one([(f"{PHI_NAME}_{i}.jpg", claims) for i in range(64)]),
    )
    near = jpeg_claiming(7_000, 7_000)
    table["6 JPEG headers claiming 49 MP (request pixel budget)"] = (
        f"6 files, {size(near)} each",
        413,
        one([(f"{PHI_NAME}_{i}.jpg", near) for i in range(6)]),
    )
    table["10 × 60 MB files, Content-Length declared"] = (
        "600 MB body",
        413,
        streamed(10, 60, declare=True),
    )
    table["10 × 60 MB files, streamed without a length"] = (
        "600 MB body, chunked",
        413,
        streamed(10, 60, declare=False),
    )
    frames36 = jpeg_dicom(6_000, 2)
    table["36 MP JPEG DICOM, 2 frames (first frame only)"] = (
        f"1 file, {size(frames36)}",
        200,
        one([(f"{PHI_NAME}.dcm", frames36)]),
    )
    detector = png16(7_000, 7_100)
    table["50 MP 16-bit PNG (7000 × 7100)"] = (
        f"1 file, {size(detector)}",
        200,
        one([(f"{PHI_NAME}.png", detector)]),
    )
    table["5 × 50 MP 16-bit PNGs in one request"] = (
        f"1 request, 5 files of {size(detector)}",
        200,
        one([(f"{PHI_NAME}_{i}.png", detector) for i in range(5)]),
    )
    progressive = progressive_jpeg(7_000, 0)
    table["50 MP progressive JPEG (6 scans)"] = (
        f"1 file, {size(progressive)}",
        200,
        one([(f"{PHI_NAME}.jpg", progressive)]),
    )
    table["50 MP progressive JPEG (6 scans), 4 at once"] = (
        f"4 requests, {size(progressive)} each",
        200,
        at_once([(f"{PHI_NAME}.jpg", progressive)], 4),
    )
    scans99 = progressive_scan_bomb(7_000, 93)
    table["50 MP progressive JPEG with 99 scans"] = (
        f"1 file, {size(scans99)}",
        400,
        one([(f"{PHI_NAME}.jpg", scans99)]),
    )
    biggest = png_of_zeros(7_000)
    table["largest accepted: PNG of 7000² (49 MP)"] = (
        f"1 file, {size(biggest)}",
        200,
        one([("a.png", biggest)]),
    )
    table["largest accepted, 4 at once"] = (
        f"4 requests, {size(biggest)} each",
        200,
        at_once([("a.png", biggest)], 4),
    )
    return table


# Cases that decode large images: the pixels they decode, for the bytes-a-pixel column.
DECODED_PIXELS = {
    "36 MP JPEG DICOM, 2 frames (first frame only)": 36_000_000,
    "50 MP 16-bit PNG (7000 × 7100)": 49_700_000,
    "5 × 50 MP 16-bit PNGs in one request": 5 * 49_700_000,
    "50 MP progressive JPEG (6 scans)": 49_000_000,
    "50 MP progressive JPEG (6 scans), 4 at once": 4 * 49_000_000,
}


def measure(server: Server, send: Callable[[], list[int | str]]) -> dict:
    cost = cost_of(server.process.pid, send)
    time.sleep(0.2)  # let the worker finish releasing what the request held
    after = tree_rss(server.process.pid)
    return {
        "statuses": sorted(set(cost.result), key=str),
        "seconds": round(cost.seconds, 3),
        "peak_growth_mb": round(max(cost.peak, after) / MB - cost.before / MB, 1),
        "growth_after_mb": round((after - cost.before) / MB, 1),
        "server_rss_mb": round(after / MB),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    choice = parser.add_mutually_exclusive_group()
    choice.add_argument("--model", help="umcl:<version> (default: the store's champion)")
    choice.add_argument("--untrained", action="store_true", help="serve a throwaway tiny model")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks/results/serve_bombs.json")
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="umcl-serve-bombs-"))
    env = untrained_store(workdir / "bentoml") if args.untrained else {}
    if args.model:
        env["UMCL_MODEL"] = args.model
    for name in (
        "UMCL_MAX_UPLOAD_MB",
        "UMCL_MAX_REQUEST_MB",
        "UMCL_MAX_IMAGES",
        "UMCL_MAX_PIXELS",
        "UMCL_MAX_REQUEST_PIXELS",
        "UMCL_MAX_DECODE_MB",
        "UMCL_DICOM_MODALITIES",
    ):
        os.environ.pop(name, None)  # the defaults are what is measured
    table = cases()
    server = Server(env, workdir / "serve.log")
    rows = []
    try:
        server.wait_ready()
        with httpx.Client(timeout=120) as client:
            for name in ("PNG of 13000² zeros", "200-frame RLE DICOM, 512² (first frame only)"):
                for _ in range(2):  # warm-up: the first calls import decoders and fill caches
                    table[name][2](client, server.url)
            for name, (sent, expected, send) in table.items():
                result = measure(server, lambda send=send: send(client, server.url))
                rows.append({"case": name, "sent": sent, "expected": expected, **result})
                print(
                    f"{name:55s} {result['statuses']} {result['seconds']:6.2f} s  peak +{result['peak_growth_mb']:6.1f} MB  after +{result['growth_after_mb']:6.1f} MB",
                    flush=True,
                )
    finally:
        server.stop()
    log = (workdir / "serve.log").read_text()
    leaks = [s for s in (PHI_NAME, "Traceback", "Doe^Jane") if s in log]

    print(
        "\n| case | sent | status | seconds | peak RSS growth | bytes a decoded pixel | RSS growth after |"
    )
    print("|---|---|---|---:|---:|---:|---:|")
    for r in rows:
        status = "/".join(map(str, r["statuses"]))
        pixels = DECODED_PIXELS.get(r["case"])
        per_pixel = f"{r['peak_growth_mb'] * MB / pixels:.1f}" if pixels else ""
        print(
            f"| {r['case']} | {r['sent']} | {status} | {r['seconds']:.2f} | {r['peak_growth_mb']:+.0f} MB | {per_pixel} | {r['growth_after_mb']:+.0f} MB |"
        )
    print(
        f"\nserver log: {len(log.splitlines())} lines; file names, tracebacks or header values in it: {leaks or 'none'}"
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    model = "untrained tiny model" if args.untrained else (args.model or "champion")
    args.out.write_text(
        json.dumps({"model": model, "rows": rows, "log_leaks": leaks}, indent=2, ensure_ascii=False)
        + "\n"
    )
    print(f"→ {args.out}")
    if any(r["statuses"] != [r["expected"]] for r in rows) or leaks:
        sys.exit("some case did not get its expected status, or the log holds what it must not")


if __name__ == "__main__":
    main()
