"""One validation per input: every study refuses the same kept fractions, offsets and counts, with one message."""
import dataclasses
import re
from dataclasses import replace

import pytest

from datadiet.config import check_counts, check_fractions, check_keeps, check_offsets
from datadiet.errors import ConfigError
from datadiet.studies import MODULES, get_study


def _studies_with(field: str) -> list[str]:
    return [name for name in MODULES
            if field in {f.name for f in dataclasses.fields(get_study(name).config)}]


@pytest.mark.parametrize("name", _studies_with("keeps"))
def test_every_study_refuses_the_same_kept_fractions(name):
    smoke = get_study(name).presets["smoke"]
    replace(smoke, keeps=(0.5,))  # a subset size: accepted
    for keeps in [(1.0,), (0.5, 0.0), (0.5, 1.5)]:
        with pytest.raises(ConfigError, match="^" + re.escape(f"--keeps takes fractions in (0, 1); got {list(keeps)}.")):
            replace(smoke, keeps=keeps)


@pytest.mark.parametrize("name", _studies_with("eval_seeds"))
def test_every_study_refuses_zero_seeds_as_a_config_error(name):
    smoke = get_study(name).presets["smoke"]
    for field in ("eval_seeds", "score_runs", "score_draws"):
        with pytest.raises(ConfigError, match=rf"^--{field.replace('_', '-')} must be at least 1; got 0\.$"):
            replace(smoke, **{field: 0})


def test_a_kept_fraction_of_one_is_refused_with_the_reason():
    with pytest.raises(ConfigError, match=r"got \[0.5, 1.0\]\. A kept fraction of 1 is the full data"):
        check_keeps((0.5, 1.0))
    with pytest.raises(ConfigError, match=r"got \[0.0\]\.$"):  # the reason is for 1 only
        check_keeps((0.0,))
    with pytest.raises(ConfigError, match=r"got \[\]"):
        check_keeps(())
    check_keeps((), empty=True)


@pytest.mark.parametrize("values, interval, ok", [
    ((0.0, 0.5), "[0, 1)", True), ((1.0,), "[0, 1)", False), ((1.0,), "(0, 1]", True), ((0.0,), "(0, 1]", False),
    ((3.0,), "(0, inf)", True), ((float("nan"),), "(0, inf)", False), ((True,), "(0, 1]", False),
    (("0.5",), "(0, 1]", False),
])
def test_check_fractions_reads_the_interval_as_written(values, interval, ok):
    if ok:
        check_fractions("--x", values, interval)
    else:
        with pytest.raises(ConfigError, match=rf"^--x takes fractions in {re.escape(interval)}"):
            check_fractions("--x", values, interval)


def test_offsets_and_counts():
    check_offsets(())
    with pytest.raises(ConfigError, match=r"--offsets takes fractions in \[0, 1\); got \[1.0\]"):
        check_offsets((1.0,))

    @dataclasses.dataclass
    class Counts:
        runs: int | None = None
        seeds: float = 1

    check_counts(Counts(), ("runs", "seeds"))
    with pytest.raises(ConfigError, match=r"--runs must be at least 1; got 0"):
        check_counts(Counts(runs=0), ("runs",))
    with pytest.raises(ConfigError, match=r"--seeds must be at least 1; got 1.5"):
        check_counts(Counts(seeds=1.5), ("seeds",))
