"""A run directory: config.json, history.jsonl, metrics.json, figures and checkpoints.

Every file is written atomically (to a temporary name, then renamed), so a run killed
at any moment leaves either the old file or the new one, never half of one.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np

CONFIG = "config.json"
HISTORY = "history.jsonl"
METRICS = "metrics.json"
CHECKPOINTS = "checkpoints"


def to_jsonable(value: Any) -> Any:
    """Numbers, arrays and containers as plain JSON values (non-finite floats -> None)."""
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v) for v in value]
    if hasattr(value, "shape") and hasattr(value, "dtype"):
        arr = np.asarray(value)
        return to_jsonable(arr.item() if arr.ndim == 0 else arr.tolist())
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, Path):
        return str(value)
    return value


def atomic_write_bytes(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_json(path: Path, obj: Any) -> None:
    atomic_write_bytes(path, (json.dumps(to_jsonable(obj), indent=2) + "\n").encode())


def save_figure(fig: Any, path: Path, **kwargs: Any) -> Path:
    """Save a matplotlib figure atomically as PNG and close it."""
    import matplotlib.pyplot as plt

    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=".png")
    os.close(fd)
    try:
        fig.savefig(tmp, dpi=kwargs.pop("dpi", 120), bbox_inches="tight", **kwargs)
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)
        plt.close(fig)
    return path


class RunDir:
    """The output directory of one `bbpes run`."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)

    def file(self, name: str) -> Path:
        return self.path / name

    def holds_run(self) -> bool:
        return self.file(CONFIG).exists()

    def read_config(self) -> dict[str, Any]:
        return json.loads(self.file(CONFIG).read_text())

    def write_json(self, name: str, obj: Any) -> Path:
        atomic_write_json(self.file(name), obj)
        return self.file(name)

    def save_figure(self, fig: Any, name: str) -> Path:
        return save_figure(fig, self.file(name))

    def checkpoint(self, label: str) -> Path:
        safe = "".join(c if c.isalnum() or c in "-_.=" else "_" for c in label)
        return self.path / CHECKPOINTS / f"{safe}.eqx"

    # history.jsonl: one JSON object per line, every line of one training carries its label.
    def append_history(self, records: Iterable[dict[str, Any]]) -> None:
        self.path.mkdir(parents=True, exist_ok=True)
        with open(self.file(HISTORY), "a") as f:
            for record in records:
                f.write(json.dumps(to_jsonable(record)) + "\n")
            f.flush()

    def read_history(self, keep: Callable[[dict], bool] = lambda r: True) -> list[dict]:
        if not self.file(HISTORY).exists():
            return []
        records = []
        for line in self.file(HISTORY).read_text().splitlines():
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError:  # a line cut short by a kill
                continue
            if keep(record):
                records.append(record)
        return records

    def drop_history(self, drop: Callable[[dict], bool]) -> None:
        """Rewrite history.jsonl without the records `drop` selects (used on resume)."""
        if not self.file(HISTORY).exists():
            return
        kept = self.read_history(lambda r: not drop(r))
        atomic_write_bytes(self.file(HISTORY), "".join(json.dumps(r) + "\n" for r in kept).encode())
