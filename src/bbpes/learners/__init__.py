"""Learners: the `init` / `step` protocol, gradient learners, and rules with no gradient."""

from .base import AbstractLearner as AbstractLearner
from .gradient import GradientLearner as GradientLearner
from .gradient import GradientState as GradientState
from .mutation import MetropolisMutation as MetropolisMutation
from .mutation import MutationState as MutationState
from .mutation import corresponding_optimizer as corresponding_optimizer
