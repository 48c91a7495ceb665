"""`bbpes.settings.Setting`: one declaration gives the parsing, the range and choice
checks with their one-line errors, and the help line."""

from __future__ import annotations

import pytest

from bbpes.errors import ConfigError
from bbpes.settings import UNSET, Setting, parse_value


def test_a_value_is_parsed_by_the_type_of_the_default_and_checked_against_the_range():
    cells = Setting("n_cells", 128, "cells", low=1, quick=32)
    assert cells.parse("64") == 64 and cells.parse(3.0) == 3
    for bad in ("2.5", "abc", True, 2.5):
        with pytest.raises(ConfigError, match="n_cells"):
            cells.parse(bad)
    with pytest.raises(ConfigError, match=r"^n_cells must be >= 1, got 0$"):
        cells.parse("0")
    assert cells.quick == 32 and Setting("x", 1.0).quick is UNSET


def test_zero_is_allowed_where_it_says_what_it_means():
    hold = Setting("hold", 0.0, "input hold", "ms", positive=True, zero="the case's")
    assert hold.parse("0") == 0.0 and hold.parse("6") == 6.0
    with pytest.raises(ConfigError, match=r"hold must be > 0 \(0: the case's\), got -1.0"):
        hold.parse("-1")
    assert not Setting("d", 1.0, positive=True).allows(0.0)


def test_lists_check_each_item_and_choices_any_container():
    samples = Setting("samples_list", [10, 20], "populations", low=2, even=True)
    assert samples.parse("4, 8") == [4, 8]
    with pytest.raises(ConfigError, match="even"):
        samples.parse("4,7")
    case = Setting("case", "A", "case", choices=("A", "B"))
    with pytest.raises(ConfigError, match=r"bad value 'C' for 'case' \(choose from A, B\)"):
        case.parse("C")

    class Odd:
        def __contains__(self, value):
            return value % 2 == 1

    assert Setting("n", 1, choices=Odd()).allows(3) and not Setting("n", 1, choices=Odd()).allows(2)


def test_a_setting_filled_later_names_its_type():
    scale = Setting("scale", None, "preset", kind=float, positive=True)
    assert scale.parse(None) is None and scale.parse("0.5") == 0.5
    assert scale.numeric and scale.ranged
    with pytest.raises(ConfigError):
        scale.parse("abc")


def test_the_help_line_states_unit_range_and_zero():
    clip = Setting("clip", 20.0, "gradient clip", low=0, zero="off")
    assert clip.describe() == "gradient clip (>= 0) (0: off)"
    p = Setting("p", 0.5, "probability", low=0, high=1)
    assert p.describe() == "probability (0..1)"
    dt = Setting("dt", 0.1, "step", "ms", positive=True)
    assert dt.describe() == "step [ms] (> 0)"
    assert Setting("flag", False, "a switch").describe() == "a switch"
    assert not Setting("i", 1.0, "current").ranged
    assert Setting("i", 1.0, "current", any_value=True).ranged


def test_floats_must_be_finite_and_bools_are_words():
    with pytest.raises(ConfigError):
        parse_value("lr", "inf", 1.0)
    assert parse_value("x64", "yes", False) is True and parse_value("x64", "off", True) is False
    with pytest.raises(ConfigError):
        parse_value("x64", "maybe", False)
