"""The score-at-a-time label: one parse, one format, one file-safe form."""
import pytest

from datadiet.errors import ConfigError, UnknownNameError
from datadiet.scores import ScoreLabel


@pytest.mark.parametrize("text, name, epoch, stem", [
    ("el2n@epoch2", "el2n", 2.0, "el2n-epoch2"),
    ("grand@init", "grand", 0.0, "grand-init"),
    ("grand@epoch0.5", "grand", 0.5, "grand-epoch0.5"),
    ("self_confidence@epoch20", "self_confidence", 20.0, "self_confidence-epoch20"),
    ("forgetting@end", "forgetting", None, "forgetting-end"),
    ("input_norm", "input_norm", None, "input_norm"),
    ("random", "random", None, "random"),
])
def test_parse_format_and_file_stem_round_trip(text, name, epoch, stem):
    label = ScoreLabel.parse(text)
    assert (label.name, label.epoch) == (name, epoch)
    assert str(label) == text
    assert label.file_stem == stem
    assert ScoreLabel.parse(stem) == label


def test_epoch_zero_is_init_and_history_scores_end():
    assert str(ScoreLabel("el2n", 0)) == "el2n@init"
    assert str(ScoreLabel.at("forgetting", 3.0)) == "forgetting@end"
    assert str(ScoreLabel.at("input_norm", 3.0)) == "input_norm"
    assert ScoreLabel.parse("forgetting") == ScoreLabel("forgetting")
    assert ScoreLabel.parse("EL2N@epoch1").name == "el2n"


@pytest.mark.parametrize("text", ["el2n", "el2n@end", "el2n@epochx", "el2n@step3", "input_norm@init",
                                  "forgetting@epoch2"])
def test_a_label_that_does_not_fit_its_score_is_refused(text):
    with pytest.raises(ConfigError, match="write"):
        ScoreLabel.parse(text)


def test_unknown_scores_name_the_known_ones():
    with pytest.raises(UnknownNameError, match="el2n"):
        ScoreLabel.parse("el3n@init")


def test_negative_or_infinite_times_are_refused():
    with pytest.raises(ConfigError):
        ScoreLabel("grand", -1.0)
    with pytest.raises(ConfigError):
        ScoreLabel("grand", float("inf"))


def test_score_kinds_are_one_enum_and_an_unknown_kind_is_refused():
    from datadiet.scores.registry import SCORES, ScoreKind, ScoreSpec

    assert {spec.kind for spec in SCORES.values()} == set(ScoreKind)
    assert ScoreLabel.parse("el2n@epoch2").kind is ScoreKind.MODEL
    assert ScoreLabel.parse("forgetting@end").kind is ScoreKind.HISTORY and ScoreKind.HISTORY == "history"
    with pytest.raises(ValueError):
        ScoreSpec("odd", "sometimes", lambda *a: None, False)
