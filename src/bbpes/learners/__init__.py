"""Learners: the `init` / `step` protocol, gradient learners, and rules with no gradient."""

from .base import AbstractLearner as AbstractLearner
from .gradient import GradientLearner as GradientLearner
from .gradient import GradientState as GradientState
