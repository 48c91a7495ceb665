"""The settings of the MNIST experiments, declared once (`bbpes.settings.Setting`): the
data (`DATA`, `per_digit`: `nne-mnist`, `nne-vs-es`, `dopamine-mnist`) and neural net
evolution's split, network and population (`SPLIT`: the two NNE experiments), with the
checks that involve several of them (`check_data`, `check_split`) and the bytes an
evolution strategy's population holds (`dense_population_bytes`)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..errors import ConfigError
from ..settings import Setting
from .mnist import SCALINGS, SOURCES, locate

MOST_TRAIN_PER_DIGIT = 6742
"""Images of the most frequent digit (1) in MNIST's 60,000 training images."""
MOST_TEST_PER_DIGIT = 1135
"""Images of the most frequent digit (1) in MNIST's 10,000 test images."""

DATA = (
    Setting(
        "data_dir",
        "",
        "directory of the MNIST IDX files ('' = $BBPES_DATA, then the cache, then download)",
    ),
    Setting(
        "data_source",
        "auto",
        "standard (train-*/t10k-*), t10k (first/last 5000 of t10k) or auto",
        choices=SOURCES,
    ),
    Setting("scaling", "unit", "pixels in [0, 1] (unit) or standardized", choices=SCALINGS),
)
"""Where the images come from and how their pixels are scaled (`bbpes.tasks.mnist`)."""


def per_digit(
    train: tuple[int, Any],
    test: tuple[int, Any],
    *,
    train_zero: str = "",
    train_help: str = "training images per digit",
) -> tuple[Setting, Setting]:
    """`train_per_digit` and `test_per_digit`, each `(default, --quick value)`: at least
    1 and at most what MNIST holds of its most frequent digit; 0 means every test image,
    and every training image where `train_zero` says so. (The t10k split holds about
    half as many; a larger request is refused when the data are loaded.)"""
    return (
        Setting(
            "train_per_digit",
            train[0],
            train_help,
            low=1,
            high=MOST_TRAIN_PER_DIGIT,
            zero=train_zero,
            quick=train[1],
        ),
        Setting(
            "test_per_digit",
            test[0],
            "test images per digit",
            low=1,
            high=MOST_TEST_PER_DIGIT,
            zero="every test image",
            quick=test[1],
        ),
    )


def check_data(config: Mapping[str, Any]) -> None:
    """`data_dir`, when given, holds the MNIST files."""
    if config["data_dir"] and locate(config["data_dir"]) is None:
        raise ConfigError(f"no MNIST files in {config['data_dir']}")


ES_METHODS = ("es", "evosax:Open_ES")
"""The evolution strategies (`bbpes.signals` names) of the NNE experiments: a dense MLP
of the NNE network's layer sizes."""

SPLIT = (
    *DATA,
    Setting("classes", 5, "digits 0..classes-1 (5: MNIST 0-4, 10: MNIST 0-9)", choices=(5, 10)),
    *per_digit(
        (200, 40), (0, 100), train_help="training images per digit (the set S; the paper: 200)"
    ),
    Setting(
        "hidden",
        1000,
        "hidden ReLU units, NNE's sparse network and ES's dense MLP (the paper: 1000)",
        low=1,
    ),
    Setting(
        "edge_prob",
        0.1,
        "probability of each input-hidden edge of NNE's network (the paper: 0.1)",
        positive=True,
        high=1,
    ),
    Setting("genes", 5000, "number of genes n", low=1, quick=1000),
    Setting(
        "beta",
        0.0025,
        "density of the weight-generation matrix W (the paper: 0.0025)",
        positive=True,
        high=1,
    ),
    Setting(
        "epsilon",
        10.0,
        "selection strength of NNE's Eq. 3 (the paper does not give it; see docs)",
        positive=True,
    ),
    Setting("sigma", 0.02, "ES search std per weight (es and evosax:Open_ES)", positive=True),
    Setting(
        "lr_es",
        0.03,
        "Adam learning rate on the ES gradient (es and evosax:Open_ES)",
        positive=True,
    ),
    Setting(
        "image_block", 100, "training images per block of NNE's population forward pass", low=1
    ),
    Setting(
        "hidden_block", 10, "hidden units per cache block of NNE's population forward pass", low=1
    ),
)
"""The split, network and population settings both NNE experiments share (the paper's
where it gives them); each declares its own `batch_images`, `population`, `chunk` and
method setting."""


def check_split(config: Mapping[str, Any]) -> None:
    """What the split, network and population settings ask of each other: `chunk`
    divides `population`, `image_block` divides the training images and `batch_images`
    (at most all of them), `hidden_block` at most `hidden`."""
    check_data(config)
    n_train = config["train_per_digit"] * config["classes"]
    rules = (
        (
            config["batch_images"] % config["image_block"] == 0,
            f"batch_images must be a multiple of image_block ({config['image_block']})",
        ),
        (
            config["population"] % config["chunk"] == 0,
            f"chunk {config['chunk']} must divide population {config['population']}",
        ),
        (
            n_train % config["image_block"] == 0,
            f"image_block {config['image_block']} must divide the {n_train} training images",
        ),
        (
            config["batch_images"] <= n_train,
            f"batch_images must be at most the {n_train} training images",
        ),
        (
            config["hidden_block"] <= config["hidden"],
            f"hidden_block must be <= hidden ({config['hidden']})",
        ),
    )
    for holds, message in rules:
        if not holds:
            raise ConfigError(message)


def check_es(config: Mapping[str, Any], methods: list[str]) -> None:
    """With an ES among `methods`: an even `population` (mirrored pairs)."""
    if any(m in ES_METHODS for m in methods) and config["population"] % 2:
        raise ConfigError("population must be even for ES (mirrored pairs)")


def dense_population_bytes(config: Mapping[str, Any]) -> float:
    """A lower bound on the bytes of `chunk` perturbed dense MLPs (784-`hidden`-C,
    float32) and their hidden activations on a step's images, evaluated at once."""
    weights = (28 * 28 + 1) * config["hidden"] + (config["hidden"] + 1) * config["classes"]
    images = config["batch_images"] or config["train_per_digit"] * config["classes"]
    return 4.0 * config["chunk"] * (weights + images * config["hidden"])
