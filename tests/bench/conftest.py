"""A stand-in for `bbpes.bench.timing.time_interleaved` that reports given seconds, so
that what a benchmark derives from its timings can be checked against hand-made ones."""

from __future__ import annotations

from collections.abc import Mapping

import pytest

from bbpes.bench.timing import Timing


class FakeTimer:
    """`FakeTimer({name: seconds}, ...)`: its n-th use reports the n-th mapping's seconds
    for every timed call (wall; CPU a quarter of it; the warm-up ten times it) without
    running the calls (nothing is compiled), unless `run_calls`: then each runs once, for
    its `result`. `asked` keeps each use's names and repeat."""

    def __init__(self, *rounds: Mapping[str, float], run_calls: bool = False):
        self.rounds, self.run_calls = list(rounds), run_calls
        self.asked: list[tuple[list[str], int]] = []

    def __call__(self, calls, repeat):
        seconds = self.rounds[len(self.asked)]
        self.asked.append((list(calls), repeat))
        return {
            name: Timing(
                first=10 * seconds[name],
                wall=(seconds[name],) * max(repeat, 1),
                cpu=(seconds[name] / 4,) * max(repeat, 1),
                result=call() if self.run_calls else None,
            )
            for name, call in calls.items()
        }


@pytest.fixture
def fake_timer():
    return FakeTimer
