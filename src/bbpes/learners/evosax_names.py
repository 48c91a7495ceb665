"""The evosax strategies bbpes offers as learners, by evosax's own registry names.

Kept apart from `bbpes.learners.evosax` so that the names can be listed (by
`bbpes.signals`, `bbpes show`) where evosax itself is not installed."""

STRATEGIES: tuple[str, ...] = (
    "Open_ES",
    "SNES",
    "xNES",
    "PGPE",
    "ARS",
    "Sep_CMA_ES",
    "CMA_ES",
    "NoiseReuseES",
    "PersistentES",
    "GuidedES",
    "SimpleGA",
)
"""The evosax strategies (evosax's own registry names) tested as bbpes learners."""
