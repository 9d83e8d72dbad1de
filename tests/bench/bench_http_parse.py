"""Micro-benchmark: a 100-task batch body parsed into TaskSpecs (decode + validation), the
CPU part of POST /v1/tasks/batch. Run: ``python tests/bench/bench_http_parse.py``."""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # run from anywhere in the repo

import msgspec
import orjson

from engine.http.contract import BatchRequest
from engine.http.validation import batch_specs

BODY = orjson.dumps(
    {"tasks": [{"name": "spool.noop", "args": [i], "kwargs": {}, "queue": "default", "delay": 1}
               for i in range(100)]}
)


def main() -> None:
    """Print the median tasks/s of 7 runs of 2,000 bodies."""
    decoder = msgspec.json.Decoder(BatchRequest)
    runs = []
    for _ in range(7):
        t0 = time.perf_counter()
        for _ in range(2000):
            batch_specs(decoder.decode(BODY), 1000, 0)
        runs.append(2000 * 100 / (time.perf_counter() - t0))
    print(f"batch body -> specs: median {statistics.median(runs):,.0f} tasks/s (7 runs)")


if __name__ == "__main__":
    main()
