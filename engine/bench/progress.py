"""Live progress of a benchmark: a plain frozen record, and a one-line text bar for terminals."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class BenchProgress:
    """One progress sample (emitted ~5 times a second while a run is under way).

    `phase` names what is happening ("setup", "preload", "offer", "drain", "settle",
    "cleanup", or "c16/p1" style labels during scalability steps); `done`/`total` count
    settled tasks of the current step; `throughput_now` is tasks/s over the last sample and
    `p99_ms_now` the end-to-end p99 of the tasks settled since the previous sample.
    """

    phase: str
    done: int
    total: int
    elapsed_s: float
    throughput_now: float
    p99_ms_now: float


def render_bar(p: BenchProgress, width: int = 30) -> str:
    """`[#####.....]  12,345/50,000  3.2 s  41,000/s  p99 1.234 ms  drain` (no colours)."""
    share = 0.0 if p.total <= 0 else min(1.0, p.done / p.total)
    filled = int(share * width)
    bar = "#" * filled + "." * (width - filled)
    return (
        f"[{bar}] {p.done:>9,}/{p.total:<9,} {p.elapsed_s:6.1f} s "
        f"{p.throughput_now:>9,.0f}/s  p99 {p.p99_ms_now:8.3f} ms  {p.phase}"
    )
