"""NNE variants: the paper's plain NNE and sample-efficient readings of the same
selection step (`NNEVariant`), each option off-switchable so its effect can be measured.

**The selection step these options are derived from.** Eq. 3 of the paper is one round
of selection in which a genotype `x` leaves `w_x = 1 + eps delta_x` offspring (weak
selection: `eps delta_x` small); the frequency of allele 1 among the offspring, with the
allele's weight `p(i)` and the sample's conditional means, is

    p'(i) = p(i) f_w(i) / (p(i) f_w(i) + (1 - p(i)) f_bar_w(i)),           (*)

`f_w(i)` (`f_bar_w(i)`) the mean of `w_x` over the sampled genotypes with `x(i) = 1`
(`= 0`). With `w = 1 + eps delta`, `f_w = 1 + eps f` and (*) is Eq. 3 exactly. Every
option below changes one ingredient of (*) -- who is sampled, which fitness `delta`
enters `w`, how `w` depends on it, how strong `eps` is -- and with all of them off
(`NNEVariant()` defaults) the step is `bbpes.learners.nne.NNE`'s, bit for bit.

Options (population genetics; evolution strategies):

- `pairs=True`, **complementary genotype pairs**. Population genetics: the generation
  is `N/2` couples of complementary genotypes, `x = [u < p]` and `x' = [1 - u < p]`
  with one uniform `u` per gene and couple (antithetic Bernoulli sampling: each member
  is still distributed as `p`, but the two are as negatively correlated as two
  Bernoulli(p) can be; at `p = 1/2`, `x' = 1 - x`). ES: mirrored sampling
  (`theta +- sigma eps`), Brockhoff et al. 2010, Salimans et al. 2017. What it does to
  the estimate of `f - f_bar`: the part of the fitness that is even about `p` (at
  `p = 1/2`: `F(x) = F(1 - x)`) cancels within each couple; the part that is linear in
  `x` does not cancel, and at `p = 1/2` its noise doubles (`tests/learners/
  test_nne_variants.py` measures both). It helps where the fitness is dominated by the
  spread of the genotypes (curvature) and `p` is near 1/2; on MNIST from `p ~ U[0, 1]`
  it raised the update's variance by 7-8% and changed no accuracy beyond seed noise
  (docs/nne_dopamine.md), so `nne_improved` leaves it off.
- `shaping="centered_ranks"`, **fitness by rank**. Population genetics: linear ranking
  selection (Baker 1985; Goldberg & Deb 1991): a genotype's offspring depend on its
  rank in its generation only, `w = 1 + eps r`, `r in [-1/2, 1/2]` its centered rank
  (ties share their average rank); `eps in (0, 2)` spans the ranking pressures from
  none to the worst genotype leaving no offspring. ES: fitness shaping by centered
  ranks (Wierstra et al. 2014, Salimans et al. 2017): the step is invariant under any
  increasing transform of the fitness, so neither its scale nor its offset (the
  paper's `alpha^2` clip) sets the step size, `eps` does. `rank_loss=True` ranks the
  genotypes by their mean loss (lower is better) instead of the clipped fitness
  `delta`, which is flat at 0 for genotypes that fail every image.
- `selection="malthusian"`, **selection in continuous time**. (*) with
  `w = exp(eps delta)`: `p' = p e^{eps f} / (p e^{eps f} + (1 - p) e^{eps f_bar})`, i.e.
  `logit p' = logit p + eps (f - f_bar)`. It is the limit of `k` rounds of Eq. 3 with
  strength `eps / k` and the same rewards, `k -> infinity` (Crow & Kimura 1970,
  Malthusian fitness), so no `eps` makes a weight negative and ranks can be selected
  on at any strength. ES: a natural-gradient step on the logits of the Bernoulli
  search distribution (`f - f_bar` is `-dL/dp` by Lemma 1, and `p(1 - p)` is the
  inverse Fisher information of `p`): the PBIL / Bernoulli-NES update (Baluja 1994,
  Wierstra et al. 2014). To first order in `eps`, Eq. 3 and this are the same step.
- `schedule="cosine" | "linear"`, **a schedule of the selection strength**: `eps_t`
  from `epsilon` down to `epsilon_final` over `schedule_generations`
  (`optax.cosine_decay_schedule`, `optax.linear_schedule`, then constant). Population
  genetics: an environment whose selective pressure relaxes as the population adapts.
  ES: the learning-rate schedule.
- The number of genotypes per generation is `population` (`N`), as in `NNE`.
- **A minibatch of images per generation** is the data the training loop hands `step`
  (`batch(i)`): `bbpes.tasks.mnist_nne.ImageBatches` draws generation `i`'s images from one layout of the
  whole training set (population genetics: each generation meets a sample of its
  environment, the same sample for every genotype; ES: minibatch fitness with common
  random numbers). The learner is the same for a batch and for the whole set.
- **Reusing the sparse structure**: the training set is laid out once
  (`bbpes.models.sparse_mlp.population_inputs`: active links, degree buckets, the pixels
  each in-edge reads, and the rows of `W` they need); `ImageBatches` makes each
  minibatch by gathering image columns of that layout, not a new layout, and its gene
  map is the whole set's.

References: Brockhoff, Auger, Hansen, Arnold, Hohm, "Mirrored sampling and sequential
selection for evolution strategies", PPSN 2010; Salimans, Ho, Chen, Sidor, Sutskever,
"Evolution strategies as a scalable alternative to reinforcement learning", 2017
(mirrored sampling, centered ranks); Wierstra et al., "Natural evolution strategies",
JMLR 2014; Baker, "Adaptive selection methods for genetic algorithms", 1985; Baluja,
"Population-based incremental learning", 1994; Crow & Kimura, "An introduction to
population genetics theory", 1970; antithetic variates for Bernoulli variables:
`u` and `1 - u` through the same inverse CDF (Hammersley & Morton 1956).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import optax
from jax import Array

from ..errors import ConfigError
from .nne import (
    AbstractNNE,
    NNEState,
    allele_rewards,
    sample_genotypes,
    selection_metrics,
    weak_selection_update,
)

SHAPINGS = ("none", "centered_ranks")
SELECTIONS = ("weak", "malthusian")
SCHEDULES = ("constant", "cosine", "linear")

VARIANTS: dict[str, dict[str, Any]] = {
    "nne": {},  # the paper's NNE: every option off
    # the best set measured on MNIST 0-4 (docs/nne_dopamine.md); pairs measured no gain
    "nne_improved": {"shaping": "centered_ranks", "selection": "malthusian", "schedule": "cosine"},
}
"""Named option sets of `NNEVariant` (`nne_variant(name, ...)`); `nne` is the paper's."""


def antithetic_genotypes(key: Array, p: Array, population: int) -> Array:
    """`population` genotypes as `population / 2` complementary pairs: rows `k` and
    `k + population / 2` are `[u < p]` and `[1 - u < p]` for one `u ~ U[0, 1)^n`.
    Each row is distributed as `sample_genotypes`'s; `(population, n)`, 0.0 / 1.0 in
    the dtype of `p`."""
    u = jax.random.uniform(key, (population // 2, p.shape[0]), p.dtype)
    return jnp.concatenate([u < p, (1 - u) < p]).astype(p.dtype)


def centered_ranks(values: Array) -> Array:
    """Ranks of `values (N,)` mapped linearly onto `[-1/2, 1/2]` (the lowest value
    `-1/2`, the highest `1/2`), tied values sharing their average rank; `(N,)`."""
    ranks = jax.scipy.stats.rankdata(values, method="average")
    return ((ranks - 1) / (values.shape[0] - 1) - 0.5).astype(values.dtype)


def malthusian_update(p: Array, f: Array, f_bar: Array, epsilon: float | Array) -> Array:
    """`logit p' = logit p + eps (f - f_bar)`: (*) with offspring `exp(eps delta)`, the
    limit of Eq. 3 applied `k` times with `eps / k`. Keeps `p = 0` and `p = 1` fixed."""
    logit = jnp.log(p) - jnp.log1p(-p)
    return jax.nn.sigmoid(logit + epsilon * (f - f_bar))


def epsilon_at(
    generation: Array, epsilon: float, schedule: str, final: float, generations: int
) -> Array | float:
    """The selection strength of `generation`: `epsilon` (`"constant"`), or an optax
    cosine / linear decay from `epsilon` to `final` over `generations`, then `final`."""
    if schedule == "constant":
        return epsilon
    if schedule == "cosine":
        fn = optax.cosine_decay_schedule(epsilon, generations, alpha=final / epsilon)
    else:
        fn = optax.linear_schedule(epsilon, final, generations)
    return fn(generation)


class NNEVariant(AbstractNNE):
    """NNE with the options of the module docstring; `params` are the frequencies `p`.

    **Fields** (the first four `AbstractNNE`'s, as in `bbpes.learners.nne.NNE`):

    - `fitness(genotypes (c, n), *batch) -> (delta (c,), loss (c,))`;
    - `population`: genotypes per generation `N` (even when `pairs`), `chunk` of them at
      a time (`chunk` divides `N`; 0: all);
    - `epsilon`: the selection strength (at generation 0 when scheduled);
    - `pairs` (False): complementary genotype pairs;
    - `shaping` ("none"): `"none"` (`delta` itself) or `"centered_ranks"`;
    - `rank_loss` (False): with ranks, rank by the loss instead of `delta`;
    - `selection` ("weak"): `"weak"` (Eq. 3) or `"malthusian"`;
    - `schedule` ("constant"), `epsilon_final` (0.0), `schedule_generations` (0): the
      schedule of `eps` (`epsilon_at`).

    The state is `NNEState(p, generation)`, the plain learner's, so checkpoints of the
    two have the same layout. Metrics: the plain learner's and `epsilon`.
    """

    pairs: bool = eqx.field(static=True, default=False)
    shaping: str = eqx.field(static=True, default="none")
    rank_loss: bool = eqx.field(static=True, default=False)
    selection: str = eqx.field(static=True, default="weak")
    schedule: str = eqx.field(static=True, default="constant")
    epsilon_final: float = 0.0
    schedule_generations: int = eqx.field(static=True, default=0)

    def __check_init__(self):  # after AbstractNNE's (population, chunk)
        if self.pairs and self.population % 2:
            raise ConfigError(f"complementary pairs need an even population, not {self.population}")
        for name, value, known in (
            ("shaping", self.shaping, SHAPINGS),
            ("selection", self.selection, SELECTIONS),
            ("schedule", self.schedule, SCHEDULES),
        ):
            if value not in known:
                raise ConfigError(f"unknown {name} {value!r}; known: {', '.join(known)}")
        if not self.epsilon > 0 or self.epsilon_final < 0:
            raise ConfigError("epsilon must be > 0 and epsilon_final >= 0")
        if self.schedule != "constant" and self.schedule_generations < 1:
            raise ConfigError(f"schedule {self.schedule!r} needs schedule_generations >= 1")
        strongest = max(self.epsilon, self.epsilon_final if self.schedule != "constant" else 0)
        if self.shaping == "centered_ranks" and self.selection == "weak" and strongest >= 2:
            raise ConfigError(
                f"epsilon {strongest} >= 2 with centered ranks and weak selection makes "
                "offspring numbers 1 + eps r negative; use epsilon < 2 or selection=malthusian"
            )

    def sample(self, key: Array, p: Array) -> Array:
        """The generation's genotypes `(N, n)`."""
        if self.pairs:
            return antithetic_genotypes(key, p, self.population)
        return sample_genotypes(key, p, self.population)

    def shaped(self, fitness: Array, loss: Array) -> Array:
        """The fitness `(N,)` that enters the offspring numbers."""
        if self.shaping == "none":
            return fitness
        return centered_ranks(-loss if self.rank_loss else fitness)

    def step(self, state: NNEState, key: Array, *batch: Any) -> tuple[NNEState, dict]:
        genotypes = self.sample(key, state.p)
        fitness, loss = self.evaluate_population(genotypes, *batch)
        shaped = self.shaped(fitness.astype(state.p.dtype), loss.astype(state.p.dtype))
        f, f_bar = allele_rewards(genotypes, shaped)
        epsilon = epsilon_at(
            state.generation,
            self.epsilon,
            self.schedule,
            self.epsilon_final,
            self.schedule_generations,
        )
        if self.selection == "weak":
            p = weak_selection_update(state.p, f, f_bar, epsilon)
        else:
            p = malthusian_update(state.p, f, f_bar, epsilon)
        metrics = selection_metrics(fitness, loss, p)
        metrics["epsilon"] = jnp.asarray(epsilon, state.p.dtype)
        return NNEState(p, state.generation + 1), metrics


def nne_variant(
    name: str,
    fitness: Callable[..., tuple[Array, Array]],
    population: int,
    epsilon: float,
    chunk: int = 0,
    **options: Any,
) -> NNEVariant:
    """The `VARIANTS[name]` learner; `options` override single fields (e.g.
    `pairs=False` to measure the improved variant without pairs)."""
    if name not in VARIANTS:
        raise ConfigError(f"unknown NNE variant {name!r}; known: {', '.join(VARIANTS)}")
    return NNEVariant(fitness, population, epsilon, chunk, **{**VARIANTS[name], **options})
