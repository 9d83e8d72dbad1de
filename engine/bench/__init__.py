"""The benchmark suite: the same code runs from `spool-console bench` and the console's screen.

Never imports Textual. Public API: `run_benchmark`, `BenchParams`, `BenchReport`, `BenchProgress`.
"""

from __future__ import annotations

from engine.bench.params import TYPES, BenchParams
from engine.bench.progress import BenchProgress
from engine.bench.report import BenchReport
from engine.bench.runner import run_benchmark

__all__ = ["TYPES", "BenchParams", "BenchProgress", "BenchReport", "run_benchmark"]
