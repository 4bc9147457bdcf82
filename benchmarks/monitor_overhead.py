"""What recording costs the service: `/classify` with the monitor's recorder on and off, side by
side in one run.

Two `bentoml serve umcl.service:UMCL` of the same champion start on free loopback ports, one
recording into a temporary store and one with UMCL_MONITOR=off; both are warmed up, then get the
same load (one demo DICOM per request) in alternating rounds — on, off, on, off, … — from 1 and
from 32 concurrent clients, so that a slow moment of this shared machine falls on both. Reported
per setting: the median over rounds of requests/s and of p50/p99 latency, and the on/off
throughput ratio; then how many records the store holds (every answered request: one).

    python -m benchmarks.monitor_overhead [--rounds 5] [--requests 160] [--model umcl:<version>]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
from datetime import UTC, datetime
from pathlib import Path

from benchmarks.serve_load import REPO, Server, demo_image, load
from umcl import registry
from umcl.monitor.store import read_records

CONCURRENCY = (1, 32)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=5, help="alternating rounds per setting")
    parser.add_argument("--requests", type=int, default=160, help="requests per round at c=32")
    parser.add_argument("--model", help="umcl:<version> (default: the store's champion)")
    parser.add_argument("--triplets", type=Path, default=REPO / "data/unified/triplets.parquet")
    parser.add_argument("--locator", type=Path, default=REPO / "data/locator")
    parser.add_argument(
        "--out", type=Path, default=REPO / "benchmarks/results/monitor_overhead.json"
    )
    args = parser.parse_args()
    tag = args.model or registry.champion().tag
    image = demo_image(args.triplets, args.locator).read_bytes()
    work = Path(tempfile.mkdtemp(prefix="umcl-monitor-overhead-"))
    store = work / "records"
    started = datetime.now(UTC)
    servers = {
        "on": Server({"UMCL_MODEL": tag, "UMCL_MONITOR_DIR": str(store)}, work / "on.log"),
        "off": Server({"UMCL_MODEL": tag, "UMCL_MONITOR": "off"}, work / "off.log"),
    }
    runs: dict[tuple[str, int], list[dict]] = {}
    answered = 0
    try:
        for server in servers.values():
            server.wait_ready()
            asyncio.run(load(server.url, image, 32, 8))  # warm-up: first calls build caches
        answered += 32
        for round_ in range(args.rounds):
            for concurrency in CONCURRENCY:
                requests = args.requests if concurrency > 1 else args.requests // 4
                for setting, server in servers.items():
                    result = asyncio.run(load(server.url, image, requests, concurrency))
                    runs.setdefault((setting, concurrency), []).append(result)
                    if setting == "on":
                        answered += requests - result["errors"]
                    print(
                        f"round {round_ + 1} recorder {setting:<3} c={concurrency:<3} "
                        f"{result['requests_per_s']:6.1f} req/s p50 {result['p50_ms']:6.1f} ms "
                        f"p99 {result['p99_ms']:6.1f} ms errors {result['errors']}",
                        flush=True,
                    )
    finally:
        for server in servers.values():
            server.stop()  # SIGTERM: the recording service writes its last batch

    table, unreadable = read_records(store, tag, started, datetime.now(UTC))
    rows = []
    for (setting, concurrency), results in runs.items():
        rows.append(
            {
                "recorder": setting,
                "concurrency": concurrency,
                "rounds": len(results),
                "requests_per_s": statistics.median(r["requests_per_s"] for r in results),
                "p50_ms": statistics.median(r["p50_ms"] for r in results),
                "p99_ms": statistics.median(r["p99_ms"] for r in results),
                "errors": sum(r["errors"] for r in results),
            }
        )
    print("\n| concurrency | recorder | requests/s (median) | p50 ms | p99 ms | errors |")
    print("|---:|---|---:|---:|---:|---:|")
    for r in sorted(rows, key=lambda r: (r["concurrency"], r["recorder"])):
        print(
            f"| {r['concurrency']} | {r['recorder']} | {r['requests_per_s']:.1f} | {r['p50_ms']:.1f} "
            f"| {r['p99_ms']:.1f} | {r['errors']} |"
        )
    ratios = {}
    for concurrency in CONCURRENCY:
        on, off = (
            next(r for r in rows if r["recorder"] == s and r["concurrency"] == concurrency)
            for s in ("on", "off")
        )
        ratios[concurrency] = on["requests_per_s"] / off["requests_per_s"]
        print(f"throughput recorder on / off, c={concurrency}: {ratios[concurrency]:.3f}×")
    stored = 0 if table is None else table.num_rows
    print(
        f"records in the store: {stored} of {answered} answered requests; unreadable files: {len(unreadable)}"
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(
        json.dumps(
            {
                "model": tag,
                "rounds": args.rounds,
                "requests": args.requests,
                "rows": rows,
                "throughput_ratio_on_off": ratios,
                "records": stored,
                "answered": answered,
            },
            indent=2,
        )
        + "\n"
    )
    print(f"→ {args.out}")


if __name__ == "__main__":
    main()
