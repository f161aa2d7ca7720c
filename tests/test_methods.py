"""Methods SCORE[+RULE][+balanced|+equal]: the one parse, its refusals, and the subsets they select (by hand)."""
import numpy as np
import pytest

from datadiet.errors import ConfigError, DataDietError
from datadiet.methods import RULES, Method
from datadiet.selection import select
from tie_reference import tie_key


@pytest.mark.parametrize("text, label, rule, balanced", [
    ("el2n@epoch2", "el2n@epoch2", "hardest", False),
    ("el2n@epoch2+easiest", "el2n@epoch2", "easiest", False),
    ("el2n@epoch2+ccs", "el2n@epoch2", "ccs", False),
    ("grand@init+moderate", "grand@init", "moderate", False),
    ("el2n@epoch2+balanced", "el2n@epoch2", "hardest", True),
    ("el2n@epoch2+ccs+balanced", "el2n@epoch2", "ccs", True),
    ("forgetting@end+easiest+balanced", "forgetting@end", "easiest", True),
    ("input_norm+moderate+balanced", "input_norm", "moderate", True),
])
def test_parse_reads_each_part_and_str_writes_it_back(text, label, rule, balanced):
    method = Method.parse(text)
    assert (method.label, method.rule, method.balanced) == (label, rule, balanced)
    assert str(method) == text
    assert Method.parse(str(method)) == method
    assert Method.of(label, method.how) == method  # the scaling study's form: the method without its score


def test_how_is_the_method_without_its_score():
    texts = ("el2n@epoch2", "el2n@epoch2+balanced", "el2n@epoch2+ccs", "el2n@epoch2+ccs+balanced")
    assert [Method.parse(t).how for t in texts] == ["hardest", "hardest+balanced", "ccs", "ccs+balanced"]
    assert Method.of("el2n@epoch2", "hardest") == Method("el2n@epoch2")
    assert str(Method.of("el2n@epoch2", "hardest+balanced")) == "el2n@epoch2+balanced"
    assert RULES == ("hardest", "easiest", "ccs", "moderate")


@pytest.mark.parametrize("text, message", [
    ("el2n@epoch2+hardest", r"Write 'el2n@epoch2', not 'el2n@epoch2\+hardest'"),
    ("el2n@epoch2+hardest+balanced", r"Write 'el2n@epoch2\+balanced', not 'el2n@epoch2\+hardest\+balanced'"),
    ("el2n@epoch2+median", r"Unknown selection rule 'median' in method 'el2n@epoch2\+median'"),
    ("el2n@epoch2+balanced+balanced", "'\\+balanced' given twice"),
    ("el2n@epoch2+ccs+balanced+balanced", "'\\+balanced' given twice"),
    ("el2n@epoch2+balanced+ccs", "'\\+balanced' comes last, after the rule"),
    ("el2n@epoch2+ccs+easiest", "one rule at most \\(found ccs, easiest\\)"),
    ("el2n@epoch2+", "an empty part"),
    ("el2n@epoch2++ccs", "an empty part"),
    ("+ccs", "an empty part"),
    ("el2n@epoch2+Balanced", "Unknown selection rule 'Balanced'"),
    ("el2n@epoch2+balanced+equal", "'\\+balanced' and '\\+equal' exclude each other \\(\\+balanced keeps every "
                                   "class's proportional share \\(so the imbalance\\), \\+equal the same count"),
    ("el2n@epoch2+equal+balanced", "'\\+balanced' and '\\+equal' exclude each other"),
    ("el2n@epoch2+ccs+equal+equal", "'\\+equal' given twice"),
    ("el2n@epoch2+equal+ccs", "'\\+equal' comes last, after the rule"),
    ("el2n@epoch2+hardest+equal", r"Write 'el2n@epoch2\+equal', not 'el2n@epoch2\+hardest\+equal'"),
])
def test_bad_forms_are_config_errors_naming_the_problem(text, message):
    with pytest.raises(ConfigError, match=message):
        Method.parse(text)


def test_an_unknown_score_is_named():
    with pytest.raises(DataDietError, match="nosuchscore"):
        Method.parse("nosuchscore@epoch2+balanced")
    with pytest.raises(ConfigError, match="Unknown selection rule"):
        Method("el2n@epoch2", "window")


# --- what each method selects ----------------------------------------------------------------------------------

# Two classes of 6; class 1 scores low everywhere (an "easy" class), so keeping the hardest half drops it whole.
LABELS = np.repeat([0, 1], 6)
SCORES = np.array([9.0, 8.0, 7.0, 6.0, 5.0, 4.0, 3.0, 2.5, 2.0, 1.5, 1.0, 0.5])


def test_hardest_drops_the_easy_class_and_balanced_keeps_its_share():
    hardest = Method.parse("el2n@epoch2").select(SCORES, keep=0.5)
    assert hardest.tolist() == [0, 1, 2, 3, 4, 5]  # all of class 0
    balanced = Method.parse("el2n@epoch2+balanced").select(SCORES, keep=0.5, labels=LABELS, num_classes=2)
    assert balanced.tolist() == [0, 1, 2, 6, 7, 8]  # the hardest 3 of each class, by hand
    easiest = Method.parse("el2n@epoch2+easiest+balanced").select(SCORES, keep=0.5, labels=LABELS, num_classes=2)
    assert easiest.tolist() == [3, 4, 5, 9, 10, 11]


def test_balanced_methods_equal_a_per_class_loop():
    """Reference: each class's own ranking (scores, then tie key), its largest-remainder quota taken from the top
    (hardest), the bottom (easiest) or nearest the median (moderate)."""
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 4, 203)
    scores = rng.integers(0, 6, 203).astype(float)  # many ties
    keep = 0.3
    sizes = np.bincount(labels, minlength=4)
    quotas = _largest_remainder(sizes, round(keep * len(labels)))
    for rule in ("hardest", "easiest", "moderate"):
        expect = []
        for c in range(4):
            members = [int(i) for i in np.flatnonzero(labels == c)]
            if rule == "moderate":
                median = float(np.median(scores[members]))
                ranked = sorted(members, key=lambda i: (abs(scores[i] - median), tie_key(i)))
                expect += ranked[:quotas[c]]
            else:
                ranked = sorted(members, key=lambda i: (scores[i], tie_key(i)))
                expect += ranked[-quotas[c]:] if rule == "hardest" else ranked[:quotas[c]]
        text = "el2n@epoch2+balanced" if rule == "hardest" else f"el2n@epoch2+{rule}+balanced"
        kept = Method.parse(text).select(scores, keep=keep, labels=labels, num_classes=4)
        assert kept.tolist() == sorted(expect), rule


def _largest_remainder(sizes, total):
    exact = [total * s / sum(sizes) for s in sizes]
    quotas = [int(np.floor(e)) for e in exact]
    for i in sorted(range(len(sizes)), key=lambda i: (-(exact[i] - quotas[i]), i))[:total - sum(quotas)]:
        quotas[i] += 1
    return quotas


def test_methods_select_as_the_rules_they_name():
    rng = np.random.default_rng(1)
    scores = rng.normal(size=100)
    assert np.array_equal(Method.parse("el2n@epoch2").select(scores, keep=0.3), select(scores, keep=0.3))
    assert np.array_equal(Method.parse("el2n@epoch2+easiest").select(scores, keep=0.3),
                          select(scores, keep=0.3, order="lowest"))
    assert np.array_equal(Method.parse("el2n@epoch2+ccs").select(scores, keep=0.3, seed=4),
                          select(scores, keep=0.3, rule="ccs", seed=4))
    assert not np.array_equal(Method.parse("el2n@epoch2+ccs").select(scores, keep=0.3, seed=4),
                              Method.parse("el2n@epoch2+ccs").select(scores, keep=0.3, seed=5))
    assert np.array_equal(Method.parse("el2n@epoch2").select(scores, keep=0.3, offset=0.2),
                          select(scores, keep=0.3, offset=0.2))
    # The seed is CCS's alone: the other rules ignore it.
    assert np.array_equal(Method.parse("el2n@epoch2+moderate").select(scores, keep=0.3, seed=9),
                          select(scores, keep=0.3, rule="moderate"))


def test_balanced_needs_labels_and_offsets_need_the_hardest_rule():
    with pytest.raises(ConfigError, match="needs the labels"):
        Method.parse("el2n@epoch2+balanced").select(SCORES, keep=0.5)
    with pytest.raises(ConfigError, match="an offset window applies to the hardest rule only"):
        Method.parse("el2n@epoch2+ccs").select(SCORES, keep=0.5, offset=0.1)
    with pytest.raises(ConfigError, match=r"classes \[2\] have no examples"):
        Method.parse("el2n@epoch2+balanced").select(SCORES, keep=0.5, labels=LABELS, num_classes=3)


# --- where methods are named: reproduce and the scaling study --------------------------------------------------

def test_reproduce_config_reads_methods_with_the_one_parse():
    from datadiet.runs.plan import _point_key
    from datadiet.studies.reproduce import PRESETS
    from dataclasses import replace

    replace(PRESETS["smoke"], methods=("el2n@epoch1", "el2n@epoch1+balanced", "el2n@epoch1+ccs+balanced"))
    with pytest.raises(ConfigError, match="'\\+balanced' comes last"):
        replace(PRESETS["smoke"], methods=("el2n@epoch1+balanced+ccs",))
    # CCS subsets, balanced or not, are drawn per seed: their extra-seed runs are the same point
    def same_point_for_another_subset(method):
        run = {"method": method, "keep": 0.5, "offset": None, "subset_digest": "abc"}
        return _point_key(run) == _point_key({**run, "subset_digest": "other"})

    assert same_point_for_another_subset("el2n@epoch2+ccs+balanced")
    assert not same_point_for_another_subset("el2n@epoch2+balanced")
    # a foreign run file whose method no parse reads is sorted as foreign, not a crash of the report
    assert not same_point_for_another_subset("mine+weird")


def test_scaling_rules_take_the_balance_modifier():
    from datadiet.studies.scaling import PRESETS, Config, by_rule

    Config(PRESETS["smoke"].setting, rules=("hardest", "ccs+balanced", "hardest+balanced"))
    for bad in ("nope", "hardest+hardest", "balanced+ccs", "ccs+balanced+balanced"):
        with pytest.raises(ConfigError, match="--rules"):
            Config(PRESETS["smoke"].setting, rules=(bad,))
    rows = by_rule([{"method": m} for m in ("random", "el2n@epoch0.2", "el2n@epoch0.2+balanced",
                                            "el2n@epoch0.2+ccs+balanced")])
    assert [(r["method"], r["score"]) for r in rows] == [("random", None), ("hardest", "el2n@epoch0.2"),
                                                         ("hardest+balanced", "el2n@epoch0.2"),
                                                         ("ccs+balanced", "el2n@epoch0.2")]


# --- dynamic methods: a pruner of the registry and its parameters ---------------------------------------------------


def test_a_dynamic_method_is_its_pruner_with_every_parameter_reachable():
    from datadiet.config import TrainConfig
    from datadiet.dynamic import InfoBatchParameters, RS2Parameters
    from datadiet.methods import DynamicMethod

    train = TrainConfig(epochs=4)
    # The old form: the pruner's first parameter (InfoBatch's prune ratio, RS2's per-epoch fraction).
    assert DynamicMethod("infobatch", 0.3).recipe(train).dynamic == InfoBatchParameters(prune_ratio=0.3)
    assert DynamicMethod("rs2", 0.5).recipe(train).dynamic == RS2Parameters(fraction=0.5)
    assert DynamicMethod("infobatch").recipe(train).dynamic == InfoBatchParameters()
    # Any parameter by name: InfoBatch's delta too.
    assert DynamicMethod("infobatch", 0.3, delta=0.75).parameters == InfoBatchParameters(0.3, 0.75)
    assert DynamicMethod("rs2", fraction=0.5) == DynamicMethod("rs2", 0.5)
    assert DynamicMethod("infobatch", 0.3).value == 0.3 and DynamicMethod("rs2", 0.5).value == 0.5
    # str is the run records' method; the parameters are in the recipe.
    assert str(DynamicMethod("infobatch", 0.3, delta=0.75)) == "infobatch" and str(DynamicMethod("rs2", 0.5)) == "rs2"


@pytest.mark.parametrize("text, parameters", [
    ("infobatch", {}),
    ("infobatch:0.3", {"prune_ratio": 0.3}),
    ("infobatch:delta=0.75", {"delta": 0.75}),
    ("infobatch:prune_ratio=0.3,delta=0.75", {"prune_ratio": 0.3, "delta": 0.75}),
    ("rs2:0.5", {"fraction": 0.5}),
    ("rs2:1", {"fraction": 1.0}),
    ("rs2:fraction=0.25", {"fraction": 0.25}),
])
def test_a_dynamic_method_parses_and_writes_every_parameter(text, parameters):
    from datadiet.methods import DynamicMethod

    name = text.partition(":")[0]
    method = DynamicMethod.parse(text)
    assert method == DynamicMethod(name, **parameters)
    assert DynamicMethod.parse(method.text) == method
    assert str(method) == name
    if name == "rs2":
        assert method.text == f"rs2:fraction={parameters['fraction']!r}" and isinstance(method.value, float)


@pytest.mark.parametrize("make, message", [
    (lambda M: M("slimming", 0.5), "Unknown dynamic method 'slimming'"),
    (lambda M: M("rs2"), "--dynamic rs2 needs --fraction"),
    (lambda M: M("rs2", 1.5), r"--fraction must be a number in \(0, 1\]"),
    (lambda M: M("infobatch", 0.3, prune_ratio=0.4), "prune_ratio given twice"),
    (lambda M: M("infobatch", fraction=0.5), "--fraction applies only to --dynamic rs2"),
    (lambda M: M.parse("infobatch:"), "nothing after ':'"),
    (lambda M: M.parse("infobatch:ratio=0.3"), "--dynamic infobatch has no parameter 'ratio'"),
    (lambda M: M.parse("infobatch:0.3,delta=0.75"), "'0.3' is not one PARAMETER=VALUE"),
    (lambda M: M.parse("infobatch:delta=0.5,delta=0.6"), "'delta=0.6' is not one PARAMETER=VALUE"),
    (lambda M: M.parse("rs2:half"), "'half' is not a number"),
])
def test_a_bad_dynamic_method_is_refused_naming_what_is_wrong(make, message):
    from datadiet.methods import DynamicMethod

    with pytest.raises(ConfigError, match=message):
        make(DynamicMethod)


# --- +equal: the same count from every class ---------------------------------------------------------------------

@pytest.mark.parametrize("text, rule", [("el2n@epoch2+equal", "hardest"), ("el2n@epoch2+ccs+equal", "ccs"),
                                        ("input_norm+moderate+equal/run2", "moderate")])
def test_equal_parses_and_writes_back(text, rule):
    method = Method.parse(text)
    assert (method.rule, method.balanced, method.equal, method.class_quota) == (rule, False, True, "equal")
    assert str(method) == text and Method.parse(str(method)) == method
    assert Method.of(method.label, method.how) == Method.parse(text.split("/")[0])
    assert Method.parse("el2n@epoch2+balanced").class_quota == "proportional"
    assert Method.parse("el2n@epoch2").class_quota is None


def test_old_method_strings_are_unchanged():
    for text in ("el2n@epoch2", "el2n@epoch2+balanced", "el2n@epoch2+ccs+balanced", "grand@init+moderate/hp-grid"):
        assert str(Method.parse(text)) == text
    assert Method("el2n@epoch2", "ccs", True) == Method.parse("el2n@epoch2+ccs+balanced")  # positional, as before
    with pytest.raises(ConfigError, match="\\+balanced and \\+equal exclude each other"):
        Method("el2n@epoch2", balanced=True, equal=True)


def test_equal_keeps_the_same_count_of_every_class():
    # class 0: 9 examples (ids 0-8, scores 9 down to 1), class 1: 3 (ids 9-11, scores 0.9, 0.8, 0.7). keep 0.5: 6 kept.
    labels = np.repeat([0, 1], [9, 3])
    scores = np.array([9.0, 8, 7, 6, 5, 4, 3, 2, 1, 0.9, 0.8, 0.7])
    assert Method.parse("el2n@epoch2").select(scores, keep=0.5).tolist() == [0, 1, 2, 3, 4, 5]
    balanced = Method.parse("el2n@epoch2+balanced").select(scores, keep=0.5, labels=labels, num_classes=2)
    # shares 4.5 and 1.5, remainders tied: class 0 first, so 5 and 1 (the imbalance kept)
    assert balanced.tolist() == [0, 1, 2, 3, 4, 9]
    equal = Method.parse("el2n@epoch2+equal").select(scores, keep=0.5, labels=labels, num_classes=2)
    assert equal.tolist() == [0, 1, 2, 9, 10, 11]  # 3 of each: the hardest 3 of class 0, class 1 whole
    with pytest.raises(ConfigError, match="labels"):
        Method.parse("el2n@epoch2+equal").select(scores, keep=0.5)
