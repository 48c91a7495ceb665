"""The knobs several signals share, declared once (each signal lists the ones it reads;
a signal whose knob means something else declares its own under the same name)."""

from __future__ import annotations

from .base import Knob

SIGMA = Knob("sigma", 0.02, "perturbation std per weight", "parameter units", positive=True)
SAMPLES = Knob("samples", 100, "perturbed members per iteration (mirrored pairs)", low=2, even=True)
ES_CHUNK = Knob("es_chunk", 0, "perturbed members evaluated at once", low=0, zero="all at once")
RANK_SHAPING = Knob("rank_shaping", False, "weigh members by the centered ranks of their losses")
FD_EPS = Knob("fd_eps", 1e-3, "finite-difference step", "parameter units", positive=True)
TANGENTS = Knob(
    "tangents", 0, "random tangents (jvps) per iteration", low=0, zero="as many as samples"
)
GUIDED_ALPHA = Knob(
    "guided_alpha", 0.5, "weight of the isotropic part of the search (1: plain ES)", low=0, high=1
)
GUIDED_K = Knob("guided_k", 1, "surrogate gradients kept as the guiding subspace", low=1)
TRUNCATE_SLOTS = Knob(
    "truncate_slots",
    0,
    "truncated BPTT (the guiding gradient): input slots differentiated",
    low=0,
    zero="a fifth",
)
SURROGATE_SLOPE = Knob(
    "surrogate_slope",
    1 / 3,
    "surrogate spike derivative slope (fast sigmoid)",
    "1/mV",
    positive=True,
)
ES_RANK = Knob("es_rank", 1, "rank r of each matrix perturbation sigma A B^T / sqrt(r)", low=1)
ES_STRUCTURED = Knob(
    "es_structured", False, "the model keeps each perturbed matrix factored (one shared product)"
)
