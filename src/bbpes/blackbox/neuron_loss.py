"""`NeuronLoss`: what each Ray worker holds for a NEURON fit: the cell (built once per
worker, in `setup`), the protocol, and the eFEL loss of the traces."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ..fitting.protocol import CurrentClamp
from .efel_loss import EfelLoss
from .neuron_cell import NeuronCell


@dataclass(frozen=True)
class NeuronLoss:
    """`loss(values) -> float`: the `EfelLoss` of the traces of `cell` under `protocol`
    with its parameters at `values` (shape `(n_params,)`, in the order of
    `cell.parameters`, in NEURON's units). A `RayEvaluator` calls `setup()` once per
    worker (NEURON loads the mechanisms and builds the cell there) and then the loss
    once per sample."""

    cell: NeuronCell
    protocol: CurrentClamp
    loss: EfelLoss

    def setup(self) -> None:
        self.cell.model()

    def traces(self, values: Any) -> np.ndarray:
        """V (mV, float64) of every sweep at `values`: `(n_sweeps, protocol.n_recorded)`."""
        return self.cell.model().traces(values, self.protocol)

    def __call__(self, values: Any) -> float:
        return self.loss(self.traces(values))
