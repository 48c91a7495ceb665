"""`bbpes.bench.timing`: what the benchmarks time with, checked with a clock that only
the timed calls move, and with a call known to be slower (it sleeps)."""

from __future__ import annotations

import time
from functools import partial

from bbpes.bench.timing import time_call, time_interleaved


class Clock:
    """A clock that stands still until a call moves it."""

    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def test_each_call_gets_its_own_seconds_warm_up_apart_and_the_calls_take_turns():
    wall, cpu, order = Clock(), Clock(), []

    def call(name, seconds):
        durations = iter(seconds)

        def run():
            order.append(name)
            step = next(durations)
            wall.now += step
            cpu.now += step / 4
            return name.upper()

        return run

    calls = {"a": call("a", [5.0, 2.0, 3.0]), "b": call("b", [7.0, 4.0, 1.0])}
    times = time_interleaved(calls, 2, clock=wall, cpu_clock=cpu)
    assert order == ["a", "b", "a", "b", "a", "b"]  # warm-ups, then rounds in turn
    a, b = times["a"], times["b"]
    assert (a.first, a.wall, a.best, a.median, a.mean) == (5.0, (2.0, 3.0), 2.0, 2.5, 2.5)
    assert (b.first, b.wall, b.best, b.median) == (7.0, (4.0, 1.0), 1.0, 2.5)
    assert (a.cpu, a.cpu_best, b.cpu_mean) == ((0.5, 0.75), 0.5, 0.625)
    assert (a.result, b.result) == ("A", "B")  # the warm-up's


def test_no_repeat_still_times_one_round():
    clock = Clock()

    def tick():
        clock.now += 3.0

    timed = time_call(tick, 0, timer=partial(time_interleaved, clock=clock, cpu_clock=clock))
    assert timed.wall == (3.0,) and timed.first == 3.0


def test_a_sleeping_call_is_slower_on_the_wall_but_costs_no_cpu():
    times = time_interleaved({"idle": lambda: None, "sleeps": lambda: time.sleep(0.02)}, 2)
    assert times["sleeps"].best >= 0.02 > times["idle"].best
    assert times["sleeps"].best / times["idle"].best > 10
    assert times["sleeps"].cpu_best < 0.01
    assert times["sleeps"].first >= 0.02
