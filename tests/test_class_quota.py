"""Class quotas: "proportional" (--class-balanced, +balanced) keeps every class's share, "equal" (--class-quota equal,
+equal) the same count from every class, capped by its size; by hand, against a brute-force reference, and through
`datadiet prune`."""
import itertools
import json

import numpy as np
import pytest

from fakes import write_idx
from datadiet.cli import main
from datadiet.errors import ConfigError
from datadiet.selection import class_quotas, select, select_random, selection_parameters

TINY = ["--model", "smallcnn", "--width", "0.25", "--batch-size", "8", "--eval-batch-size", "16"]


def test_equal_quotas_by_hand():
    # keep 0.3 of classes of 80, 20, 5 and 300: round(0.3 x 405) = 122 kept. Proportional keeps the imbalance (the
    # class of 80 drops to 24); equal: the level is 48 (5 + 20 + 48 + 48 = 121 <= 122 < 5 + 20 + 49 + 49), and the
    # one left over goes to the first class larger than 48, class 0.
    assert class_quotas([80, 20, 5, 300], 122, "proportional") == [24, 6, 2, 90]
    assert class_quotas([80, 20, 5, 300], 122, "equal") == [49, 20, 5, 48]
    assert class_quotas([10, 10, 10], 9, "equal") == [3, 3, 3]
    assert class_quotas([10, 10, 10], 10, "equal") == [4, 3, 3]  # ties by class index
    assert class_quotas([1, 7, 3], 2, "equal") == [1, 1, 0]  # fewer kept than classes: the first classes give one
    assert class_quotas([2, 9, 4], 15, "equal") == [2, 9, 4]  # everything
    assert class_quotas([16] + [2] * 9, 24, "equal") == [6] + [2] * 9


def _brute_force_equal(sizes, total):
    """Every split of ``total`` with 0 <= q_c <= size_c; the one whose counts sorted ascending are largest
    (max-min fairness: the smallest count as large as can be, then the next, ...), ties to earlier classes."""
    splits = [q for q in itertools.product(*(range(s + 1) for s in sizes)) if sum(q) == total]
    return list(max(splits, key=lambda q: (sorted(q), q)))


def test_equal_quotas_match_a_brute_force_reference():
    rng = np.random.default_rng(0)
    for _ in range(150):
        sizes = rng.integers(1, 8, size=rng.integers(1, 5)).tolist()
        total = int(rng.integers(1, sum(sizes) + 1))
        assert class_quotas(sizes, total, "equal") == _brute_force_equal(sizes, total), (sizes, total)


def test_unknown_quota_is_refused():
    with pytest.raises(ConfigError, match="--class-quota: class_quota must be one of proportional, equal, got 'even'"):
        select(np.arange(4.0), keep=0.5, labels=[0, 1, 0, 1], class_quota="even")
    with pytest.raises(ConfigError, match="--class-balanced means --class-quota proportional"):
        select(np.arange(4.0), keep=0.5, labels=[0, 1, 0, 1], class_balanced=True, class_quota="equal")


# Class 0: ids 0..5 (6 examples), class 1: ids 6, 7 (2 examples); scores rise with the id.
SCORES, LABELS = np.arange(8.0), np.array([0, 0, 0, 0, 0, 0, 1, 1])


def test_select_with_an_equal_quota_by_hand():
    # keep 0.5: 4 kept. Proportional: 3 of class 0 and 1 of class 1; equal: 2 and 2, each class its hardest.
    assert select(SCORES, keep=0.5, labels=LABELS, class_quota="proportional").tolist() == [3, 4, 5, 7]
    assert select(SCORES, keep=0.5, labels=LABELS, class_quota="equal").tolist() == [4, 5, 6, 7]
    assert select(SCORES, keep=0.5, labels=LABELS, class_quota="equal", rule="easiest").tolist() == [0, 1, 6, 7]
    # keep 0.75: 6 kept; class 1 whole (2), the rest from class 0 (4)
    assert select(SCORES, keep=0.75, labels=LABELS, class_quota="equal").tolist() == [2, 3, 4, 5, 6, 7]
    assert select(SCORES, keep=0.5).tolist() == [4, 5, 6, 7]  # no quota: the top half overall


def test_class_balanced_is_the_proportional_quota():
    rng = np.random.default_rng(1)
    scores, labels = rng.normal(size=50), rng.integers(0, 3, size=50)
    for rule in ("window", "ccs", "moderate", "random"):
        old = select(scores, keep=0.3, labels=labels, class_balanced=True, rule=rule)
        assert old.tolist() == select(scores, keep=0.3, labels=labels, class_quota="proportional", rule=rule).tolist()
        assert old.tolist() == select(scores, keep=0.3, labels=labels, class_balanced=True,
                                      class_quota="proportional", rule=rule).tolist()


def test_every_rule_keeps_the_equal_quotas():
    rng = np.random.default_rng(2)
    labels = np.repeat([0, 1, 2], [30, 6, 14])
    scores = rng.normal(size=50)
    want = class_quotas([30, 6, 14], 20, "equal")
    assert want == [7, 6, 7]
    for rule in ("window", "hardest", "easiest", "ccs", "moderate", "random"):
        kept = select(scores, keep=0.4, labels=labels, class_quota="equal", rule=rule)
        assert np.bincount(labels[kept], minlength=3).tolist() == want, rule
    kept = select_random(np.arange(50), keep=0.4, seed=3, labels=labels, class_quota="equal")
    assert np.bincount(labels[kept], minlength=3).tolist() == want


def test_selection_parameters_record_the_quota():
    assert "class_quota" not in selection_parameters(keep=0.5)  # records without a quota read as before
    assert selection_parameters(keep=0.5)["class_balanced"] is False
    proportional = selection_parameters(keep=0.5, class_balanced=True)
    assert (proportional["class_balanced"], proportional["class_quota"]) == (True, "proportional")
    assert selection_parameters(keep=0.5, class_quota="proportional") == proportional
    equal = selection_parameters(keep=0.5, class_quota="equal")
    assert (equal["class_balanced"], equal["class_quota"]) == (False, "equal")
    again = selection_parameters(**equal)  # a record's parameters give the same quota again
    assert (again["class_balanced"], again["class_quota"]) == (False, "equal")


# --------------------------------------------------------------------------- datadiet prune on imbalanced data

SIZES = [16] + [2] * 9  # class 0 has 16 training examples, every other class 2


def write_imbalanced_mnist(root):
    """Fake MNIST IDX files whose training labels are SIZES (class 0 first), the test split balanced."""
    rng = np.random.default_rng(0)
    root.mkdir(parents=True, exist_ok=True)
    train_labels = np.repeat(np.arange(10), SIZES)
    for prefix, labels in (("train", train_labels), ("t10k", np.arange(10))):
        write_idx(root / f"{prefix}-images-idx3-ubyte.gz", rng.integers(0, 256, (len(labels), 28, 28), dtype=np.uint8))
        write_idx(root / f"{prefix}-labels-idx1-ubyte.gz", labels)
    return root


@pytest.fixture(scope="module")
def imbalanced(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("quota")
    root = write_imbalanced_mnist(tmp / "data")
    assert main(["score", "--dataset", "mnist", "--data-root", str(root), *TINY, "--epochs", "1", "--scores",
                 "random", "--runs", "1", "--out", str(tmp / "s")]) == 0
    return root, tmp / "s" / "random.npz"


def _prune(capsys, score_file, out, *flags):
    code = main(["prune", "--score-file", str(score_file), "--out", str(out), *flags])
    stdout, err = capsys.readouterr()
    return code, stdout, err


def test_prune_with_an_equal_quota_evens_the_classes_and_records_it(imbalanced, tmp_path, capsys):
    _, score_file = imbalanced
    out = tmp_path / "e.json"
    code, stdout, _ = _prune(capsys, score_file, out, "--keep", "0.7", "--class-quota", "equal")
    assert code == 0, stdout
    manifest = json.loads(out.read_text())
    # round(0.7 x 34) = 24: every small class whole (2 each, 18), class 0 the 6 left
    assert list(manifest["class_counts"].values()) == [6] + [2] * 9
    assert manifest["selection"]["class_quota"] == "equal" and manifest["selection"]["class_balanced"] is False
    assert "class quota equal" in stdout and "warning: class" not in stdout
    out = tmp_path / "p.json"
    assert _prune(capsys, score_file, out, "--keep", "0.7", "--class-balanced")[0] == 0
    manifest = json.loads(out.read_text())
    # proportional: 24 x 16/34 = 11.29 → 11, 24 x 2/34 = 1.41 → 1, the 4 left by largest remainder (classes 1-4)
    assert list(manifest["class_counts"].values()) == [11, 2, 2, 2, 2, 1, 1, 1, 1, 1]
    assert manifest["selection"]["class_quota"] == "proportional" and manifest["selection"]["class_balanced"] is True
    same = tmp_path / "q.json"
    assert _prune(capsys, score_file, same, "--keep", "0.7", "--class-quota", "proportional")[0] == 0
    assert json.loads(same.read_text())["ids"] == manifest["ids"]


def test_prune_refuses_both_quotas_and_writes_nothing(imbalanced, tmp_path, capsys):
    _, score_file = imbalanced
    out = tmp_path / "x.json"
    code, _, err = _prune(capsys, score_file, out, "--keep", "0.5", "--class-balanced", "--class-quota", "equal")
    assert code == 2
    assert "--class-balanced means --class-quota proportional" in err and "Traceback" not in err
    assert not out.exists()
    with pytest.raises(SystemExit) as exit_:
        main(["prune", "--score-file", str(score_file), "--out", str(out), "--keep", "0.5", "--class-quota", "even"])
    assert exit_.value.code == 2


def test_the_class_warning_names_both_remedies(imbalanced, tmp_path, capsys):
    from dataclasses import replace

    from datadiet.scores import load_scores, save_scores

    _, score_file = imbalanced
    table = load_scores(score_file)
    low = tmp_path / "low.npz"
    save_scores(low, replace(table, runs=np.where(table.ids < 16, -1.0, table.runs)))  # class 0 scores lowest
    code, stdout, _ = _prune(capsys, low, tmp_path / "w.json", "--keep", "0.5")
    assert code == 0
    warning = next(line for line in stdout.splitlines() if line.startswith("warning: class '0'"))
    assert "--class-balanced (a method's +balanced) keeps every class's proportional share, so an imbalanced " \
           "dataset stays as imbalanced" in warning
    assert "--class-quota equal (+equal) keeps the same count from every class" in warning
