"""Importing every engine module must not load Textual or rich (the engine runs headless)."""

from __future__ import annotations

import pkgutil
import subprocess
import sys
from pathlib import Path

import engine

ROOT = Path(__file__).resolve().parent.parent


def engine_modules() -> list[str]:
    found = ["engine"]
    found += [m.name for m in pkgutil.walk_packages(engine.__path__, prefix="engine.")]
    return sorted(set(found))


def test_engine_modules_are_discovered() -> None:
    names = engine_modules()
    for expected in ("engine.broker", "engine.client", "engine.codec", "engine.dead",
                     "engine.queues", "engine.scripts", "engine.connection", "engine.embedded"):
        assert expected in names


def test_importing_engine_loads_no_textual_or_rich() -> None:
    names = engine_modules()
    code = (
        "import importlib, sys\n"
        f"for name in {names!r}:\n"
        "    importlib.import_module(name)\n"
        "bad = sorted(m for m in sys.modules if m in ('textual', 'rich')"
        " or m.startswith(('textual.', 'rich.')))\n"
        "assert not bad, bad\n"
        "print(len(sys.modules))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr + proc.stdout
