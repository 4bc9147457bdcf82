"""Bounded load test of the served champion: adaptive batching on and off, side by side.

For each setting a fresh `bentoml serve umcl.service:UMCL` starts on a free loopback port (one
server at a time, so they never share the CPU), is warmed up, then gets a fixed number of
`/classify` requests (one demo DICOM each) from 1, 8 and 32 concurrent clients. Reported:
requests/s, p50 and p99 latency, errors (any non-200 or transport error). The client runs on
the same machine and takes part of its CPU: compare the rows, not the absolute figures.

    python benchmarks/serve_load.py [--requests 240] [--model umcl:<version>]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import polars as pl

from umcl.ingest.locator import image_files

REPO = Path(__file__).resolve().parents[1]
CONCURRENCY = (1, 8, 32)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def demo_image(triplets: Path, locator: Path) -> Path:
    """A test-split image's file: triplets name images by key, the locator says where they are."""
    table = pl.read_parquet(triplets).filter(
        (pl.col("split") == "test") & pl.col("image").is_not_null()
    )
    if table.is_empty():
        sys.exit(f"{triplets}: no test images; run `dvc repro` first")
    return Path(image_files([table["image"][0]], locator)[0])


class Server:
    """`bentoml serve` of `target` (the source tree's service, or a bento's tag) on a free port,
    in its own process group, with `env` on top of this process's environment."""

    def __init__(self, env: dict[str, str], log: Path, target: str = "umcl.service:UMCL"):
        self.port = free_port()
        self.log = log.open("w")
        bentoml = Path(sys.executable).parent / "bentoml"
        self.process = subprocess.Popen(
            [str(bentoml), "serve", target, "--port", str(self.port)],
            cwd=REPO,
            env={**os.environ, **env, "PYTHONUNBUFFERED": "1"},
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.url = f"http://127.0.0.1:{self.port}"

    def wait_ready(self, timeout: float = 180) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                sys.exit(f"bentoml serve exited; see {self.log.name}")
            try:
                if httpx.get(f"{self.url}/readyz", timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.5)
        sys.exit(f"bentoml serve not ready in {timeout:.0f} s; see {self.log.name}")

    def stop(self) -> None:
        if self.process.poll() is not None:  # already gone (a test may kill it)
            self.log.close()
            return
        os.killpg(self.process.pid, 15)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, 9)
        self.log.close()


async def load(url: str, image: bytes, requests: int, concurrency: int) -> dict:
    latencies: list[float] = []
    errors = 0
    remaining = iter(range(requests))
    files = {"images": ("study.dcm", image, "application/dicom")}

    async def client_loop(client: httpx.AsyncClient) -> None:
        nonlocal errors
        for _ in remaining:  # shared iterator: the clients split the fixed request count
            started = time.perf_counter()
            try:
                response = await client.post(f"{url}/classify", files=files)
                ok = response.status_code == 200
            except httpx.HTTPError:
                ok = False
            latencies.append(time.perf_counter() - started)
            errors += not ok

    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(timeout=120, limits=limits) as client:
        started = time.perf_counter()
        await asyncio.gather(*(client_loop(client) for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    latencies.sort()
    return {
        "requests": requests,
        "concurrency": concurrency,
        "requests_per_s": requests / elapsed,
        "p50_ms": 1000 * statistics.median(latencies),
        "p99_ms": 1000 * latencies[min(len(latencies) - 1, round(0.99 * (len(latencies) - 1)))],
        "errors": errors,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--requests", type=int, default=240, help="requests per concurrency level")
    parser.add_argument("--model", help="umcl:<version> (default: the store's champion)")
    parser.add_argument("--triplets", type=Path, default=REPO / "data/unified/triplets.parquet")
    parser.add_argument("--locator", type=Path, default=REPO / "data/locator")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks/results/serve_load.json")
    args = parser.parse_args()
    image = demo_image(args.triplets, args.locator).read_bytes()

    rows = []
    logs = Path(tempfile.mkdtemp(prefix="umcl-serve-load-"))
    for batching in (True, False):
        env = {"UMCL_ADAPTIVE_BATCHING": "true" if batching else "false"}
        env |= {"UMCL_MODEL": args.model} if args.model else {}
        server = Server(env, logs / f"serve-batching-{batching}.log")
        try:
            server.wait_ready()
            asyncio.run(load(server.url, image, 16, 4))  # warm-up: first calls build caches
            for concurrency in CONCURRENCY:
                result = asyncio.run(load(server.url, image, args.requests, concurrency))
                rows.append({"adaptive_batching": batching, **result})
                print(
                    f"batching {'on ' if batching else 'off'} c={concurrency:<3} {result['requests_per_s']:7.1f} req/s "
                    f"p50 {result['p50_ms']:7.1f} ms  p99 {result['p99_ms']:7.1f} ms  errors {result['errors']}",
                    flush=True,
                )
        finally:
            server.stop()

    print(
        "\n| concurrency | batching | requests/s | p50 ms | p99 ms | errors |\n|---:|---|---:|---:|---:|---:|"
    )
    for r in rows:
        print(
            f"| {r['concurrency']} | {'on' if r['adaptive_batching'] else 'off'} | {r['requests_per_s']:.1f} "
            f"| {r['p50_ms']:.1f} | {r['p99_ms']:.1f} | {r['errors']} |"
        )
    print("\nthroughput, batching on / off:")
    for c in CONCURRENCY:
        on, off = (
            next(r for r in rows if r["concurrency"] == c and r["adaptive_batching"] is b)
            for b in (True, False)
        )
        print(f"  c={c}: {on['requests_per_s'] / off['requests_per_s']:.2f}×")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(
        json.dumps({"requests_per_level": args.requests, "rows": rows}, indent=2) + "\n"
    )
    print(f"→ {args.out}")


if __name__ == "__main__":
    main()
