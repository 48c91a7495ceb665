"""Your own cell model, trained by ES and by BPTT.

The cell is the persistent sodium plus potassium model (I_Na,p + I_K) of Izhikevich,
*Dynamical Systems in Neuroscience* (2007), section 4.1.1, with its high-threshold
potassium constants: two variables, membrane potential V (mV) and potassium
activation n,

    C dV/dt = I - g_L (V - E_L) - g_Na m_inf(V) (V - E_Na) - g_K n (V - E_K)
      dn/dt = (n_inf(V) - n) / tau_n

with m_inf and n_inf Boltzmann functions. It rests for small currents and fires
tonically above about 4.5 µA/cm². The task: find the current I that makes the cell's
mean spike output over the trial equal to the output it has at I = 10 µA/cm²,
starting from I = 5. ES and BPTT are the same training loop; only the estimator
changes. At full size (200 ms trials, 60 steps) ES ended at I = 10.3 with loss 0.002,
while BPTT, following the exact gradient of a loss that jumps with every spike gained
or lost, ended below threshold at I = 2.0, where that gradient is zero.

Run it: `python examples/own_cell.py` (BBPES_EXAMPLE_TINY=1: a few steps).
"""

from __future__ import annotations

import os

import jax
import jax.numpy as jnp
import optax

from bbpes import GradientLearner, train
from bbpes.estimators import bptt, es
from bbpes.neurons import AbstractCell, simulate, soft_threshold

TINY = os.environ.get("BBPES_EXAMPLE_TINY") == "1"


def boltzmann(V, v_half, k):
    return jax.nn.sigmoid((V - v_half) / k)


class PersistentSodiumPotassium(AbstractCell):
    """I_Na,p + I_K (Izhikevich 2007, section 4.1.1). Units: ms, mV, µA/cm², mS/cm²,
    µF/cm². State `(V, n)`.

    A cell is its constants, `initial_state`, `vector_field` and `output`: the default
    `step` of `AbstractCell` integrates the vector field with one fixed step of a
    diffrax solver (Tsit5; set `solver = diffrax.Heun()` for a cheaper one)."""

    C: float = 1.0  # µF/cm²
    g_L: float = 8.0  # mS/cm²
    E_L: float = -80.0  # mV
    g_Na: float = 20.0
    E_Na: float = 60.0
    g_K: float = 10.0
    E_K: float = -90.0
    tau_n: float = 1.0  # ms

    def initial_state(self, shape=()):
        V = jnp.full(shape, -66.0, dtype=jnp.result_type(float))  # near rest at I = 0
        return V, boltzmann(V, -25.0, 5.0)

    def vector_field(self, state, i_app):
        V, n = state
        m_inf = boltzmann(V, -20.0, 15.0)
        dV = (
            i_app
            - self.g_L * (V - self.E_L)
            - self.g_Na * m_inf * (V - self.E_Na)
            - self.g_K * n * (V - self.E_K)
        ) / self.C
        dn = (boltzmann(V, -25.0, 5.0) - n) / self.tau_n
        return dV, dn

    def output(self, state, hard=False):
        V = self.voltage(state)
        return (V >= -20.0).astype(V.dtype) if hard else soft_threshold(V, -20.0, 3.0)


CELL = PersistentSodiumPotassium()
T_END, DT = (40.0, 0.05) if TINY else (200.0, 0.05)  # ms
STEPS = 4 if TINY else 60


def mean_output(i_app):
    """The cell's soft spike output averaged over the trial (a firing-rate proxy)."""
    _, V, n = simulate(CELL, i_app, T_END, DT)
    return jnp.mean(CELL.output((V, n)))


TARGET = mean_output(10.0)


def loss(params):
    return (mean_output(params["i_app"]) - TARGET) ** 2 * 100.0


def main():
    params = {"i_app": jnp.asarray(5.0)}
    print(f"target mean output {float(TARGET):.4f} (at I = 10 µA/cm²)")
    signals = {
        "es": es(loss, sigma=0.5, samples=16),  # forward passes only
        "bptt": bptt(loss),  # backpropagation through the stepper
    }
    for name, signal in signals.items():
        result = train(
            GradientLearner(signal, optax.adam(0.5)),
            params,
            jax.random.key(0),
            steps=STEPS,
            progress="off",
        )
        first, last = result.history[0]["loss"], float(loss(result.params))
        print(f"{name}: loss {first:.4g} -> {last:.4g}, I = {float(result.params['i_app']):.3f}")


if __name__ == "__main__":
    main()
