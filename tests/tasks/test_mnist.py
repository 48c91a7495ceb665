"""The MNIST loader: checksums, splits, digit subsets, downloads, and clear errors."""

from __future__ import annotations

import gzip
import hashlib
import http.server
import shutil
import threading
from contextlib import contextmanager
from functools import partial

import numpy as np
import pytest

from bbpes.errors import ConfigError
from bbpes.tasks import mnist
from bbpes.tasks.mnist import (
    MnistUnavailable,
    batch_indices,
    digit_subset,
    download,
    load_mnist,
    parse_idx,
    scale_pixels,
)

T10K = ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")


@pytest.fixture
def no_env(monkeypatch, tmp_path):
    """No $BBPES_DATA, and an empty cache of our own."""
    monkeypatch.delenv("BBPES_DATA", raising=False)
    monkeypatch.setenv("BBPES_CACHE", str(tmp_path / "cache"))


def raw_copy(mnist_dir, target, names=T10K):
    target.mkdir(parents=True, exist_ok=True)
    for name in names:
        with gzip.open(mnist_dir / f"{name}.gz") as f:
            (target / name).write_bytes(f.read())


@contextmanager
def file_server(directory):
    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), partial(Quiet, directory=str(directory))
    )
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_t10k_only_trains_on_the_first_half_and_tests_on_the_second(mnist_dir, no_env):
    data = load_mnist(mnist_dir)
    assert data.split == "t10k"
    assert "0-4999" in data.source and "5000-9999" in data.source
    assert data.train_x.shape == (5000, 784) and data.test_x.shape == (5000, 784)
    assert (
        data.train_x.dtype == np.float32 and 0.0 <= data.train_x.min() < data.train_x.max() <= 1.0
    )
    # The halves are the file's halves, in order.
    images, labels = mnist.load_split(mnist.locate(mnist_dir), "test")
    np.testing.assert_array_equal(data.train_y, labels[:5000])
    np.testing.assert_array_equal(data.test_x, scale_pixels(images[5000:]))


def test_bbpes_data_is_searched(mnist_dir, monkeypatch, tmp_path):
    monkeypatch.setenv("BBPES_DATA", str(mnist_dir))
    monkeypatch.setenv("BBPES_CACHE", str(tmp_path))
    assert mnist.locate().directory == mnist_dir


def test_digit_subsets_and_samples_per_digit(mnist_dir, no_env):
    data = load_mnist(mnist_dir, digits=(3, 7), train_per_digit=20, test_per_digit=5, seed=1)
    assert data.classes == 2
    assert np.bincount(data.train_y).tolist() == [20, 20]
    assert np.bincount(data.test_y).tolist() == [5, 5]
    # Relabelled in the order of `digits`: 3 -> 0, 7 -> 1.
    images, labels = mnist.load_split(mnist.locate(mnist_dir), "test")
    threes = scale_pixels(images[:5000][labels[:5000] == 3])
    assert all((threes == x).all(1).any() for x in data.train_x[data.train_y == 0])
    again = load_mnist(mnist_dir, digits=(3, 7), train_per_digit=20, test_per_digit=5, seed=1)
    np.testing.assert_array_equal(again.train_x, data.train_x)
    other = load_mnist(mnist_dir, digits=(3, 7), train_per_digit=20, test_per_digit=5, seed=2)
    assert not np.array_equal(other.train_x, data.train_x)
    five = load_mnist(mnist_dir, digits=range(5), train_per_digit=200)
    assert set(five.train_y.tolist()) == set(range(5)) and len(five.train_x) == 1000
    assert set(five.test_y.tolist()) == set(range(5))


def test_too_few_examples_of_a_digit_is_a_clear_error():
    images = np.zeros((3, 28, 28), np.uint8)
    with pytest.raises(MnistUnavailable, match="digit 1 has 1 examples"):
        digit_subset(images, np.array([0, 1, 0]), (0, 1), per_digit=2)


def test_pixel_scalings():
    images = np.array([[[0, 255]]], np.uint8)
    np.testing.assert_allclose(scale_pixels(images), [[0.0, 1.0]])
    np.testing.assert_allclose(
        scale_pixels(images, "standardize"),
        [[-mnist.MNIST_MEAN / mnist.MNIST_STD, (1 - mnist.MNIST_MEAN) / mnist.MNIST_STD]],
        rtol=1e-6,
    )
    with pytest.raises(ValueError, match="unknown scaling"):
        scale_pixels(images, "log")


def test_idx_parsing_and_its_errors():
    data = bytes([0, 0, 8, 2, 0, 0, 0, 2, 0, 0, 0, 3, *range(6)])
    np.testing.assert_array_equal(parse_idx(data), np.arange(6).reshape(2, 3))
    with pytest.raises(MnistUnavailable, match="bad magic"):
        parse_idx(bytes([0, 0, 9, 1, 0, 0, 0, 1, 5]))
    with pytest.raises(MnistUnavailable, match="holds 5 bytes of data, its header says 6"):
        parse_idx(data[:-1])


def test_raw_files_load_and_a_changed_byte_fails_the_checksum(mnist_dir, tmp_path, no_env):
    raw_copy(mnist_dir, tmp_path / "raw")
    data = load_mnist(tmp_path / "raw", digits=(0,))
    assert data.split == "t10k" and len(data.train_x) > 0
    path = tmp_path / "raw" / T10K[0]
    content = bytearray(path.read_bytes())
    content[5000] ^= 0xFF
    path.write_bytes(bytes(content))
    with pytest.raises(MnistUnavailable, match="sha256") as error:
        load_mnist(tmp_path / "raw")
    assert str(path) in str(error.value) and "\n" not in str(error.value)


def test_a_truncated_gzip_file_is_a_clear_error(mnist_dir, tmp_path, no_env):
    (tmp_path / "bad").mkdir()
    shutil.copy(mnist_dir / f"{T10K[1]}.gz", tmp_path / "bad")
    payload = (mnist_dir / f"{T10K[0]}.gz").read_bytes()
    (tmp_path / "bad" / f"{T10K[0]}.gz").write_bytes(payload[: len(payload) // 2])
    with pytest.raises(MnistUnavailable, match="cannot read"):
        load_mnist(tmp_path / "bad")


def test_nothing_found_and_no_network_is_one_line_naming_the_fix(tmp_path, no_env):
    with pytest.raises(ConfigError) as error:
        load_mnist(mirrors=["http://127.0.0.1:1/"])
    message = str(error.value)
    assert "\n" not in message and "BBPES_DATA" in message and "could not download" in message
    with pytest.raises(ConfigError, match="does not exist"):
        load_mnist(tmp_path / "nowhere")
    with pytest.raises(ConfigError, match="downloading is off"):
        load_mnist(download_missing=False)


def test_download_from_a_mirror_with_checksums(mnist_dir, tmp_path):
    served = tmp_path / "served"
    served.mkdir()
    for name in T10K:
        shutil.copy(mnist_dir / f"{name}.gz", served)
    target = tmp_path / "cache"
    with file_server(served) as url:
        # A dead mirror first: the next one is tried.
        download(T10K, target, mirrors=["http://127.0.0.1:1/", url])
    assert sorted(p.name for p in target.iterdir()) == sorted(f"{n}.gz" for n in T10K)
    images, labels = mnist.load_split(mnist.files_in(target), "test")
    assert images.shape == (10000, 28, 28) and labels.shape == (10000,)

    # A mirror serving a different file: refused, and nothing is left behind.
    (served / f"{T10K[1]}.gz").write_bytes(gzip.compress(b"not mnist"))
    with file_server(served) as url, pytest.raises(MnistUnavailable, match="sha256 mismatch"):
        download([T10K[1]], tmp_path / "other", mirrors=[url])
    assert list((tmp_path / "other").iterdir()) == []


def test_missing_files_are_downloaded_into_the_cache(mnist_dir, tmp_path, no_env):
    """The whole path `load_mnist` -> download, with made-up train files."""
    served = tmp_path / "served"
    served.mkdir()
    checksums = dict(mnist.SHA256)
    for split in ("test", "train"):
        for name, source in zip(mnist.SPLITS[split], T10K):
            with gzip.open(mnist_dir / f"{source}.gz") as f:
                content = f.read()
            checksums[name] = hashlib.sha256(content).hexdigest()
            (served / f"{name}.gz").write_bytes(gzip.compress(content, compresslevel=1))
    with file_server(served) as url:
        data = load_mnist(mirrors=[url], digits=(0, 1), checksums=checksums)
    # The train files were there, so the standard split is used.
    assert data.split == "standard" and "train-*" in data.source
    assert (tmp_path / "cache" / "mnist" / "train-images-idx3-ubyte.gz").exists()


def test_batches_cover_each_epoch_and_depend_on_the_step_only():
    first_epoch = np.concatenate([batch_indices(i, 10, 3, seed=0) for i in range(3)])
    assert len(set(first_epoch.tolist())) == 9
    np.testing.assert_array_equal(batch_indices(4, 10, 3, 0), batch_indices(4, 10, 3, 0))
    assert not np.array_equal(batch_indices(0, 10, 3, 0), batch_indices(3, 10, 3, 0))
