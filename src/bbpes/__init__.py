"""bbpes: train networks that backpropagation handles badly, and compare every way of
getting a learning signal (BPTT, adjoints, evolution strategies, rules with no gradient)
side by side on the same problem.

The pieces (see docs/ and DESIGN):

- `bbpes.neurons`: cell models (Morris-Lecar...) and spike readouts.
- `bbpes.estimators`: `es`, `bptt`, `pnde`, `fnde`, `finite_difference`, ... all with
  the shape of `jax.value_and_grad`.
- `bbpes.learners`: the `init` / `step` protocol; `GradientLearner` (estimator + optax).
- `bbpes.signals`: every learning signal by name (what every experiment's `method` takes).
- `bbpes.train`: the one training loop (`compile_step` compiles a step ahead of time).
- `bbpes.experiments`: every figure and table, by name (`bbpes list`).
"""

from . import estimators as estimators
from . import neurons as neurons
from .learners import GradientLearner as GradientLearner
from .ode import ODELoss as ODELoss
from .train import compile_step as compile_step
from .train import train as train

__version__ = "0.1.0"
