"""A user's NEURON cell as a black box: `NeuronCell`, a frozen description of it (what
is pickled to every Ray worker), and `NeuronModel`, the cell built in one process and
played a current-clamp protocol.

The cell is one of:

- a hoc template: `NeuronCell("cell.hoc", template="MyCell")`; its `soma` (a section,
  or the first of a section array) is the recording site;
- a Python builder: `NeuronCell("package.module:build")` or
  `NeuronCell("path/to/file.py:build")`, a function called with the keyword
  arguments `options` that returns the soma section, or an object whose `soma`
  attribute is one (its other sections found as its attributes);
- `NeuronCell("")`: NEURON's built-in `hh` in one soma (`hh_soma`, of the `diam` and
  `L` given in `options`), Neuroptimus test case 1's cell.

`mechanisms` names a directory of `.mod` files, compiled by `nrnivmodl` once
(`bbpes.blackbox.mechanisms`) and loaded before the cell is built. `parameters` maps
each fitted parameter's name to what it sets:

- `"soma.gnabar_hh"`: a range variable on every segment of the section `soma` (the
  recording section; another name is an attribute of the cell object, e.g.
  `dend[2].gbar_kd`, or a section of that name in the cell's tree);
- `"all.gnabar_hh"`: the same on every section of the cell's tree;
- `"soma.L"`, `"soma.Ra"`: a section's length or axial resistance;
- `"h.NAME"`: a hoc global (`h.ena`, a mechanism's GLOBAL such as `h.usetable_hh`).

The simulation is NEURON's fixed step (`secondorder = 0`, CVODE off) at the protocol's
`dt`, from `finitialize(v_init)`, at `celsius`; each sweep of a
`bbpes.fitting.protocol.CurrentClamp` is an `IClamp` at `soma(0.5)` (`delay = start`,
`dur = end - start`) plus a holding `IClamp` on from t = 0, the timing `CurrentClamp`
reproduces in JAX. V is recorded every step and every `record_every`-th sample kept.
"""

from __future__ import annotations

import importlib
import importlib.util
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ConfigError
from ..fitting.protocol import CurrentClamp
from ._neuron import hoc
from .mechanisms import load_mechanisms, sources

BUILTIN = "bbpes.blackbox.neuron_cell:hh_soma"
"""The cell of `NeuronCell("")`: NEURON's `hh` in one soma."""

_TARGET = re.compile(r"h\.\w+|\w+(\[\d+\])?\.\w+")
_SECTION_ATTRIBUTES = ("L", "Ra", "rallbranch")  # set on the section, not per segment


def hh_soma(diam: float = 10.0, L: float = 100.0) -> Any:
    """One section `soma` (one segment, `diam` and `L` µm, cm 1 µF/cm²) with NEURON's
    built-in `hh` at its defaults: Neuroptimus test case 1's cell."""
    h = hoc()
    soma = h.Section(name="soma")
    soma.nseg, soma.diam, soma.L, soma.cm = 1, float(diam), float(L), 1.0
    soma.insert("hh")
    return soma


def parse_parameters(items: Sequence[str]) -> tuple[tuple[str, str], ...]:
    """`["gnabar=soma.gnabar_hh", ...]` as `(("gnabar", "soma.gnabar_hh"), ...)`;
    `ConfigError` for an item that is not `name=target` or a name given twice."""
    out = []
    for item in items:
        name, sep, target = (part.strip() for part in str(item).partition("="))
        if not sep or not name.isidentifier() or not _TARGET.fullmatch(target):
            raise ConfigError(
                f"parameter map {item!r} is not NAME=SECTION.VARIABLE, NAME=all.VARIABLE "
                "or NAME=h.GLOBAL (e.g. gnabar=soma.gnabar_hh)"
            )
        out.append((name, target))
    names = [n for n, _ in out]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise ConfigError(f"parameter map names {', '.join(twice)} more than once")
    return tuple(out)


@dataclass(frozen=True)
class NeuronCell:
    """A NEURON cell to simulate (see the module docstring); checked when made (files
    found, names well formed: `ConfigError`), built by `model()`.

    **Fields:**

    - `source`: a `.hoc` file, `"module:function"`, `"file.py:function"`, or `""`
      (NEURON's `hh` in a soma).
    - `template`: the hoc template's name (hoc files only).
    - `mechanisms`: a directory of `.mod` files (`""`: none).
    - `parameters`: `((name, target), ...)`, the fitted parameters in the order of the
      value vectors given to `NeuronModel.traces`.
    - `celsius`: temperature (°C), set before every run (6.3: NEURON's default).
    - `v_init`: the initial voltage (mV) of `finitialize`.
    - `options`: `((keyword, value), ...)` for a Python builder.
    - `cache`: where compiled mechanisms are kept (`""`: `mechanisms.cache_root()`).

    Paths are made absolute here, so that workers started elsewhere find them (on a
    cluster, every node needs them at the same paths).
    """

    source: str = ""
    template: str = ""
    mechanisms: str = ""
    parameters: tuple[tuple[str, str], ...] = ()
    celsius: float = 6.3
    v_init: float = -65.0
    options: tuple[tuple[str, Any], ...] = ()
    cache: str = ""

    def __post_init__(self):
        source = self.source.strip() or BUILTIN
        if source.endswith(".hoc"):
            source = str(_existing(source, "hoc file"))
            if not self.template.isidentifier():
                raise ConfigError(f"cell {self.source}: name its template (template=NAME)")
        else:
            module, sep, function = source.rpartition(":")
            if not sep or not module or not function.isidentifier():
                raise ConfigError(
                    f"cell {source!r} is neither a .hoc file nor MODULE:FUNCTION / FILE.py:FUNCTION"
                )
            if module.endswith(".py"):
                source = f"{_existing(module, 'cell builder file')}:{function}"
            if self.template:
                raise ConfigError(f"template={self.template} is read only with a .hoc cell")
        object.__setattr__(self, "source", source)
        if self.mechanisms:
            sources(self.mechanisms)  # a directory with .mod files
            object.__setattr__(self, "mechanisms", str(Path(self.mechanisms).resolve()))
        object.__setattr__(self, "parameters", tuple(tuple(p) for p in self.parameters))
        object.__setattr__(self, "options", tuple(tuple(o) for o in self.options))
        for name in ("celsius", "v_init"):
            if not math.isfinite(getattr(self, name)):
                raise ConfigError(f"NEURON cell: {name} must be finite")

    @property
    def names(self) -> tuple[str, ...]:
        """The fitted parameters' names, in order."""
        return tuple(name for name, _ in self.parameters)

    def model(self) -> NeuronModel:
        """This cell built in this process (once: later calls return the same one).
        `ConfigError` for a bad cell: NEURON missing, a hoc file that does not load, an
        unknown template, a builder that fails, a `.mod` that does not compile, an
        attribute the cell does not have."""
        if self not in _MODELS:
            _MODELS[self] = NeuronModel(self)
        return _MODELS[self]


_MODELS: dict[NeuronCell, NeuronModel] = {}


class NeuronModel:
    """A `NeuronCell` built in this process's NEURON, with its clamps and recording.

    `traces(values, protocol)` sets the parameters to `values` (shape `(n_params,)`, in
    the units NEURON takes them) and runs every sweep: V in mV, float64, shape
    `(n_sweeps, protocol.n_recorded)`, at `protocol.times()`.
    """

    def __init__(self, cell: NeuronCell):
        self.cell = cell
        h = self.h = hoc()
        if cell.mechanisms:
            load_mechanisms(cell.mechanisms, cell.cache or None)
        self.obj, self.soma = _instantiate(h, cell)
        self.setters = [_setter(h, self, name, target) for name, target in cell.parameters]
        self.stim = h.IClamp(self.soma(0.5))
        self.hold = h.IClamp(self.soma(0.5))
        self.hold.delay, self.hold.dur = 0.0, 1e9
        self.v = h.Vector().record(self.soma(0.5)._ref_v)

    def sections(self, name: str) -> list[Any]:
        """The sections a parameter target names: `soma`, `all` (the whole tree), an
        attribute of the cell object (`dend`, `dend[2]`), or sections of that name."""
        if name == "soma":
            return [self.soma]
        if name == "all":
            return list(self.soma.wholetree())
        base, _, index = name.partition("[")
        found = getattr(self.obj, base, None) if self.obj is not None else None
        if found is not None:
            if index:
                return [found[int(index.rstrip("]"))]]
            return [found] if _is_section(found) else list(found)
        return [s for s in self.soma.wholetree() if s.name() in (name, *_suffixed(s, name))]

    def traces(self, values: Any, protocol: CurrentClamp) -> np.ndarray:
        h = self.h
        values = np.asarray(values, dtype=np.float64).reshape(-1)
        if values.size != len(self.setters):
            raise ValueError(f"{values.size} values for {len(self.setters)} parameters")
        h.cvode.active(0)
        h.secondorder = 0
        h.dt = protocol.dt
        h.steps_per_ms = 1.0 / protocol.dt
        h.celsius = self.cell.celsius
        h.tstop = protocol.duration
        for setter, value in zip(self.setters, values):
            setter(float(value))
        self.stim.delay, self.stim.dur = protocol.start, protocol.end - protocol.start
        out = np.empty((protocol.n_sweeps, protocol.n_recorded))
        for k, (amp, holding) in enumerate(zip(protocol.amplitudes, protocol.holdings())):
            self.stim.amp, self.hold.amp = float(amp), float(holding)
            h.finitialize(self.cell.v_init)
            h.continuerun(protocol.duration)
            v = self.v.as_numpy()
            if v.size != protocol.n_steps + 1:
                raise RuntimeError(
                    f"NEURON recorded {v.size} samples, not {protocol.n_steps + 1} (dt {h.dt})"
                )
            out[k] = v[:: protocol.record_every]
        return out


def _existing(path: str, what: str) -> Path:
    found = Path(path).expanduser()
    if not found.is_file():
        raise ConfigError(f"{what} {path} not found")
    return found.resolve()


def _is_section(x: Any) -> bool:
    return type(x).__name__ == "Section"


def _suffixed(section: Any, name: str) -> tuple[str, ...]:
    """`section.name()` if it ends with `.name` (a section of a cell object)."""
    full = section.name()
    return (full,) if full.endswith(f".{name}") else ()


def _instantiate(h: Any, cell: NeuronCell) -> tuple[Any, Any]:
    """`(cell object or None, soma section)`."""
    if cell.source.endswith(".hoc"):
        try:
            ok = h.load_file(cell.source)
        except RuntimeError as error:
            raise ConfigError(f"NEURON could not load {cell.source}: {error}") from None
        if not ok:
            raise ConfigError(f"NEURON could not load {cell.source} (see NEURON's message above)")
        template = getattr(h, cell.template, None)
        if template is None:
            raise ConfigError(f"{cell.source} defines no template {cell.template}")
        try:
            obj = template()
        except Exception as error:
            raise ConfigError(
                f"template {cell.template} of {cell.source} failed: {error}"
            ) from None
    else:
        builder = _builder(cell.source)
        try:
            obj = builder(**dict(cell.options))
        except Exception as error:
            raise ConfigError(f"cell builder {cell.source} failed: {error!r}") from None
    if _is_section(obj):
        return None, obj
    soma = getattr(obj, "soma", None)
    if soma is not None and not _is_section(soma):
        soma = soma[0]  # a section array: its first section
    if soma is None or not _is_section(soma):
        raise ConfigError(f"cell {cell.source}: no soma section (the recording site)")
    return obj, soma


def _builder(source: str) -> Callable[..., Any]:
    module_name, _, function = source.rpartition(":")
    try:
        if module_name.endswith(".py"):
            path = Path(module_name)
            spec = importlib.util.spec_from_file_location(f"_bbpes_cell_{path.stem}", path)
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
        else:
            module = importlib.import_module(module_name)
    except Exception as error:
        raise ConfigError(f"cannot import the cell builder {module_name}: {error!r}") from None
    builder = getattr(module, function, None)
    if not callable(builder):
        raise ConfigError(f"{module_name} has no function {function}")
    return builder


def _setter(h: Any, model: NeuronModel, name: str, target: str) -> Callable[[float], None]:
    """A function setting `target` to a value, checked now (its current value read)."""
    where, _, variable = target.rpartition(".")
    if where == "h":
        if not hasattr(h, variable):
            raise ConfigError(f"parameter {name}: NEURON has no global {variable}")
        return lambda value: setattr(h, variable, value)
    sections = model.sections(where)
    if not sections:
        raise ConfigError(f"parameter {name}: the cell has no section {where}")
    if variable in _SECTION_ATTRIBUTES:
        return lambda value: [setattr(sec, variable, value) for sec in sections]
    for sec in sections:
        try:
            getattr(sec(0.5), variable)
        except Exception:
            mechs = ", ".join(sec.psection()["density_mechs"]) or "none"
            raise ConfigError(
                f"parameter {name}: {target} is not a variable of section {sec.name()} "
                f"(its mechanisms: {mechs})"
            ) from None
    segments = [seg for sec in sections for seg in sec]

    def set_all(value: float) -> None:
        for seg in segments:
            setattr(seg, variable, value)

    return set_all
