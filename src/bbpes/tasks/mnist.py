"""MNIST: the standard IDX files, found in a directory, checked, or downloaded.

Where the files are looked for, in order: the `directory` argument; `$BBPES_DATA`
(the files themselves or a `mnist/` folder in it); the cache
(`$BBPES_CACHE/mnist`, else `$XDG_CACHE_HOME/bbpes/mnist`, else `~/.cache/bbpes/mnist`).
Each file may be gzipped (`*.gz`) or raw; its uncompressed bytes must have the sha256
of the published file. Missing files are downloaded into the cache when a mirror is
reachable; when neither works the error (`MnistUnavailable`, a `ConfigError`) says in
one line where it looked and how to fix it.

Two ways of splitting, reported in every output as `MnistData.source`:

- `"standard"`: train on `train-*` (60,000 images), test on `t10k-*` (10,000).
- `"t10k"`: only the test set is at hand (as in this project's CI data): train on images
  from its first 5,000 and test on its last 5,000.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import tempfile
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import ConfigError

MIRRORS = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
)

# sha256 of the uncompressed IDX bytes (the published .gz files decompress to these).
SHA256 = {
    "train-images-idx3-ubyte": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
    "train-labels-idx1-ubyte": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
    "t10k-images-idx3-ubyte": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
    "t10k-labels-idx1-ubyte": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
}
SPLITS = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
T10K_HALF = 5_000  # "t10k" source: train from [0, 5000), test on [5000, 10000)
SOURCES = ("auto", "standard", "t10k")
SCALINGS = ("unit", "standardize")
MNIST_MEAN, MNIST_STD = 0.1307, 0.3081  # of pixels / 255 over the training set


class MnistUnavailable(ConfigError):
    """The MNIST files could not be found, checked or downloaded."""


def cache_dir() -> Path:
    if os.environ.get("BBPES_CACHE"):
        return Path(os.environ["BBPES_CACHE"]) / "mnist"
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "bbpes" / "mnist"


def search_dirs(directory: str | os.PathLike | None = None) -> list[Path]:
    """The directories looked in, in order (see the module docstring)."""
    if directory:
        return [Path(directory)]
    found = []
    if os.environ.get("BBPES_DATA"):
        data = Path(os.environ["BBPES_DATA"])
        found += [data, data / "mnist"]
    return [*found, cache_dir()]


def find_file(directory: Path, name: str) -> Path | None:
    """`directory/name` or `directory/name.gz`, whichever exists (raw first)."""
    for candidate in (directory / name, directory / f"{name}.gz"):
        if candidate.is_file():
            return candidate
    return None


def read_bytes(path: Path) -> bytes:
    """The uncompressed content of an IDX file (gzipped or raw)."""
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rb") as f:
                return f.read()
        return path.read_bytes()
    except (OSError, EOFError, gzip.BadGzipFile) as error:
        raise MnistUnavailable(f"cannot read {path}: {error}") from None


def parse_idx(data: bytes, where: str = "IDX data") -> np.ndarray:
    """Decode IDX bytes (unsigned-byte data only, as MNIST uses) into a uint8 array."""
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] != 0x08:
        raise MnistUnavailable(f"{where} is not an unsigned-byte IDX file (bad magic number)")
    ndim = data[3]
    header = 4 + 4 * ndim
    if len(data) < header:
        raise MnistUnavailable(f"{where} is truncated (header of {ndim} dimensions)")
    shape = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    size = int(np.prod(shape)) if shape else 0
    if len(data) - header != size:
        raise MnistUnavailable(
            f"{where} holds {len(data) - header} bytes of data, its header says {size}"
        )
    return np.frombuffer(data, np.uint8, offset=header).reshape(shape)


def read_idx(path: Path, sha256: str | None = None) -> np.ndarray:
    """Read and decode one IDX file; with `sha256`, check its uncompressed bytes first."""
    data = read_bytes(path)
    if sha256 is not None:
        digest = hashlib.sha256(data).hexdigest()
        if digest != sha256:
            raise MnistUnavailable(
                f"{path} has sha256 {digest[:12]}..., expected {sha256[:12]}... "
                "(a corrupt or different file: delete it to download it again)"
            )
    return parse_idx(data, str(path))


def download(
    names: Sequence[str],
    directory: Path,
    *,
    mirrors: Sequence[str] = MIRRORS,
    checksums: dict[str, str] = SHA256,
    timeout: float = 30.0,
) -> None:
    """Fetch `name.gz` for each name from the first mirror that serves it into
    `directory`, checking its sha256; a file is only renamed into place once checked."""
    directory.mkdir(parents=True, exist_ok=True)
    for name in names:
        errors = []
        for mirror in mirrors:
            url = mirror.rstrip("/") + f"/{name}.gz"
            try:
                with urllib.request.urlopen(url, timeout=timeout) as response:
                    payload = response.read()
                data = gzip.decompress(payload)
            except (urllib.error.URLError, OSError, EOFError, ValueError) as error:
                errors.append(f"{url}: {getattr(error, 'reason', error)}")
                continue
            digest = hashlib.sha256(data).hexdigest()
            if name in checksums and digest != checksums[name]:
                errors.append(f"{url}: sha256 mismatch")
                continue
            fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{name}.", suffix=".tmp")
            with os.fdopen(fd, "wb") as f:
                f.write(payload)
            os.replace(tmp, directory / f"{name}.gz")
            break
        else:
            raise MnistUnavailable(f"could not download {name}: {'; '.join(errors)}")


@dataclass(frozen=True)
class MnistFiles:
    """Where the files of each available split are (`paths[split] = (images, labels)`)."""

    directory: Path
    paths: dict[str, tuple[Path, Path]]


def files_in(place: Path) -> MnistFiles | None:
    """The splits whose two files are both in `place`; None without the test split."""
    paths = {}
    for split, names in SPLITS.items():
        found = [find_file(place, name) for name in names]
        if all(found):
            paths[split] = tuple(found)
    return MnistFiles(place, paths) if "test" in paths else None


def locate(directory: str | os.PathLike | None = None) -> MnistFiles | None:
    """The first searched directory that holds at least the test split, or None."""
    if directory and not Path(directory).is_dir():
        raise MnistUnavailable(f"MNIST directory {directory} does not exist")
    for place in search_dirs(directory):
        found = files_in(place)
        if found is not None:
            return found
    return None


def unavailable_message(directory, reason: str) -> str:
    places = ", ".join(str(p) for p in search_dirs(directory))
    return (
        f"MNIST not found in {places} and {reason}; put the IDX files (t10k-*, optionally "
        "train-*) in a directory and pass it with --set data_dir=DIR or BBPES_DATA=DIR"
    )


def mnist_files(
    directory: str | os.PathLike | None = None,
    *,
    need_train: bool = False,
    download_missing: bool = True,
    mirrors: Sequence[str] = MIRRORS,
    checksums: dict[str, str] = SHA256,
) -> MnistFiles:
    """Find the files (see the module docstring); when they are missing (or only the
    test split is there and `need_train`), download all four into the cache."""
    found = locate(directory)
    if found is not None and (not need_train or "train" in found.paths):
        return found
    if not download_missing:
        raise MnistUnavailable(unavailable_message(directory, "downloading is off"))
    target = cache_dir()
    names = [n for pair in SPLITS.values() for n in pair if find_file(target, n) is None]
    try:
        download(names, target, mirrors=mirrors, checksums=checksums)
    except MnistUnavailable as error:
        raise MnistUnavailable(unavailable_message(directory, str(error))) from None
    return files_in(target)


def load_split(
    files: MnistFiles, split: str, checksums: dict[str, str] = SHA256
) -> tuple[np.ndarray, np.ndarray]:
    """`(images, labels)` of `split`: uint8 arrays of shapes `(N, 28, 28)` and `(N,)`."""
    image_path, label_path = files.paths[split]
    images = read_idx(image_path, checksums.get(SPLITS[split][0]))
    labels = read_idx(label_path, checksums.get(SPLITS[split][1]))
    if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
        raise MnistUnavailable(
            f"{image_path} and {label_path} do not match: shapes {images.shape}, {labels.shape}"
        )
    return images, labels


def digit_subset(
    images: np.ndarray,
    labels: np.ndarray,
    digits: Sequence[int],
    per_digit: int | None = None,
    rng: np.random.Generator | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """The examples whose label is in `digits`, relabelled `0..len(digits)-1` in the
    order of `digits`. With `per_digit`, `per_digit` of each digit drawn without
    replacement by `rng` (in the original order when `rng` is None); raises
    `MnistUnavailable` if a digit has fewer."""
    chosen = []
    for digit in digits:
        index = np.flatnonzero(labels == digit)
        if per_digit is not None:
            if len(index) < per_digit:
                raise MnistUnavailable(
                    f"digit {digit} has {len(index)} examples here, fewer than {per_digit}"
                )
            index = (
                np.sort(rng.choice(index, per_digit, replace=False))
                if rng is not None
                else index[:per_digit]
            )
        chosen.append(index)
    index = np.sort(np.concatenate(chosen))
    relabel = np.full(256, -1, np.int64)
    relabel[np.asarray(digits)] = np.arange(len(digits))
    return images[index], relabel[labels[index]].astype(np.int32)


def scale_pixels(images: np.ndarray, scaling: str = "unit") -> np.ndarray:
    """uint8 images `(N, 28, 28)` as float32 vectors `(N, 784)`: `"unit"` maps pixels to
    [0, 1]; `"standardize"` then subtracts the MNIST mean and divides by its std."""
    x = images.reshape(len(images), -1).astype(np.float32) / 255.0
    if scaling == "unit":
        return x
    if scaling == "standardize":
        return (x - MNIST_MEAN) / MNIST_STD
    raise ValueError(f"unknown scaling {scaling!r}; known: {', '.join(SCALINGS)}")


@dataclass(frozen=True)
class MnistData:
    """Train and test arrays: `x` float32 `(N, 784)`, `y` int32 `(N,)` in
    `0..classes-1`; `source` says where the images came from (put it in every output)."""

    train_x: np.ndarray
    train_y: np.ndarray
    test_x: np.ndarray
    test_y: np.ndarray
    digits: tuple[int, ...]
    source: str
    split: str  # "standard" or "t10k"

    @property
    def classes(self) -> int:
        return len(self.digits)

    @property
    def split_tag(self) -> str:
        """A short form of `source` for figure titles."""
        if self.split == "t10k":
            return "MNIST t10k: train from 0-4999, test on 5000-9999"
        return "MNIST train / t10k"


def describe_source(source: str, directory: Path) -> str:
    if source == "t10k":
        return (
            f"MNIST t10k only ({directory}): train from test images 0-4999, "
            "evaluate on test images 5000-9999"
        )
    return f"MNIST standard split ({directory}): train on train-*, evaluate on t10k-*"


def load_mnist(
    directory: str | os.PathLike | None = None,
    *,
    digits: Sequence[int] = tuple(range(10)),
    train_per_digit: int | None = None,
    test_per_digit: int | None = None,
    source: str = "auto",
    scaling: str = "unit",
    seed: int = 0,
    download_missing: bool = True,
    mirrors: Sequence[str] = MIRRORS,
    checksums: dict[str, str] = SHA256,
) -> MnistData:
    """Load MNIST restricted to `digits`.

    **Arguments:**

    - `directory`: where the IDX files are (None: `$BBPES_DATA`, then the cache).
    - `train_per_digit`, `test_per_digit`: examples of each digit, drawn at random with
      `seed` (None: all of them).
    - `source`: `"standard"` (train-* / t10k-*), `"t10k"` (first / last 5,000 of t10k),
      or `"auto"` (standard when the train files are there, else t10k).
    - `scaling`: see `scale_pixels`.
    """
    if source not in SOURCES:
        raise ValueError(f"unknown source {source!r}; known: {', '.join(SOURCES)}")
    files = mnist_files(
        directory,
        need_train=source == "standard",
        download_missing=download_missing,
        mirrors=mirrors,
        checksums=checksums,
    )
    if source == "auto":
        source = "standard" if "train" in files.paths else "t10k"
    test_images, test_labels = load_split(files, "test", checksums)
    if source == "standard":
        train_images, train_labels = load_split(files, "train", checksums)
    else:
        train_images, train_labels = test_images[:T10K_HALF], test_labels[:T10K_HALF]
        test_images, test_labels = test_images[T10K_HALF:], test_labels[T10K_HALF:]
    rng = np.random.default_rng(seed)
    train = digit_subset(train_images, train_labels, digits, train_per_digit, rng)
    test = digit_subset(test_images, test_labels, digits, test_per_digit, rng)
    return MnistData(
        train_x=scale_pixels(train[0], scaling),
        train_y=train[1],
        test_x=scale_pixels(test[0], scaling),
        test_y=test[1],
        digits=tuple(int(d) for d in digits),
        source=describe_source(source, files.directory),
        split=source,
    )


def batch_indices(step: int, n: int, size: int, seed: int) -> np.ndarray:
    """The example indices of minibatch `step`: epochs of `n` examples, each a fresh
    permutation drawn from `(seed, epoch)`, cut into batches of `size` (the last
    partial batch of an epoch is dropped). A function of `step` only, as
    `bbpes.train.train` needs for exact resumes."""
    per_epoch = max(n // size, 1)
    epoch, within = divmod(step, per_epoch)
    order = np.random.default_rng([seed, epoch]).permutation(n)
    return order[within * size : (within + 1) * size]
