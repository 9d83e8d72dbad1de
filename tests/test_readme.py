"""The README's "Declaring tasks" and "Enqueueing" code blocks work as written: the first as
`myapp/tasks.py`, run by a worker started with no URL (as the console would be), the second
as `enqueue.py` in another process that finds that worker's embedded server by itself."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def python_block(section: str) -> str:
    """The first ```python block under the README heading `section`."""
    text = (ROOT / "README.md").read_text()
    start = text.index(f"\n## {section}\n")
    match = re.compile(r"```python\n(.*?)```", re.S).search(text, start)
    assert match is not None, section
    return match.group(1)


@pytest.fixture
def project() -> Iterator[tuple[Path, dict[str, str]]]:
    """A fresh project directory and an environment with no Spool settings, whose state
    directory (short: the server's socket lives there) nobody else uses."""
    with tempfile.TemporaryDirectory(prefix="spool-readme-") as tmp:
        root = Path(tmp)
        (root / "myapp").mkdir()
        (root / "myapp" / "__init__.py").write_text("")
        (root / "myapp" / "tasks.py").write_text(python_block("Declaring tasks"))
        (root / "enqueue.py").write_text(python_block("Enqueueing"))
        env = {k: v for k, v in os.environ.items() if not k.startswith("SPOOL_")}
        env.update(XDG_STATE_HOME=str(root / "state"), PYTHONPATH=str(ROOT))
        yield root, env


def test_declaring_and_enqueueing_blocks_run_as_written(
    project: tuple[Path, dict[str, str]],
) -> None:
    root, env = project
    log = open(root / "worker.log", "wb")  # noqa: SIM115 - closed below
    worker = subprocess.Popen(
        [sys.executable, "-m", "spool_console.cli", "--no-ui", "--tasks", "myapp.tasks",
         "--status-interval", "60"],
        cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while "started on queues" not in (root / "worker.log").read_text():
            assert worker.poll() is None, (root / "worker.log").read_text()
            assert time.monotonic() < deadline, (root / "worker.log").read_text()
            time.sleep(0.05)
        run = subprocess.run(
            [sys.executable, "enqueue.py"], cwd=root, env=env, capture_output=True, timeout=60
        )
        out = run.stdout.decode()
        assert run.returncode == 0, out + run.stderr.decode()
        lines = out.splitlines()
        assert lines[0] == "{'path': 'a.png', 'width': 800}"
        assert lines[1] == "report for 2026-11-30"
        assert lines[2] == "scheduled True"
        assert "digest.send" in lines[3] and "every_s=60.0" in lines[3]
        assert lines[4] == "{'path': 'b.png', 'width': 800}"
    finally:
        worker.terminate()
        worker.wait(30)
        log.close()
    assert worker.returncode == 0, (root / "worker.log").read_text()
