"""Learners: the `init` / `step` protocol, gradient learners, and rules with no gradient."""

from .base import AbstractLearner as AbstractLearner
from .dopamine import Dopamine as Dopamine
from .dopamine import DopamineState as DopamineState
from .gradient import GradientLearner as GradientLearner
from .gradient import GradientState as GradientState
from .mutation import MetropolisMutation as MetropolisMutation
from .mutation import MutationState as MutationState
from .mutation import corresponding_optimizer as corresponding_optimizer
from .nne import NNE as NNE
from .nne import GeneMap as GeneMap
from .nne import NNEState as NNEState
