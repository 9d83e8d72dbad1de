"""`StaleNote`: a line under the status bar saying the numbers on screen are not current."""

from __future__ import annotations

import time

from rich.text import Text
from textual.reactive import reactive
from textual.widget import Widget


def stale_text(reason: str, data_at_s: float, now_s: float) -> str:
    """`numbers as of 12:03:04 (25 s ago): Redis unreachable`, or `no numbers yet: …`."""
    if data_at_s <= 0:
        return f"no numbers yet: {reason}"
    clock = time.strftime("%H:%M:%S", time.localtime(data_at_s))
    return f"numbers as of {clock} ({max(0.0, now_s - data_at_s):,.0f} s ago): {reason}"


class StaleNote(Widget):
    """Hidden while the numbers are fresh; a warning line while they are the last ones read."""

    DEFAULT_CSS = """
    StaleNote { height: 1; width: 1fr; background: $warning-muted; color: $text; display: none; }
    StaleNote.-stale { display: block; }
    """

    reason: reactive[str] = reactive("")
    data_at_s: reactive[float] = reactive(0.0)

    def watch_reason(self, reason: str) -> None:
        self.set_class(bool(reason), "-stale")

    def render(self) -> Text:
        text = Text(no_wrap=True, overflow="ellipsis")
        text.append(" ⚠ ", style="bold")
        text.append(stale_text(self.reason, self.data_at_s, time.time()))
        return text
