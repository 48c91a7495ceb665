"""The parameters of a fit: which cell fields are fitted, their bounds and units, and the
map between bounded values and the unconstrained numbers z that learning signals move.

    logit:     x = low + (high - low) sigmoid(z),              z = log((x - low) / (high - x))
    loglogit:  x = exp(log low + (log high - log low) sigmoid(z))   (the same on log x)
    identity:  x = z  (bounds used only by `sample` and `check`)

Every learning signal (gradients, ES, ...) then works on z in R^n and never proposes a
value outside the bounds.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from dataclasses import dataclass

import equinox as eqx
import jax
import jax.numpy as jnp
from jax import Array

from ..errors import ConfigError

TRANSFORMS = ("logit", "loglogit", "identity")


def _open(low: float, high: float, dtype) -> tuple[Array, Array]:
    """The ends of the open interval (low, high) representable in `dtype`: the numbers
    next to `low` and `high` on their inner sides."""
    lo, hi = jnp.asarray(low, dtype), jnp.asarray(high, dtype)
    return jnp.nextafter(lo, hi), jnp.nextafter(hi, lo)


@dataclass(frozen=True)
class FitParameter:
    """One fitted field of a cell with its bounds.

    **Fields:**

    - `name`: the cell field it sets, e.g. `"gnabar"`.
    - `low`, `high`: bounds, in `unit`, `low < high`.
    - `unit`: the field's unit as the cell states it, e.g. `"S/cm2"` (documentation).
    - `transform`: how z maps to the value: `"logit"` (the position in [low, high]),
      `"loglogit"` (the position of log x in [log low, log high], for bounds spanning
      decades; needs `low > 0`) or `"identity"` (z is the value; not kept in bounds).
    """

    name: str
    low: float
    high: float
    unit: str
    transform: str = "loglogit"

    def __post_init__(self):
        where = f"FitParameter {self.name!r}"
        if self.transform not in TRANSFORMS:
            raise ConfigError(f"{where}: transform {self.transform!r} is not one of {TRANSFORMS}")
        low, high = float(self.low), float(self.high)
        if not (math.isfinite(low) and math.isfinite(high) and low < high):
            raise ConfigError(
                f"{where}: need finite bounds low < high, got [{self.low}, {self.high}]"
            )
        if self.transform == "loglogit" and low <= 0:
            raise ConfigError(
                f"{where}: loglogit needs low > 0 (got {self.low}); use transform='logit'"
            )
        object.__setattr__(self, "low", low)
        object.__setattr__(self, "high", high)

    @property
    def scale(self) -> tuple[float, float]:
        """`(a, b)`: the interval that sigmoid(z) is mapped onto: [low, high], or
        [log low, log high] for `loglogit`."""
        if self.transform == "loglogit":
            return math.log(self.low), math.log(self.high)
        return self.low, self.high


@dataclass(frozen=True)
class ParameterSpace:
    """An ordered set of `FitParameter`s: column j of a values array `(..., n)` is
    `parameters[j]`, in its `unit`.

    Build cells with `cell` (one) and `cells` (a population for `simulate_population`);
    move between values and unconstrained z with `to_values` / `to_unconstrained`.
    """

    parameters: tuple[FitParameter, ...]

    def __post_init__(self):
        params = tuple(self.parameters)
        object.__setattr__(self, "parameters", params)
        if not params:
            raise ConfigError("ParameterSpace needs at least one FitParameter")
        if not all(isinstance(p, FitParameter) for p in params):
            raise ConfigError("ParameterSpace takes FitParameter objects")
        names = [p.name for p in params]
        dup = sorted({x for x in names if names.count(x) > 1})
        if dup:
            raise ConfigError(f"ParameterSpace: parameters {dup} appear more than once")

    @property
    def names(self) -> tuple[str, ...]:
        """The fitted fields, in column order."""
        return tuple(p.name for p in self.parameters)

    @property
    def n(self) -> int:
        """Number of parameters."""
        return len(self.parameters)

    def check(self, cell: eqx.Module | None = None) -> None:
        """Raise `ConfigError` (one line) if a parameter is not a field of `cell` that
        holds a number (bounds are checked when each `FitParameter` is made)."""
        if cell is None:
            return
        fields = {f.name: f for f in dataclasses.fields(cell)}
        for p in self.parameters:
            f = fields.get(p.name)
            if f is None or f.metadata.get("static", False):
                known = sorted(k for k, v in fields.items() if not v.metadata.get("static", False))
                raise ConfigError(
                    f"{type(cell).__name__} has no fittable field {p.name!r}; fields: {', '.join(known)}"
                )

    def _columns(self, x: Array) -> list[Array]:
        x = jnp.asarray(x)
        if x.shape[-1:] != (self.n,):
            raise ConfigError(
                f"expected an array (..., {self.n}) for parameters {self.names}, got shape {x.shape}"
            )
        if not jnp.issubdtype(x.dtype, jnp.floating):
            x = x.astype(jnp.result_type(float))
        return [x[..., j] for j in range(self.n)]

    @functools.partial(jax.jit, static_argnums=0)  # the space is hashable: one program per space
    def to_values(self, z: Array) -> Array:
        """Values `(..., n)` (in each parameter's unit) of unconstrained `z` `(..., n)`.

        For `logit` and `loglogit` the values lie strictly inside (low, high) for every
        finite or infinite z, in float32 as in float64: the sigmoid is taken from the
        nearer bound (no cancellation) and the result is clipped to the open interval's
        representable ends. Differentiable; the gradient vanishes only where the
        sigmoid saturates.
        """
        out = []
        for p, zj in zip(self.parameters, self._columns(z)):
            if p.transform == "identity":
                out.append(zj)
                continue
            a, b = p.scale
            w = b - a
            # a + w s(z) loses the digits of s near 1; b - w s(-z) keeps them.
            y = jnp.where(zj < 0, a + w * jax.nn.sigmoid(zj), b - w * jax.nn.sigmoid(-zj))
            x = jnp.exp(y) if p.transform == "loglogit" else y
            out.append(jnp.clip(x, *_open(p.low, p.high, x.dtype)))
        return jnp.stack(out, axis=-1)

    @functools.partial(jax.jit, static_argnums=0)
    def to_unconstrained(self, values: Array) -> Array:
        """Unconstrained z `(..., n)` of `values` `(..., n)`, the inverse of `to_values`.

        A value on a bound (or outside) is first moved just inside it, so z is finite.
        """
        out = []
        for p, xj in zip(self.parameters, self._columns(values)):
            if p.transform == "identity":
                out.append(xj)
                continue
            a, b = p.scale
            xj = jnp.clip(xj, p.low, p.high)
            y = jnp.log(xj) if p.transform == "loglogit" else xj
            y = jnp.clip(y, *_open(a, b, y.dtype))  # (log of) a bound -> just inside it
            out.append(jnp.log(y - a) - jnp.log(b - y))
        return jnp.stack(out, axis=-1)

    @functools.partial(jax.jit, static_argnums=(0, 2))
    def sample(self, key: Array, shape: tuple[int, ...] = ()) -> Array:
        """Values `(*shape, n)` drawn independently per parameter: uniform in (low, high)
        for `logit` and `identity`, log-uniform for `loglogit`; strictly inside the bounds."""
        u = jax.random.uniform(key, (*shape, self.n))
        out = []
        for p, uj in zip(self.parameters, self._columns(u)):
            a, b = p.scale
            y = a + (b - a) * uj
            x = jnp.exp(y) if p.transform == "loglogit" else y
            out.append(jnp.clip(x, *_open(p.low, p.high, x.dtype)))
        return jnp.stack(out, axis=-1)

    def cells(self, base_cell: eqx.Module, values: Array) -> eqx.Module:
        """A population: `base_cell` with each fitted field set to its column of
        `values` `(P, n)` (arrays of shape `(P,)`), every other array field broadcast to a
        leading axis P, and float fields left as shared floats. The form
        `simulate_population` (and `eqx.filter_vmap` with `eqx.if_array(0)`) takes."""
        self.check(base_cell)
        values = jnp.asarray(values)
        if values.ndim != 2:
            raise ConfigError(f"cells needs values of shape (P, {self.n}), got {values.shape}")
        cols = self._columns(values)
        P = values.shape[0]
        shared = eqx.tree_at(
            lambda c: [getattr(c, name) for name in self.names], base_cell, replace=[0.0] * self.n
        )
        shared = jax.tree.map(
            lambda x: jnp.broadcast_to(x, (P, *x.shape)) if eqx.is_array(x) else x, shared
        )
        return eqx.tree_at(lambda c: [getattr(c, name) for name in self.names], shared, cols)

    def cell(self, base_cell: eqx.Module, values: Array) -> eqx.Module:
        """`base_cell` with the fitted fields set from `values` `(n,)` (0-d arrays, so a
        jitted simulation is not recompiled for new values)."""
        self.check(base_cell)
        values = jnp.asarray(values)
        if values.shape != (self.n,):
            raise ConfigError(f"cell needs values of shape ({self.n},), got {values.shape}")
        cols = self._columns(values)
        return eqx.tree_at(lambda c: [getattr(c, name) for name in self.names], base_cell, cols)
