"""The MNIST settings that `nne-mnist` and `dopamine-mnist` share, and their checks."""

from __future__ import annotations

from typing import Any

from ..tasks.mnist import SCALINGS, SOURCES, locate
from .base import require

DATA_DEFAULTS = {
    "data_dir": "",
    "data_source": "auto",
    "scaling": "unit",
}
DATA_HELP = {
    "data_dir": "directory of the MNIST IDX files ('' = $BBPES_DATA, then the cache, then download)",
    "data_source": "standard (train-*/t10k-*), t10k (first/last 5000 of t10k) or auto",
    "scaling": "pixels in [0, 1] (unit) or standardized",
}
DATA_CHOICES = {"data_source": SOURCES, "scaling": SCALINGS}

MOST_TRAIN_PER_DIGIT = 6742
"""Images of the most frequent digit (1) in MNIST's 60,000 training images."""
MOST_TEST_PER_DIGIT = 1135
"""Images of the most frequent digit (1) in MNIST's 10,000 test images."""


def check_data(config: dict[str, Any], *, train_zero_is_all: bool) -> None:
    """`train_per_digit` (0 = every image only where `train_zero_is_all`) and
    `test_per_digit` (0 = every image) within what MNIST holds, and `data_dir` holds
    the files. (The t10k split holds about half as many of each digit as a bound
    allows; a larger request is refused when the data are loaded.)"""
    low = 0 if train_zero_is_all else 1
    require(
        low <= config["train_per_digit"] <= MOST_TRAIN_PER_DIGIT,
        f"train_per_digit must be in {low}..{MOST_TRAIN_PER_DIGIT}"
        + (" (0: every image)" if train_zero_is_all else ""),
    )
    require(
        0 <= config["test_per_digit"] <= MOST_TEST_PER_DIGIT,
        f"test_per_digit must be in 0..{MOST_TEST_PER_DIGIT} (0: every image)",
    )
    if config["data_dir"]:
        require(locate(config["data_dir"]) is not None, f"no MNIST files in {config['data_dir']}")
