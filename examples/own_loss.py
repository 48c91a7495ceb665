"""Your own loss (any JAX function of a pytree of parameters), trained by bbpes's ES
estimator with Adam and by an evosax strategy (SNES, through
`bbpes.learners.evosax.EvosaxLearner`), in the same training loop.

The loss fits a damped oscillation y(t) = a exp(-t / tau) sin(omega t) to noisy
samples: three parameters, a non-convex loss in omega. Nothing is differentiated.

Run it: `python examples/own_loss.py` (BBPES_EXAMPLE_TINY=1: a few steps).
"""

from __future__ import annotations

import os

import jax
import jax.numpy as jnp
import optax

from bbpes import GradientLearner, train
from bbpes.estimators import es
from bbpes.learners.evosax import EvosaxLearner

TINY = os.environ.get("BBPES_EXAMPLE_TINY") == "1"
STEPS = 5 if TINY else 300

t = jnp.linspace(0.0, 10.0, 200)
TRUE = {"a": jnp.asarray(1.5), "tau": jnp.asarray(4.0), "omega": jnp.asarray(2.0)}


def oscillation(p, t):
    return p["a"] * jnp.exp(-t / p["tau"]) * jnp.sin(p["omega"] * t)


y = oscillation(TRUE, t) + 0.05 * jax.random.normal(jax.random.key(1), t.shape)


def loss(p):
    """Mean squared error of the fit; any JAX function of the pytree `p` will do."""
    return jnp.mean((oscillation(p, t) - y) ** 2)


def main():
    start = {"a": jnp.asarray(1.0), "tau": jnp.asarray(2.0), "omega": jnp.asarray(1.8)}
    learners = {
        "es + adam": GradientLearner(es(loss, sigma=0.05, samples=32), optax.adam(0.02)),
        # any evosax strategy by name: "CMA_ES", "PGPE", "Open_ES", ... (evosax minimises)
        "evosax SNES": EvosaxLearner(loss, "SNES", population_size=32),
    }
    print(f"loss at the true parameters: {float(loss(TRUE)):.4g}")
    for name, learner in learners.items():
        result = train(learner, start, jax.random.key(0), steps=STEPS, progress="off")
        fitted = {k: round(float(v), 3) for k, v in result.params.items()}
        first, last = float(loss(start)), float(loss(result.params))
        print(f"{name}: loss {first:.4g} -> {last:.4g}, params {fitted}")


if __name__ == "__main__":
    main()
