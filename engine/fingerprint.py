"""Error fingerprints: group dead letters whose errors differ only in numbers, hex or uuids."""

from __future__ import annotations

import re

_UUID = re.compile(
    r"\b[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}\b"
)
# A bare hex run must mix digits and letters: an all-digit run is a number (and must fold like
# one, whatever its length), an all-letter run is most likely a word.
_HEX = re.compile(
    r"\b0x[0-9a-fA-F]+\b"
    r"|\b(?=[0-9a-fA-F]*[a-fA-F])(?=[0-9a-fA-F]*[0-9])[0-9a-fA-F]{8,}\b"
)
_NUM = re.compile(r"\d+(?:\.\d+)?")


def fold_message(message: str) -> str:
    """The first line of `message` with uuids, hex runs and numbers replaced by placeholders."""
    line = message.strip().splitlines()[0] if message.strip() else ""
    line = _UUID.sub("<uuid>", line)
    line = _HEX.sub("<hex>", line)
    line = _NUM.sub("<n>", line)
    return line[:300]


def fingerprint(exc_type: str, message: str) -> str:
    """A stable group key: exception type plus the folded message."""
    return f"{exc_type}: {fold_message(message)}"
