"""`StatusBar`: the top line — Redis (masked), connected or not, fleet size, uptime, screens."""

from __future__ import annotations

import re

from rich.text import Text
from textual.reactive import reactive
from textual.widget import Widget

SCREENS = (("1", "Dashboard"), ("2", "Queues"), ("3", "Dead"), ("4", "Workers"), ("5", "Bench"))


def fmt_duration(seconds: float) -> str:
    """`3d 04h`, `2h 05m`, `4m 09s`, `12s`."""
    s = int(max(0, seconds))
    days, s = divmod(s, 86400)
    hours, s = divmod(s, 3600)
    minutes, s = divmod(s, 60)
    if days:
        return f"{days}d {hours:02d}h"
    if hours:
        return f"{hours}h {minutes:02d}m"
    if minutes:
        return f"{minutes}m {s:02d}s"
    return f"{s}s"


_CONNECTING = re.compile(r"Error \d+ connecting to \S+?\.\s+")
_EXC_TYPE = re.compile(r"^[A-Za-z_.]*(Error|Exception|Refused|Timeout)\w*: ")


def brief_reason(error: str, narrow: bool) -> str:
    """The reason Redis is down, short enough for the status line: redis-py's `Error 111
    connecting to host:port.` prefix repeats the URL shown at the end; narrow drops the type."""
    reason = _CONNECTING.sub("", error)
    if narrow:
        reason = _EXC_TYPE.sub("", reason)
    return reason.rstrip(".")


class StatusBar(Widget):
    """One line; turns red (class `-down`) when Redis is unreachable."""

    DEFAULT_CSS = """
    StatusBar {
        height: 1;
        width: 1fr;
        background: $primary-background;
        color: $text;
    }
    StatusBar.-down {
        background: $error;
        color: $text;
        text-style: bold;
    }
    """

    connected: reactive[bool] = reactive(False)
    url: reactive[str] = reactive("")
    error: reactive[str] = reactive("")
    fleet_size: reactive[int] = reactive(0)
    uptime_s: reactive[float] = reactive(0.0)
    dead: reactive[int] = reactive(0)
    current: reactive[str] = reactive("1")
    read_only: reactive[bool] = reactive(False)

    def watch_connected(self, connected: bool) -> None:
        self.set_class(not connected, "-down")

    def render(self) -> Text:
        narrow = self.size.width < 120
        text = Text(no_wrap=True, overflow="ellipsis")
        text.append(" spool ", style="bold reverse")
        text.append(" ")
        for key, name in SCREENS:
            if key == self.current:
                text.append(f"{key} {name}", style="bold reverse")
            else:
                text.append(key if narrow else f"{key} {name}", style="dim")
            text.append(" ")
        text.append("│ ")
        # What matters most comes first; the URL, the longest part, comes last, so a narrow
        # terminal cuts the URL rather than the dead count, the uptime or the reason.
        if self.connected:
            text.append("● " if narrow else "● connected ", style="bold green")
            sep = " │ "
            up = fmt_duration(self.uptime_s)
            text.append(f"fleet {self.fleet_size}{sep}dead {self.dead:,}{sep}up {up}")
        else:
            text.append("✖ REDIS DOWN", style="bold")
            if self.error:
                text.append(f" — {brief_reason(self.error, narrow)}")
        if self.read_only:
            text.append(" │ READ-ONLY", style="bold yellow")
        url = self.url
        limit = 30 if narrow else 60
        if len(url) > limit:  # long socket paths: keep both ends
            url = f"{url[: limit // 2 - 1]}…{url[-(limit // 2) :]}"
        text.append(f" │ {url}", style="dim" if self.connected else "")
        return text
