"""A user's NEURON mechanisms (`.mod` files): compiled once with `nrnivmodl` into a
cache keyed by their content, and loaded into this process's NEURON.

Every Ray worker, and the driver that checks the cell first, calls
`load_mechanisms(directory)`. The first caller compiles (under a file lock, so that
workers starting together compile once) into `cache_root() / <hash>`, where the hash
covers the directory's source files (`.mod`, and the `.inc`, `.h`, `.c`, `.cpp` they
may include), NEURON's version and the machine; the others find the library there.
Editing a `.mod` file changes the hash: the next run compiles anew.

A mechanism whose name NEURON already knows (built in, or loaded before in this
process from the same or another copy) is not loaded twice: NEURON refuses a second
definition of a name.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from ..errors import ConfigError
from ._neuron import INSTALL, hoc

SOURCES = (".mod", ".inc", ".h", ".c", ".cpp", ".hpp")
"""The files of a mechanisms directory that are compiled (or included) and hashed."""

_NAME = re.compile(r"^\s*(SUFFIX|POINT_PROCESS|ARTIFICIAL_CELL)\s+(\w+)", re.MULTILINE)
_LOADED: dict[str, Path] = {}  # content hash -> the compiled directory loaded here


def cache_root() -> Path:
    """Where compiled mechanisms are kept: `$BBPES_NEURON_CACHE`, else
    `$XDG_CACHE_HOME/bbpes/nrnivmodl` (`~/.cache/bbpes/nrnivmodl`)."""
    if os.environ.get("BBPES_NEURON_CACHE"):
        return Path(os.environ["BBPES_NEURON_CACHE"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "bbpes" / "nrnivmodl"


def sources(directory: str | Path) -> list[Path]:
    """The `.mod` (and included) files of `directory`, sorted; `ConfigError` if it is
    not a directory or holds no `.mod` file."""
    directory = Path(directory)
    if not directory.is_dir():
        raise ConfigError(f"mechanisms directory {directory} not found")
    files = sorted(p for p in directory.iterdir() if p.is_file() and p.suffix in SOURCES)
    if not any(p.suffix == ".mod" for p in files):
        raise ConfigError(f"mechanisms directory {directory} holds no .mod file")
    return files


def mechanism_names(directory: str | Path) -> list[str]:
    """The mechanisms the `.mod` files of `directory` define (their SUFFIX,
    POINT_PROCESS or ARTIFICIAL_CELL names)."""
    names = []
    for path in sources(directory):
        if path.suffix == ".mod":
            names += [m.group(2) for m in _NAME.finditer(path.read_text(errors="replace"))]
    return names


def content_hash(directory: str | Path) -> str:
    """16 hex digits of the SHA-256 of the source files (names and bytes), NEURON's
    version and the machine: the name of the compiled copy in the cache."""
    hoc()
    import neuron

    digest = hashlib.sha256(f"{neuron.__version__} {platform.machine()}".encode())
    for path in sources(directory):
        digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def compile_mechanisms(directory: str | Path, cache: str | Path | None = None) -> Path:
    """The cache directory holding `directory`'s mechanisms compiled by `nrnivmodl`
    (compiled now unless a copy of the same sources is there). A compile error is a
    one-line `ConfigError` naming the first error and the full log."""
    directory = Path(directory).resolve()
    root = Path(cache).expanduser() if cache else cache_root()
    key = content_hash(directory)
    target = root / key
    if _library(target) is not None:
        return target
    root.mkdir(parents=True, exist_ok=True)
    with open(root / f"{key}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one compile at a time; the others then find it
        if _library(target) is not None:
            return target
        build = Path(tempfile.mkdtemp(prefix=f"{key}-", dir=root))
        for path in sources(directory):
            shutil.copy2(path, build / path.name)
        done = subprocess.run(
            [_nrnivmodl()], cwd=build, capture_output=True, text=True, check=False
        )
        log = root / f"{key}.log"
        log.write_text(done.stdout + done.stderr)
        if done.returncode != 0 or _library(build) is None:
            shutil.rmtree(build, ignore_errors=True)
            raise ConfigError(
                f"nrnivmodl failed on {directory}: {_first_error(done.stdout + done.stderr)} "
                f"(full log: {log})"
            )
        build.rename(target)
    return target


def load_mechanisms(directory: str | Path, cache: str | Path | None = None) -> Path | None:
    """Compile (if needed) and load `directory`'s mechanisms into this process's NEURON;
    returns the compiled directory, or None when NEURON already knows every mechanism
    the files define (built in, or loaded before)."""
    names = mechanism_names(directory)
    if all(_known(name) for name in names):
        return None
    compiled = compile_mechanisms(directory, cache)
    key = compiled.name
    if key in _LOADED:
        return _LOADED[key]
    clash = [name for name in names if _known(name)]
    if clash:
        raise ConfigError(
            f"mechanisms {', '.join(clash)} of {directory} are already defined in NEURON "
            "(built in, or loaded from other .mod files): rename their SUFFIX"
        )
    hoc()
    import neuron

    if not neuron.load_mechanisms(str(compiled), warn_if_already_loaded=False):
        raise ConfigError(f"NEURON could not load the mechanisms compiled in {compiled}")
    _LOADED[key] = compiled
    return compiled


def _library(directory: Path) -> Path | None:
    """The compiled library under `directory` (`<arch>/libnrnmech.so`), if any."""
    if not directory.is_dir():
        return None
    found = sorted(directory.glob("*/libnrnmech.*")) + sorted(
        directory.glob("*/.libs/libnrnmech.*")
    )
    return found[0] if found else None


def _nrnivmodl() -> str:
    """`nrnivmodl` of this Python's NEURON (next to the interpreter), else on PATH."""
    found = shutil.which("nrnivmodl", path=str(Path(sys.executable).parent)) or shutil.which(
        "nrnivmodl"
    )
    if found is None:
        raise ConfigError(f"nrnivmodl not found: {INSTALL} (NEURON >= 9)")
    return found


def _first_error(output: str) -> str:
    """The first line of `nrnivmodl`'s output that reports an error (ANSI colours
    removed), else its last line."""
    lines = [re.sub(r"\x1b\[[0-9;]*m", "", line).strip() for line in output.splitlines()]
    lines = [line for line in lines if line]
    for line in lines:
        if re.search(r"error|Error|ERROR", line):
            return line
    return lines[-1] if lines else "no output"


def _known(name: str) -> bool:
    """Whether this process's NEURON knows a mechanism `name` (density or point)."""
    h = hoc()
    found = h.ref("")
    for kind in (0, 1):
        types = h.MechanismType(kind)
        for i in range(int(types.count())):
            types.select(i)
            types.selected(found)
            if found[0] == name:
                return True
    return False
