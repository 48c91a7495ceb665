"""Progress of long work: a live bar on a terminal, a periodic log line otherwise."""

from __future__ import annotations

import sys
import time
from typing import Any


def format_seconds(seconds: float) -> str:
    seconds = max(0.0, float(seconds))
    if seconds < 60:
        return f"{seconds:.0f}s"
    minutes, sec = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes}m{sec:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


def format_metrics(metrics: dict[str, Any], keys: tuple[str, ...]) -> str:
    parts = []
    for k in keys:
        v = metrics.get(k)
        if isinstance(v, (int, float)) and v is not None:
            parts.append(f"{k} {v:.4g}")
    return "  ".join(parts)


class Progress:
    """`with Progress(label, total) as p: p.update(done, metrics)`.

    Shows iteration, the chosen metrics (loss, accuracy...), elapsed time and ETA.
    `mode`: "auto" (bar on a terminal, lines every `interval` s otherwise), "bar",
    "lines" or "off".
    """

    def __init__(
        self,
        label: str,
        total: int,
        *,
        start: int = 0,
        keys: tuple[str, ...] = ("loss", "accuracy"),
        mode: str = "auto",
        interval: float = 10.0,
    ):
        if mode == "auto":
            mode = "bar" if sys.stderr.isatty() else "lines"
        self.label, self.total, self.start, self.keys = label, total, start, keys
        self.mode, self.interval = mode, interval
        self.shown: dict[str, Any] = {}
        self._bar = None

    def __enter__(self) -> Progress:
        self.t0 = self.last = time.perf_counter()
        if self.mode == "bar":
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
            )
            from rich.progress import Progress as RichProgress

            self._bar = RichProgress(
                TextColumn("[bold]{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[metrics]}"),
                TimeElapsedColumn(),
                TextColumn("ETA"),
                TimeRemainingColumn(),
                transient=False,
            )
            self._bar.__enter__()
            self._task = self._bar.add_task(
                self.label, total=self.total, completed=self.start, metrics=""
            )
        return self

    def update(self, done: int, metrics: dict[str, Any]) -> None:
        self.shown.update({k: v for k, v in metrics.items() if k in self.keys and v is not None})
        text = format_metrics(self.shown, self.keys)
        now = time.perf_counter()
        if self._bar is not None:
            self._bar.update(self._task, completed=done, metrics=text)
        elif self.mode == "lines" and (now - self.last >= self.interval or done == self.total):
            self.last = now
            print(self.line(done, now, text), file=sys.stderr, flush=True)

    def line(self, done: int, now: float, text: str) -> str:
        elapsed = now - self.t0
        rate = (done - self.start) / elapsed if elapsed > 0 else 0.0
        eta = (self.total - done) / rate if rate > 0 else float("nan")
        eta_text = format_seconds(eta) if eta == eta else "?"
        return (
            f"[{self.label}] {done}/{self.total}  {text}  "
            f"elapsed {format_seconds(elapsed)}  ETA {eta_text}"
        )

    def __exit__(self, *exc: Any) -> None:
        if self._bar is not None:
            self._bar.__exit__(*exc)


def log(message: str) -> None:
    """A status line for the user, on stderr (stdout is kept for results)."""
    print(message, file=sys.stderr, flush=True)
