"""What the one-shot commands print: aligned tables for people, JSON for scripts; exit codes."""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from typing import Any, TextIO

import orjson

#: Exit codes of every `spool-console` command (the README lists them).
EXIT_OK = 0
EXIT_FAILED = 1  # the operation failed or was not confirmed; a benchmark timed out
EXIT_USAGE = 2  # a bad option value or a bad combination of options
EXIT_UNAVAILABLE = 3  # Redis could not be reached
EXIT_NOT_FOUND = 4  # no such task or dead letter
EXIT_INTERRUPTED = 130  # Ctrl-C


class CommandError(Exception):
    """Ends a command with `code` and a one-line `message` on stderr."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class Output:
    """Where a command writes: `--json` documents, or tables and lines for people."""

    def __init__(self, as_json: bool, out: TextIO | None = None) -> None:
        self.as_json = as_json
        self.out = out or sys.stdout

    def json(self, doc: Any) -> None:
        """One JSON document on stdout."""
        self.out.write(orjson.dumps(doc, option=orjson.OPT_INDENT_2).decode() + "\n")

    def line(self, text: str = "") -> None:
        """A line for people."""
        self.out.write(text + "\n")

    def table(self, headers: Sequence[str], rows: Sequence[Sequence[Any]], empty: str) -> None:
        """Columns padded to their widest cell; numbers right-aligned; `empty` if no rows."""
        if not rows:
            self.line(empty)
            return
        cells = [[_cell(v) for v in row] for row in rows]
        widths = [max(len(h), *(len(r[i]) for r in cells)) for i, h in enumerate(headers)]
        numeric = [all(isinstance(r[i], int | float) for r in rows) for i in range(len(headers))]

        def fmt(values: Sequence[str]) -> str:
            return "  ".join(
                v.rjust(w) if num else v.ljust(w)
                for v, w, num in zip(values, widths, numeric, strict=True)
            ).rstrip()

        self.line(fmt([h.upper() for h in headers]))
        for r in cells:
            self.line(fmt(r))


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    text = str(value)
    return text if len(text) <= 60 else text[:59] + "…"


def age(ms: int | float | None, now_s: float | None = None) -> str:
    """How long ago an epoch-ms time was, compactly (`42s`, `7m`, `3h`, `2d`)."""
    if not ms:
        return "-"
    seconds = max(0.0, (now_s if now_s is not None else time.time()) - ms / 1000)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{int(seconds // size)}{unit}"
    return f"{int(seconds)}s"


def confirm(prompt: str, assume_yes: bool) -> bool:
    """Ask on the terminal unless `assume_yes`; without a terminal, only `--yes` confirms."""
    if assume_yes:
        return True
    if not sys.stdin.isatty():
        raise CommandError(EXIT_FAILED, f"{prompt} — not confirmed (no terminal); add --yes")
    sys.stderr.write(f"{prompt} [y/N] ")
    sys.stderr.flush()
    return sys.stdin.readline().strip().lower() in ("y", "yes")
