"""Example grids (Paul et al. Figs. 5–8): the chosen images against a brute-force sort per class of the stored
score files, ties in the seeded tie order, and the summary numbers against numpy."""
from dataclasses import replace

import numpy as np
import pytest

from datadiet.errors import ConfigError, DataDietError
from datadiet.report.tables import read_csv
from datadiet.studies import examples as ex
from fakes import smoke_analysis, stored_scores
from tie_reference import reference_rank, tie_key


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    ws, summary = smoke_analysis(tmp_path_factory, "examples")
    tables = stored_scores(ws)
    return ws, summary, tables


def brute_force(values, ids, labels, per_side):
    """Per class, Python's sort of (value, id) pairs, both directions, equal values in the documented tie order."""
    out = {}
    for label in sorted(set(labels.tolist())):
        members = [(float(v), int(i)) for v, i, y in zip(values, ids, labels) if y == label]
        low = sorted(members, key=lambda m: (m[0], tie_key(m[1])))[:per_side]
        high = sorted(members, key=lambda m: (-m[0], tie_key(m[1])))[:per_side]
        out[label] = (low, high)
    return out


def test_chosen_images_match_a_brute_force_sort(workspace):
    ws, _, tables = workspace
    setting = ex.PRESETS["smoke"].setting
    train = ws.splits(setting.data).train
    rows = read_csv(ws.root / "examples" / "examples.csv")
    wanted = ex.default_scores(setting)
    assert wanted == ("el2n@epoch1", "grand@epoch1", "grand@init", "forgetting@end", "input_norm")
    assert [r["score"] for r in rows][::40] == list(wanted)  # 10 classes × 2 ends × 2 images per score
    for score in wanted:
        truth = brute_force(tables[score].runs.mean(0), tables[score].ids, train.labels.numpy(), 2)
        mine = [r for r in rows if r["score"] == score]
        assert len(mine) == 40
        for label, (low, high) in truth.items():
            for kind, want in (("lowest", low), ("highest", high)):
                got = sorted((r for r in mine if r["label"] == label and r["kind"] == kind), key=lambda r: r["position"])
                assert [r["id"] for r in got] == [i for _, i in want], (score, label, kind)
                assert [r["value"] for r in got] == pytest.approx([v for v, _ in want], rel=1e-12)
                assert {r["class"] for r in got} == {train.classes[label]}
    grids = {"grid_el2n-epoch1.png", "grid_grand-epoch1.png", "grid_grand-init.png", "grid_forgetting-end.png",
             "grid_input_norm.png"}
    assert {p.name for p in (ws.root / "examples").glob("grid_*.png")} == grids
    for name in grids:
        assert (ws.root / "examples" / name).stat().st_size > 0


def test_summary_numbers(workspace):
    ws, summary, tables = workspace
    stats = {r["score"]: r for r in read_csv(ws.root / "examples" / "summary.csv")}
    rows = read_csv(ws.root / "examples" / "examples.csv")
    norm = tables["input_norm"].runs[0]
    by_id = dict(zip(tables["input_norm"].ids.tolist(), range(len(norm))))
    for score, s in stats.items():
        high = [r for r in rows if r["score"] == score and r["kind"] == "highest"]
        assert s["highest_mean"] == pytest.approx(np.mean([r["value"] for r in high]))
        pct = [100 * np.mean(norm <= norm[by_id[r["id"]]]) for r in high]
        assert s["highest_norm_percentile"] == pytest.approx(np.mean(pct))
        assert summary["input_norm_percentile"][score]["highest"] == pytest.approx(np.mean(pct))
    # input norm's own extremes are the extreme input norms
    assert stats["input_norm"]["lowest_norm_percentile"] < 10 < 90 < stats["input_norm"]["highest_norm_percentile"]
    # forgetting is an integer count (averaged over 2 runs): ties at the cut are counted like the brute force
    values, labels = tables["forgetting@end"].runs.mean(0), ws.splits(ex.PRESETS["smoke"].setting.data).train.labels.numpy()
    ties = sum(int(np.sort(values[labels == c])[1] == np.sort(values[labels == c])[2]) +
               int(np.sort(values[labels == c])[-2] == np.sort(values[labels == c])[-3]) for c in range(10))
    assert stats["forgetting@end"]["cuts_decided_by_tie"] == ties
    assert (f"in {ties} of 20 class ends" in " ".join(summary["findings"])) == (ties > 0)


def test_ties_follow_the_seeded_tie_order_at_both_ends():
    """Equal values are ordered by the seeded tie key of their ids (never by the id itself): the reference sorts
    by (value, key) with Python integers, one id at a time."""
    values = np.array([1.0, 1.0, 1.0, 5.0, 5.0, 5.0, 3.0])
    ids = np.array([60, 10, 30, 70, 20, 40, 50])
    rows = ex.extremes(values, ids, np.zeros(7, dtype=int), per_side=2)
    lowest = [int(ids[p]) for p in reference_rank(values, ids)][:2]
    highest = [int(ids[p]) for p in reference_rank(-values, ids)][:2]
    assert [(r["kind"], r["position"], r["id"]) for r in rows] == [
        ("lowest", 1, lowest[0]), ("lowest", 2, lowest[1]), ("highest", 1, highest[0]), ("highest", 2, highest[1])]
    assert [r["id"] for r in ex.grid_order(rows, 0)] == [*lowest, *highest[::-1]]  # lowest … highest, left to right
    assert ex.ties_at_cut(values, np.zeros(7, dtype=int), 2) == 2


def test_small_classes_and_percentiles():
    rows = ex.extremes(np.array([2.0, 1.0, 9.0]), np.array([0, 1, 2]), np.array([0, 0, 1]), per_side=2)
    assert [(r["label"], r["kind"], r["id"]) for r in rows] == [
        (0, "lowest", 1), (0, "lowest", 0), (0, "highest", 0), (0, "highest", 1), (1, "lowest", 2), (1, "highest", 2)]
    assert ex.percentile_of(np.array([1.0, 2.5, 4.0]), np.array([1.0, 2.0, 3.0, 4.0])).tolist() == [25.0, 50.0, 100.0]


def test_unknown_score_is_a_clear_error(workspace):
    ws, _, _ = workspace
    # refused when the config is built, before any data is loaded or model trained
    with pytest.raises(DataDietError, match="Unknown score label.*'el2n@epoch7'.*Use one of these labels"):
        replace(ex.PRESETS["smoke"], scores=("el2n@epoch7",))
    with pytest.raises(ConfigError, match="--per-side must be at least 1; got -1"):
        replace(ex.PRESETS["smoke"], per_side=-1)
