"""Simulators that are not JAX as black boxes: a user's NEURON cell (hoc template or
Python builder, `.mod` mechanisms compiled by `nrnivmodl`) fitted by any forward-only
learning signal, its samples evaluated on a Ray cluster, its features computed by eFEL.

- `NeuronCell`: the cell, described (what each worker gets); `NeuronModel`: it built
  in one process, playing a current-clamp protocol.
- `load_mechanisms`, `compile_mechanisms`: `.mod` files compiled once into a cache.
- `EfelLoss`: `bbpes.fitting.loss.FeatureLoss`'s hard form, computed by eFEL.
- `NeuronLoss`: what each Ray worker holds (the cell, the protocol, the eFEL loss).
- `blackbox_loss`: a `RayEvaluator` as a JAX loss; a vmapped population is one call.
- `NeuronFit`, `neuron_fit`: a `bbpes.fitting.problem.Fit` simulated by NEURON, which
  `bbpes.fitting.training` trains like any fit (`bbpes run fit-neuron` reports it).

NEURON, eFEL and Ray are an optional extra: `pip install 'bbpes[neuron]'`. See
docs/scaling.md, "Fit your NEURON model on a cluster".
"""

from .efel_loss import EfelLoss as EfelLoss
from .fit import FORWARD_ONLY as FORWARD_ONLY
from .fit import NeuronFit as NeuronFit
from .fit import neuron_fit as neuron_fit
from .loss import blackbox_loss as blackbox_loss
from .mechanisms import compile_mechanisms as compile_mechanisms
from .mechanisms import load_mechanisms as load_mechanisms
from .neuron_cell import NeuronCell as NeuronCell
from .neuron_cell import NeuronModel as NeuronModel
from .neuron_loss import NeuronLoss as NeuronLoss
