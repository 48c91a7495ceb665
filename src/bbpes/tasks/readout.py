"""A linear readout on fixed features: the task of training only the output layer of a
network whose hidden layer is frozen (NNE + SignSGD, section 3.1 of "Biologically
plausible neural networks via evolutionary dynamics and dopaminergic plasticity"; the
dopamine rule and its baselines, section 3.2).

The parameters are the output weights `w`, shape `(H, C)` (H features, C classes); the
loss is the mean softmax cross-entropy of `features @ w`. Features stay on the host
(numpy, float16 for very wide layers) and go to the device one minibatch at a time.
"""

from __future__ import annotations

from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np
from jax import Array

from ..models.sparse_mlp import cross_entropy
from .mnist import batch_indices


def readout_loss(w: Array, features: Array, labels: Array) -> Array:
    """Mean cross-entropy of the output layer `w (H, C)` on `features (B, H)` with
    integer `labels (B,)`: a scalar."""
    return jnp.mean(cross_entropy(features.astype(w.dtype) @ w, labels))


@jax.jit
def _correct(w: Array, features: Array, labels: Array) -> Array:
    return jnp.sum(jnp.argmax(features.astype(w.dtype) @ w, -1) == labels)


def readout_accuracy(w: Array, features: np.ndarray, labels: np.ndarray, chunk: int = 500) -> float:
    """Fraction of rows of `features (N, H)` whose largest output is their label,
    computed `chunk` rows at a time."""
    correct = 0
    for start in range(0, len(features), chunk):
        f = jnp.asarray(features[start : start + chunk])
        correct += int(_correct(w, f, jnp.asarray(labels[start : start + chunk])))
    return correct / len(features)


@dataclass(frozen=True)
class FeatureReadout:
    """Fixed features and labels, train and test, served in minibatches.

    **Fields:** `train_features (N, H)`, `train_labels (N,)`, `test_features (M, H)`,
    `test_labels (M,)` (numpy); `batch_size`; `seed` of the epoch shuffles
    (`bbpes.tasks.mnist.batch_indices`).
    """

    train_features: np.ndarray
    train_labels: np.ndarray
    test_features: np.ndarray
    test_labels: np.ndarray
    batch_size: int
    seed: int = 0

    @property
    def steps_per_epoch(self) -> int:
        """Minibatches per pass over the training set (at least 1)."""
        return max(len(self.train_features) // self.batch_size, 1)

    def batch(self, i: int) -> tuple[Array, Array]:
        """Minibatch `i`: `(features (B, H), labels (B,))`, a function of `i` only."""
        index = batch_indices(i, len(self.train_features), self.batch_size, self.seed)
        return jnp.asarray(self.train_features[index]), jnp.asarray(self.train_labels[index])

    def evaluate(self, w: Array) -> dict[str, float]:
        """`{"accuracy": test accuracy of w}`."""
        return {"accuracy": readout_accuracy(w, self.test_features, self.test_labels)}

    loss = staticmethod(readout_loss)
