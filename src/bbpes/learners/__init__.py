"""Learners: the `init` / `step` protocol, gradient learners, rules with no gradient,
and learners made of learners (ensembles, repeated steps)."""

from .base import AbstractLearner as AbstractLearner
from .base import accept_update as accept_update
from .dopamine import Dopamine as Dopamine
from .dopamine import DopamineState as DopamineState
from .ensemble import Ensemble as Ensemble
from .gradient import GradientLearner as GradientLearner
from .gradient import GradientState as GradientState
from .mutation import MetropolisMutation as MetropolisMutation
from .mutation import MutationState as MutationState
from .mutation import corresponding_optimizer as corresponding_optimizer
from .nne import NNE as NNE
from .nne import GeneMap as GeneMap
from .nne import NNEState as NNEState
from .repeated import Repeated as Repeated
