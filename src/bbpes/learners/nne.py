"""Neural net evolution (NNE): learning as allele frequencies under weak selection.

From "Biologically plausible neural networks via evolutionary dynamics and dopaminergic
plasticity", section 2. A genotype is `x in {0, 1}^n`; the population's state is the
vector of allele frequencies `p in [0, 1]^n` (`x(i) = 1` with probability `p(i)`,
independently). The phenotype is a network whose `m` link weights are `W x`, with `W`
an `m x n` sparse random matrix (`GeneMap`). Each generation:

1. sample `N` genotypes from `p`;
2. measure each genotype's fitness `delta_x` on the task (the costly part: `N` networks
   on the whole training set);
3. per-allele rewards `f(i)`, `f_bar(i)`: the mean fitness of the genotypes with
   `x(i) = 1` and with `x(i) = 0` (section 3.1, the sampled form of Eqs. 1-2);
4. update every `p(i)` by the weak-selection equation (Eq. 3).

Lemma 1: with the exact expectations of Eqs. 1-2, `f(i) - f_bar(i) = -dL/dp(i)`, so
Eq. 3 is a gradient step on `L(p)` with per-coordinate step `eps p(1-p) / (1 - eps L)`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jax import Array
from jax.experimental import sparse

from ..errors import ConfigError
from .base import AbstractLearner


class GeneMap(eqx.Module):
    """The weight-generation matrix `W` (`m x n`, sparse): link weights are `W x`.

    **Fields:** `matrix`, a `jax.experimental.sparse.BCSR` of shape `(m, n)`.
    """

    matrix: sparse.BCSR

    @property
    def n_links(self) -> int:
        return self.matrix.shape[0]

    @property
    def n_genes(self) -> int:
        return self.matrix.shape[1]

    def __call__(self, genotype: Array) -> Array:
        """Link weights `W x (m,)` of one genotype `x (n,)` (0/1 values, or allele
        frequencies `p` for the mean weights `W p`)."""
        return self.matrix @ genotype.astype(self.matrix.dtype)

    def columns(self, genotypes: Array) -> Array:
        """Link weights of `c` genotypes `(c, n)` as the columns of an `(m, c)` array."""
        return self.matrix @ genotypes.T.astype(self.matrix.dtype)

    def rows(self, links: np.ndarray) -> GeneMap:
        """The map of the links `links` only (the rows of `W` in that order)."""
        indptr = np.asarray(self.matrix.indptr)
        starts, stops = indptr[links], indptr[np.asarray(links) + 1]
        take = np.concatenate([np.arange(a, b) for a, b in zip(starts, stops)] or [[]])
        take = take.astype(np.int64)
        new_indptr = np.concatenate([[0], np.cumsum(stops - starts)])
        matrix = sparse.BCSR(
            (
                self.matrix.data[take],
                self.matrix.indices[take],
                jnp.asarray(new_indptr, self.matrix.indptr.dtype),
            ),
            shape=(len(links), self.n_genes),
        )
        return GeneMap(matrix)

    def dense(self) -> Array:
        """`W` as a dense `(m, n)` array (for tests and small problems)."""
        return self.matrix.todense()


def random_gene_map(
    rng: np.random.Generator,
    n_links: int,
    n_genes: int,
    density: float,
    *,
    values: str = "uniform",
    scale: float = 1.0,
    dtype: Any = None,
) -> GeneMap:
    """`W` with i.i.d. entries: nonzero with probability `density`, then
    `U[-scale, scale]` (`values="uniform"`, section 2: scale 1, density beta) or
    `+-scale` with equal probability (`values="sign"`, Theorem 2: scale sqrt(m/d),
    density d/m). `dtype` defaults to JAX's default float."""
    dtype = dtype or jnp.result_type(float)
    total = n_links * n_genes
    nnz = int(rng.binomial(total, density))
    flat = np.sort(rng.choice(total, nnz, replace=False))
    rows, cols = np.divmod(flat, n_genes)
    if values == "uniform":
        data = rng.uniform(-scale, scale, nnz)
    elif values == "sign":
        data = scale * rng.choice(np.array([-1.0, 1.0]), nnz)
    else:
        raise ValueError(f"unknown values {values!r}: 'uniform' or 'sign'")
    indptr = np.concatenate([[0], np.cumsum(np.bincount(rows, minlength=n_links))])
    matrix = sparse.BCSR(
        (jnp.asarray(data, dtype), jnp.asarray(cols, jnp.int32), jnp.asarray(indptr, jnp.int32)),
        shape=(n_links, n_genes),
    )
    return GeneMap(matrix)


def sample_genotypes(key: Array, p: Array, population: int) -> Array:
    """`population` genotypes, `x(i) = 1` with probability `p(i)` independently:
    an array `(population, n)` of 0.0 / 1.0 in the dtype of `p`."""
    return (jax.random.uniform(key, (population, p.shape[0]), p.dtype) < p).astype(p.dtype)


def allele_rewards(genotypes: Array, fitness: Array) -> tuple[Array, Array]:
    """Per-allele rewards of section 3.1: `f(i)` = mean fitness of the genotypes with
    `x(i) = 1`, `f_bar(i)` with `x(i) = 0`; `genotypes (N, n)`, `fitness (N,)` ->
    two arrays `(n,)`. An allele absent from (or fixed in) the population has no
    contrast; its missing mean is set to the other one, so Eq. 3 leaves `p(i)` as is."""
    ones = genotypes.sum(0)
    zeros = genotypes.shape[0] - ones
    sum_one = fitness @ genotypes
    sum_zero = fitness.sum() - sum_one
    f = sum_one / jnp.maximum(ones, 1)
    f_bar = sum_zero / jnp.maximum(zeros, 1)
    f = jnp.where(ones > 0, f, f_bar)
    f_bar = jnp.where(zeros > 0, f_bar, f)
    return f, f_bar


def weak_selection_update(p: Array, f: Array, f_bar: Array, epsilon: float | Array) -> Array:
    """Eq. 3: `p' = p (1 + eps f) / (1 + eps f_bar + eps p (f - f_bar))`, i.e. the
    frequencies `p (1 + eps f)` and `(1 - p)(1 + eps f_bar)` normalised. Needs
    `1 + eps f > 0` and `1 + eps f_bar > 0` (rewards above `-1/eps`)."""
    new = p * (1 + epsilon * f) / (1 + epsilon * f_bar + epsilon * p * (f - f_bar))
    return jnp.clip(new, 0.0, 1.0)  # only rounding can leave [0, 1]


class NNEState(eqx.Module):
    p: Array  # (n,) frequency of allele 1 of each gene
    generation: Array  # () int


def chunked_fitness(fitness: Callable, chunk: int, genotypes: Array, *batch: Any):
    """`(fitness, loss)`, each `(N,)`, of genotypes `(N, n)`, evaluated `chunk` at a time
    (`chunk` divides N) by `fitness(genotypes_chunk, *batch) -> (fitness, loss)`."""
    chunks = genotypes.reshape(-1, chunk, genotypes.shape[-1])
    values, loss = jax.lax.map(lambda x: fitness(x, *batch), chunks)
    return values.reshape(-1), loss.reshape(-1)


class AbstractNNE(AbstractLearner):
    """What every NNE learner shares: its fields, its state `NNEState(p, generation)`
    (`params` are the allele frequencies `p`), the population's evaluation and the
    selection metrics. A subclass defines `step` (and may add fields).

    **Fields:**

    - `fitness(genotypes, *batch) -> (fitness, loss)`: for a chunk of genotypes
      `(c, n)`, their fitness `delta_x` and mean loss, each `(c,)`; `batch` is the
      data the training loop passes to `step`.
    - `population`: genotypes per generation `N`; evaluated `chunk` at a time
      (`chunk` divides `population`, 0: all at once; it bounds memory, not results).
    - `epsilon`: selection strength of Eq. 3.
    """

    fitness: Callable[..., tuple[Array, Array]]
    population: int = eqx.field(static=True)
    epsilon: float
    chunk: int = eqx.field(static=True, default=0)

    def __check_init__(self):
        chunk = self.chunk or self.population
        if self.population < 2 or self.population % chunk:
            raise ConfigError(
                f"population {self.population} must be >= 2 and a multiple of chunk {chunk}"
            )

    def init(self, params: Array) -> NNEState:
        return NNEState(jnp.asarray(params), jnp.zeros((), jnp.int32))

    def params(self, state: NNEState) -> Array:
        return state.p

    def evaluate_population(self, genotypes: Array, *batch: Any) -> tuple[Array, Array]:
        """`(fitness, loss)`, each `(N,)`, of genotypes `(N, n)`, `chunk` at a time."""
        return chunked_fitness(self.fitness, self.chunk or self.population, genotypes, *batch)


def selection_metrics(fitness: Array, loss: Array, p: Array) -> dict[str, Array]:
    """The metrics of one generation: mean loss and fitness, best fitness (from the
    population's `fitness`, `loss`, each `(N,)`), and how close the new frequencies
    `p (n,)` are to fixation."""
    distance = jnp.minimum(p, 1 - p)
    return {
        "loss": loss.mean(),
        "fitness_mean": fitness.mean(),
        "fitness_max": fitness.max(),
        "alleles_within_0.01": jnp.mean(distance <= 0.01),
        "mean_distance_from_fixed": distance.mean(),
    }


class NNE(AbstractNNE):
    """Neural net evolution as a learner: `params` are the allele frequencies `p`;
    the fields are `AbstractNNE`'s (`fitness`, `population`, `epsilon`, `chunk`).

    `step(state, key, *batch)` samples the population with
    `sample_genotypes(key, p, population)` and applies Eq. 3 once.
    """

    def step(self, state: NNEState, key: Array, *batch: Any) -> tuple[NNEState, dict]:
        genotypes = sample_genotypes(key, state.p, self.population)
        fitness, loss = self.evaluate_population(genotypes, *batch)
        f, f_bar = allele_rewards(genotypes, fitness.astype(state.p.dtype))
        p = weak_selection_update(state.p, f, f_bar, self.epsilon)
        return NNEState(p, state.generation + 1), selection_metrics(fitness, loss, p)
