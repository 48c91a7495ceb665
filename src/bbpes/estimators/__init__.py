"""Learning signals with the shape of `jax.value_and_grad`:

estimator(loss_fn, ...) -> f(params, key, *args) -> (loss, grads)
"""

from .adjoint import AdjointSolution as AdjointSolution
from .adjoint import fnde as fnde
from .adjoint import pnde as pnde
from .adjoint import pnde_solve as pnde_solve
from .backprop import bptt as bptt
from .backprop import checkpointed_scan as checkpointed_scan
from .backprop import truncated_scan as truncated_scan
from .es import centered_ranks as centered_ranks
from .es import es as es
from .finite_diff import finite_difference as finite_difference
from .finite_diff import weight_perturbation as weight_perturbation
from .forward_gradient import forward_gradient as forward_gradient
from .low_rank import LowRank as LowRank
