"""Learners: the `init` / `step` protocol, gradient learners, rules with no gradient,
and learners made of learners (ensembles, repeated steps).

`bbpes.learners.evosax.EvosaxLearner` (every evosax strategy) is imported from its
module, so that the package works where evosax is not installed (a GPU box)."""

from .base import AbstractLearner as AbstractLearner
from .base import accept_update as accept_update
from .dopamine import Dopamine as Dopamine
from .dopamine import DopamineState as DopamineState
from .ensemble import Ensemble as Ensemble
from .gradient import GradientLearner as GradientLearner
from .gradient import GradientState as GradientState
from .guided_es import GuidedES as GuidedES
from .guided_es import GuidedESState as GuidedESState
from .mutation import MetropolisMutation as MetropolisMutation
from .mutation import MutationState as MutationState
from .mutation import corresponding_optimizer as corresponding_optimizer
from .nne import NNE as NNE
from .nne import GeneMap as GeneMap
from .nne import NNEState as NNEState
from .repeated import Repeated as Repeated
from .tunable import Tunable as Tunable
