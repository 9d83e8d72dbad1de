"""`AsyncPlot`: a PlotextPlot that builds its picture on a worker thread.

Building a plotext chart at 160×45 costs ~20 ms of pure Python, plus ~10 ms to turn its ANSI
output into a Rich `Text`. On the message loop that blocks key presses for the whole time (longer
while the engine thread competes for the GIL); on a thread the interpreter switches back to the
loop every few milliseconds, so keys are answered while a chart is being drawn.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from rich.text import Text
from textual import work
from textual.app import RenderResult
from textual_plotext import PlotextPlot
from textual_plotext.plot import Plot

Draw = Callable[[Plot], None]


class AsyncPlot(PlotextPlot):
    """Call `draw(fn, title)` with a function that fills the plot; the picture follows shortly.

    The title is the widget's border title, drawn by Textual: plotext drops a title wider than
    the plot (80 columns) and a picture built for the old size leaves it blank after a resize.
    """

    DEFAULT_CSS = """
    AsyncPlot { border: round $primary 50%; border-title-color: $text-accent; }
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._draw_fn: Draw | None = None
        self._picture: Text | None = None
        self._lock = threading.Lock()  # one build at a time: the plot object is not thread-safe
        self._generation = 0

    def draw(self, fn: Draw, title: str = "") -> None:
        """Replace what the chart shows; it is rebuilt off the message loop."""
        self._draw_fn = fn
        self.border_title = title
        self._schedule()

    def on_resize(self) -> None:
        self._schedule()

    def _schedule(self) -> None:
        if self._draw_fn is None or not self.is_mounted or not self.size.area:
            return
        self._generation += 1
        theme = self._get_plotext_theme_name(self.app.theme)
        size = self.content_size
        if not size.area:
            return
        self._build(self._generation, self._draw_fn, size.width, size.height, theme)

    @work(thread=True, group="plot")
    def _build(self, generation: int, fn: Draw, width: int, height: int, theme: str) -> None:
        with self._lock:
            if generation != self._generation:
                return  # a newer picture was asked for already
            plt = self.plt
            plt.clear_data()
            plt.clear_figure()
            fn(plt)
            plt.plotsize(width, height)
            plt._set_size(width, height)  # see PlotextPlot.render: resizing needs both
            plt.theme(theme)
            picture = Text.from_ansi(plt.build())
        self.app.call_from_thread(self._show, generation, picture)

    def _show(self, generation: int, picture: Text) -> None:
        if generation == self._generation or self._picture is None:
            self._picture = picture
            self.refresh()

    def render(self) -> RenderResult:
        return self._picture if self._picture is not None else Text("")
