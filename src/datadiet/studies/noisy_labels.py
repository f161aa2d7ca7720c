"""Noisy labels [Paul et al. (2021) App. F, Figs. 16–18, after their Fig. 2].

A fraction (10 %) of the training labels is permuted among themselves (Data Diet B.3: the label histogram stays
fixed) and the setting's score runs are repeated on the noisy copy, with the same seeds. Three results:

1. **Offset sweep** (Figs. 16 and 18): keep a fixed fraction, but first drop the lowest-scoring ``offset`` fraction,
   so the window slides from the easiest examples (offset 0) up to the hardest (offset 1 − keep), on clean and on
   noisy data, for EL2N early in training and GraNd at initialization, against random subsets of the same size.
   Test accuracy is always measured on the clean test set (only training labels are ever corrupted).
2. **EL2N distributions** (Fig. 17): clean against corrupted examples within the noisy run, and the corrupted
   examples before corruption (clean-data runs) and after (noisy-data runs).
3. **Finding the corrupted examples**: AUROC of every standard score at ranking the corrupted examples first
   (higher score = more suspect), Mann–Whitney U / (n_pos · n_neg) from average ranks, ties counted half; plus a
   self-confidence baseline.

*Corrupted* means the label actually changed. A permutation sends some chosen examples to a label of their own
class (≈ 1/K of them); those keep a correct label and count as clean. The set is recomputed with
:func:`~datadiet.data.noise.permute_labels` on the clean training split and checked against the noisy split's labels.

**Self-confidence** is cleanlab's label-quality score ``p_y`` (the predicted probability of the given label), used as
the suspicion ``1 − p_y`` (the ``self_confidence`` model score) and averaged over the noisy score runs at the early
epoch. These are *in-sample* probabilities: the scoring models train on the very labels they judge, while cleanlab
recommends out-of-sample (cross-validated) ones, because a model that has memorised a wrong label is confident in
it. Early in training a network fits the consistent majority of the labels before it memorises the corrupted ones
(which is why early EL2N separates them at all), so at that time in-sample ``p_y`` has not yet been pulled
towards the wrong labels much; and it is the like-for-like comparison for early EL2N: same models, same step
(``1 − p_y`` and EL2N are both functions of the same softmax output). It is no stand-in for cleanlab's
cross-validated recipe at the end of training, where in-sample probabilities would hide the memorised labels.

**Which score runs.** The clean data uses the standard score set, shared with every other analysis (asking for
more scores would change the cache key and retrain those runs). The noisy runs belong to this analysis alone, so
``self_confidence`` (and EL2N at another epoch when the preset asks for one) rides along in their method list:
the same runs compute it at no extra training.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import torch

from ..report import figures
from ..report.tables import curve_table, write_csv
from ..config import DataConfig, check_keeps, check_offsets
from ..data import LabelNoise, permute_labels
from ..errors import ConfigError, DataDietError
from ..scores.registry import ScoreLabel
from ..selection import offset_windows, rank_order, select
from ..stats import auroc
from ..runs.presets import ON_SCARCE, Setting, standard_scores, study_presets
from ..runs.workspace import Workspace
from .common import Study, accuracy_rows, baseline_tasks

NAME = "noisy_labels"
TITLE = "Noisy labels: pruning windows, EL2N of corrupted examples, and finding them"
SOURCE = "Paul et al. (2021) App. F, Figs. 16–18 (the noisy-label experiment of their Fig. 2)"

DATASETS = ("clean", "noisy")


@dataclass(frozen=True)
class Config:
    setting: Setting
    keeps: tuple[float, ...] = (0.5,)                     # fixed subset sizes of the offset sweep
    offsets: tuple[float, ...] = (0.0, 0.2, 0.3, 0.4, 0.5)  # windows past the top (offset + keep > 1): skipped
    label_noise: float = 0.1                              # fraction of training labels permuted (Data Diet: 10 %)
    noise_seed: int = 0
    el2n_epoch: float | None = None                       # EL2N of sweep and histograms; None = setting.score_epoch
    bins: int = 40                                        # histogram bins

    def __post_init__(self) -> None:
        """Refuse settings that cannot show anything, before any training."""
        check_keeps(self.keeps)
        check_offsets(self.offsets)
        if not 0 < self.label_noise <= 1:
            raise ConfigError(f"noisy_labels compares clean with noisy labels, so label_noise must lie in (0, 1]; "
                              f"got {self.label_noise}. Use e.g. --label-noise 0.1 (Data Diet permutes 10 %).")
        if self.setting.data.label_noise:
            raise ConfigError(f"The setting's data already has label_noise={self.setting.data.label_noise}; "
                              "noisy_labels needs clean data and adds the noise itself (set Config.label_noise "
                              "instead).")
        empty = [k for k in self.keeps if not offset_windows(k, self.offsets)]
        if empty:
            raise ConfigError(f"No offset in {self.offsets} fits keep {empty[0]:g} (offset + keep must be ≤ 1); "
                              f"add offsets between 0 and {1 - empty[0]:g}.")


PRESETS = study_presets(NAME, Config, settings=ON_SCARCE,
    # 384 examples: 2 windows × 2 scores × 2 data × 2 seeds + 8 baseline runs, and 2 + 2 score runs.
    smoke=dict(keeps=(0.5,), offsets=(0.0, 0.5)),
    # 4,000 Fashion-MNIST examples, keep 50 %, 5 windows. New evaluation runs: 2 scores × 2 data × 5 offsets × 3 seeds
    # = 60, plus 3 full + 3 random on the noisy data (the clean full / random-50 % runs are shared with other
    # analyses, else 6 more): 66–72 × ≈ 10 s ≈ 11–12 min; 4 noisy score runs to epoch 20 (forgetting) ≈ 1–1.5 min;
    # the clean score runs are the shared, cached ones. Total ≈ 12.5–13.5 min.
    quick=dict(keeps=(0.5,), offsets=(0.0, 0.2, 0.3, 0.4, 0.5)),
    # CIFAR-10, ResNet18: Fig. 16 keeps 50 % (EL2N), Figs. 2/18 keep 40 % (EL2N, GraNd at init); EL2N at epoch 10 as
    # in those figures (10 extra clean runs, stopped at epoch 10); offsets every 10 % from 0 up to keeping the
    # hardest (the appendix text does not state the grid). (7 + 6) windows × 2 scores × 2 data × 4 seeds = 208
    # evaluation runs + 24 baseline runs, and 10 noisy score runs of 200 epochs.
    paper=dict(keeps=(0.4, 0.5), offsets=(0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6), el2n_epoch=10),
)


# ---------------------------------------------------------------- what to score and train

def el2n_label(config: Config) -> str:
    epoch = config.setting.score_epoch if config.el2n_epoch is None else config.el2n_epoch
    return str(ScoreLabel("el2n", epoch))


def sweep_labels(config: Config) -> tuple[str, ...]:
    """The two scores of App. F: EL2N early in training (Figs. 16/17) and GraNd at initialization (Fig. 18)."""
    return (el2n_label(config), "grand@init")


def self_confidence_label(setting: Setting) -> str:
    return setting.early("self_confidence")


def noisy_data(config: Config) -> DataConfig:
    return replace(config.setting.data, label_noise=config.label_noise, noise_seed=config.noise_seed)


def noisy_methods(config: Config) -> tuple[str, ...]:
    """Every standard score plus self-confidence (and the sweep's EL2N if it is not standard), from one set of runs."""
    extra = (self_confidence_label(config.setting), el2n_label(config))
    return tuple(dict.fromkeys((*standard_scores(config.setting), *extra)))


def sweep_tasks(ws: Workspace, config: Config, data: dict[str, DataConfig], tables: dict[str, dict]) -> list:
    """Random and full-data baselines plus every offset window of both scores, on clean and on noisy data."""
    setting, tasks = config.setting, []
    for name in DATASETS:
        tasks += baseline_tasks(ws, setting, config.keeps, data=data[name])
        for label in sweep_labels(config):
            for keep in config.keeps:
                for offset in offset_windows(keep, config.offsets):
                    kept = select(tables[name][label], keep=keep, offset=offset)
                    tasks += [ws.task(data[name], cfg, label, keep, kept, offset=offset)
                              for cfg in setting.eval_configs()]
    return tasks


# ---------------------------------------------------------------- the corrupted examples

def corrupted_examples(clean, noisy, fraction: float, seed: int) -> LabelNoise:
    """Recompute what :func:`load_data` did to the labels and check it against the noisy split.

    Args:
        clean, noisy: the clean and the noisy training split (ImageDatasets of the same examples).
    Returns:
        the :class:`LabelNoise` record; its ``changed_ids`` are the corrupted examples.
    """
    if not torch.equal(clean.ids, noisy.ids):
        raise DataDietError("The clean and noisy training splits hold different examples; both must come from the "
                            "same subset (only label_noise / noise_seed may differ).")
    _, record = permute_labels(clean, fraction, seed=seed)
    differs = torch.sort(clean.ids[clean.labels != noisy.labels]).values
    if not torch.equal(differs, torch.sort(record.changed_ids).values):
        raise DataDietError(f"Recomputing the label permutation (fraction {fraction}, seed {seed}) predicts "
                            f"{len(record.changed_ids)} changed labels, but the noisy split differs from the clean "
                            f"one at {len(differs)} examples (or at other ones); the noisy data was not made by "
                            "permute_labels with these settings.")
    if not torch.equal(torch.bincount(clean.labels), torch.bincount(noisy.labels)):
        raise DataDietError("The noisy labels are not a permutation of the clean ones (the class histogram changed).")
    return record


# ---------------------------------------------------------------- pure computations

def top_k_hits(scores, positive, k: int) -> int:
    """How many positives are among the ``k`` highest scores (ties in the seeded tie order, as :func:`select`)."""
    order = rank_order(scores)
    return int(np.asarray(positive, dtype=bool)[order[len(order) - k:]].sum()) if k else 0


def auroc_table(noisy_means: dict[str, np.ndarray], clean_means: dict[str, np.ndarray],
                corrupted: np.ndarray) -> list[dict]:
    """Per score: AUROC on the noisy runs, the same on the clean runs (a control: there the corrupted examples
    are an ordinary random sample, so ≈ 0.5), and precision among the top-n_corrupted, best first."""
    n = int(corrupted.sum())
    rows = []
    for label, values in noisy_means.items():
        control = clean_means.get(label)
        rows.append({"score": label, "auroc": auroc(values, corrupted),
                     "auroc_clean_runs": None if control is None else auroc(control, corrupted),
                     "precision_top_n": top_k_hits(values, corrupted, n) / n, "n_corrupted": n,
                     "n_examples": len(corrupted)})
    return sorted(rows, key=lambda r: -r["auroc"])


def distribution_rows(el2n_noisy: np.ndarray, el2n_clean: np.ndarray, corrupted: np.ndarray, label: str) -> list[dict]:
    """Summary statistics of the four EL2N distributions of Fig. 17."""
    groups = {"noisy runs: clean-label examples": el2n_noisy[~corrupted],
              "noisy runs: corrupted examples": el2n_noisy[corrupted],
              "corrupted examples before corruption (clean runs)": el2n_clean[corrupted],
              "corrupted examples after corruption (noisy runs)": el2n_noisy[corrupted]}
    return [{"score": label, "group": g, "n": len(v), "mean": float(v.mean()), "median": float(np.median(v)),
             "p10": float(np.percentile(v, 10)), "p90": float(np.percentile(v, 90))} for g, v in groups.items()]


def window_rows(noisy_means: dict[str, np.ndarray], ids: np.ndarray, corrupted: np.ndarray, keeps,
                offsets) -> list[dict]:
    """Corrupted examples inside every window of the sweep, and inside the keep-the-highest window."""
    n = int(corrupted.sum())
    corrupted_ids = set(ids[corrupted].tolist())
    rows = []
    for label, values in noisy_means.items():
        for keep in keeps:
            for offset in sorted(set(offset_windows(keep, offsets)) | {round(1 - keep, 10)}):
                kept = select(values, keep=keep, offset=offset, ids=ids)
                hits = len(corrupted_ids.intersection(kept.tolist()))
                rows.append({"score": label, "keep": keep, "offset": offset, "top_window": abs(offset + keep - 1) < 1e-9,
                             "n_kept": len(kept), "corrupted_kept": hits, "share_of_corrupted": hits / n,
                             "random_expectation": keep * n})
    return rows


def sweep_curve(rows: list[dict]) -> list[dict]:
    """Mean and 16th/84th percentile accuracy per (data, method, keep, offset)."""
    return [{"labels": name, **r} for name in DATASETS for r in curve_table([r for r in rows if r["labels"] == name])]


def best_windows(curve: list[dict], labels, keeps) -> list[dict]:
    """Per score, kept fraction and data: the best offset, the keep-the-hardest window and the baselines."""
    out = []
    for label in labels:
        for keep in keeps:
            for name in DATASETS:
                pts = sorted((r for r in curve if r["labels"] == name and r["method"] == label and r["keep"] == keep
                              and r["offset"] is not None), key=lambda r: r["offset"])
                if not pts:
                    continue
                best, hardest = max(pts, key=lambda r: r["mean"]), pts[-1]
                random = _baseline(curve, name, "random", keep)
                full = _baseline(curve, name, "full", 1.0)
                out.append({"score": label, "keep": keep, "labels": name, "best_offset": best["offset"],
                            "best_mean": best["mean"], "hardest_offset": hardest["offset"], "hardest_mean": hardest["mean"],
                            "easiest_mean": pts[0]["mean"], "random": random, "full": full})
    return out


def _baseline(curve: list[dict], name: str, method: str, keep: float) -> float:
    return next((r["mean"] for r in curve if r["labels"] == name and r["method"] == method and r["keep"] == keep),
                float("nan"))


# ---------------------------------------------------------------- the analysis

def run(config: Config, ws: Workspace) -> dict:
    setting, label = config.setting, el2n_label(config)
    data = {"clean": setting.data, "noisy": noisy_data(config)}
    tables = {"clean": _clean_tables(ws, config),
              "noisy": ws.scores(setting, data=data["noisy"], labels=noisy_methods(config))}
    clean_split, noisy_split = ws.splits(data["clean"]).train, ws.splits(data["noisy"]).train
    record = corrupted_examples(clean_split, noisy_split, config.label_noise, config.noise_seed)
    # Both tables list their split's examples in its order (load_scores checks each against its split), and the two
    # splits hold the same examples (corrupted_examples checks): the rows line up.
    ids = tables["noisy"][label].ids
    corrupted = np.isin(ids, record.changed_ids.numpy())
    means = {name: {k: t.mean for k, t in tables[name].items()} for name in DATASETS}

    aurocs = auroc_table(means["noisy"], means["clean"], corrupted)
    distributions = distribution_rows(means["noisy"][label], means["clean"][label], corrupted, label)
    window_table = window_rows({k: means["noisy"][k] for k in sweep_labels(config)}, ids, corrupted, config.keeps,
                               config.offsets)
    records = ws.evaluate(sweep_tasks(ws, config, data, tables), NAME)
    rows = [row for name in DATASETS for row in accuracy_rows(
        [r for r in records if (r["data"]["label_noise"] > 0) == (name == "noisy")], labels=name)]
    curve = sweep_curve(rows)
    best = best_windows(curve, sweep_labels(config), config.keeps)

    folder = ws.folder(NAME)
    write_csv(folder / "results.csv", rows)
    write_csv(folder / "corrupted.csv", corrupted_rows(record, noisy_split, ids, means, label))
    _plot_sweep(curve, window_table, sweep_labels(config), config.keeps, folder / "offsets.png")
    _plot_distributions(means["noisy"][label], means["clean"][label], corrupted, label, config.bins,
                        folder / "el2n_distributions.png")
    _plot_auroc(aurocs, folder / "auroc.png")
    el2n_shift = _el2n_shift(means, corrupted, label)
    lines = findings(config, record, aurocs, distributions, el2n_shift, best, window_table)
    return STUDY.write_section(folder, config, findings=lines,
        tables={"offsets.csv": curve, "best_offsets.csv": best, "auroc.csv": aurocs, "windows.csv": window_table,
         "el2n_distributions.csv": distributions},
        figures={"offsets.png": f"test accuracy (clean test set) against the offset at a fixed kept fraction, clean vs "
                        f"{config.label_noise:.0%} permuted labels; random subsets as a dashed line, full data dotted; "
                        "grey bars: corrupted examples inside each window",
         "el2n_distributions.png": f"{label} on the noisy data, clean vs corrupted examples (left), and the corrupted "
                                   "examples before and after corruption (right)",
         "auroc.png": "AUROC of each score (noisy runs) at ranking the corrupted examples first; 0.5 = chance"},
        summary={"n_train": len(ids), "n_chosen": len(record.chosen_ids), "n_corrupted": int(corrupted.sum()),
         "auroc": {r["score"]: r["auroc"] for r in aurocs}, "el2n_shift": el2n_shift, "best_offsets": best,
         "top_windows": [r for r in window_table if r["top_window"]]})


def _clean_tables(ws: Workspace, config: Config) -> dict:
    """The shared standard tables, plus the sweep's EL2N from its own (short: no forgetting) runs if not standard."""
    tables = dict(ws.scores(config.setting))
    label = el2n_label(config)
    if label not in tables:
        tables.update(ws.scores(config.setting, labels=(label,)))
    return tables


def _el2n_shift(means: dict, corrupted: np.ndarray, label: str) -> dict:
    before, after = means["clean"][label][corrupted], means["noisy"][label][corrupted]
    return {"mean_before": float(before.mean()), "mean_after": float(after.mean()),
            "share_increased": float((after > before).mean())}


def corrupted_rows(record: LabelNoise, noisy_split, ids: np.ndarray, means: dict, label: str) -> list[dict]:
    """One row per chosen example: its labels before and after, and its EL2N on clean and on noisy data."""
    position = {int(i): p for p, i in enumerate(ids)}
    noisy_labels = dict(zip(noisy_split.ids.tolist(), noisy_split.labels.tolist()))
    changed = set(record.changed_ids.tolist())
    pct = _percentiles(means["noisy"][label])
    return [{"id": int(i), "original_label": int(y), "noisy_label": noisy_labels[int(i)], "changed": int(i) in changed,
             f"{label} clean": float(means["clean"][label][position[int(i)]]),
             f"{label} noisy": float(means["noisy"][label][position[int(i)]]),
             "noisy_percentile": float(pct[position[int(i)]])}
            for i, y in zip(record.chosen_ids.tolist(), record.original_labels.tolist())]


def _percentiles(values: np.ndarray) -> np.ndarray:
    from scipy import stats

    return 100 * (stats.rankdata(values) - 0.5) / len(values)


def findings(config: Config, record: LabelNoise, aurocs: list[dict], distributions: list[dict], shift: dict,
             best: list[dict], window_table: list[dict]) -> list[str]:
    label = el2n_label(config)
    n, total = aurocs[0]["n_corrupted"], aurocs[0]["n_examples"]
    lines = [f"{len(record.chosen_ids)} of {total} training labels permuted ({config.label_noise:.0%}, seed "
             f"{config.noise_seed}); **{n}** actually changed (the rest drew their own class) and count as corrupted."]
    ranked = "; ".join(f"{r['score']} {r['auroc']:.3f}" for r in aurocs)
    lines.append(f"AUROC at ranking the corrupted examples first (noisy runs, higher = more suspect): {ranked}.")
    controls = [r["auroc_clean_runs"] for r in aurocs if r["auroc_clean_runs"] is not None]
    top = aurocs[0]
    lines.append(f"Best detector: **{top['score']}** (AUROC {top['auroc']:.3f}; {top['precision_top_n']:.0%} of its top "
                 f"{n} are corrupted). Control, the same examples scored by the clean runs (labels intact): AUROC "
                 f"{min(controls):.3f} to {max(controls):.3f}.")
    by_score = {r["score"]: r for r in aurocs}
    confidence, el2n = by_score.get(self_confidence_label(config.setting)), by_score.get(label)
    if confidence and el2n:
        lines.append(f"Self-confidence baseline (1 − p_y, in-sample, {confidence['score']}): AUROC "
                     f"{confidence['auroc']:.3f}, top-{n} precision {confidence['precision_top_n']:.0%}; {label}: AUROC "
                     f"{el2n['auroc']:.3f}, top-{n} precision {el2n['precision_top_n']:.0%}.")
    groups = {d["group"]: d for d in distributions}
    clean_g, bad_g = groups["noisy runs: clean-label examples"], groups["noisy runs: corrupted examples"]
    lines.append(f"{label} on noisy data: corrupted examples median {bad_g['median']:.3f} (mean {bad_g['mean']:.3f}) vs "
                 f"clean-label examples median {clean_g['median']:.3f} (mean {clean_g['mean']:.3f}). The same corrupted "
                 f"examples before corruption: mean {shift['mean_before']:.3f}, after: {shift['mean_after']:.3f}; "
                 f"{shift['share_increased']:.0%} of them scored higher after (Paul et al. F.2: higher after corruption).")
    for b in best:
        lines.append(f"{b['score']}, keep {b['keep']:g}, {b['labels']} labels: best offset **{b['best_offset']:g}** "
                     f"({b['best_mean']:.4f}); keeping the hardest (offset {b['hardest_offset']:g}) {b['hardest_mean']:.4f}, "
                     f"the easiest (offset 0) {b['easiest_mean']:.4f}; random {b['random']:.4f}, full data {b['full']:.4f}.")
    for r in (r for r in window_table if r["top_window"]):
        by_offset = ", ".join(f"{w['offset']:g}: {w['corrupted_kept']}" for w in window_table
                              if w["score"] == r["score"] and w["keep"] == r["keep"])
        lines.append(f"The top-{r['keep']:g} window of {r['score']} on noisy data holds **{r['corrupted_kept']}** of the "
                     f"{n} corrupted examples ({r['share_of_corrupted']:.0%}; a random {r['keep']:g} subset holds "
                     f"≈ {r['random_expectation']:.0f}); by offset: {by_offset}.")
    lines.append(f"Per-run accuracies: `{NAME}/results.csv`; per-example labels and {label}: `{NAME}/corrupted.csv`.")
    return lines


# ---------------------------------------------------------------- figures

def _plot_sweep(curve: list[dict], window_table: list[dict], labels, keeps, path):
    """One row per (score, kept fraction): the offset sweep on clean and on noisy labels side by side
    (:func:`figures.offset_panel`), the noisy panel with the corrupted examples each window holds."""
    plt = figures.pyplot()
    panels = [(label, keep) for label in labels for keep in keeps]
    fig, axes = plt.subplots(len(panels), 2, figsize=(10, 3.6 * len(panels)), squeeze=False, sharey="row")
    for row, (label, keep) in zip(axes, panels):
        for ax, name in zip(row, DATASETS):
            rows = [r for r in curve if r["labels"] == name]
            figures.offset_panel(ax, rows, keep, methods=[label], random_band=True)
            ax.set_title(f"{label}, keep {keep:g}, {name} labels", fontsize=10)
            if name == "noisy":  # how much noise each window holds explains the noisy curve
                _plot_corrupted_counts(ax, rows, window_table, label, keep)
        row[0].set_ylabel("test accuracy (clean test set)")
        row[0].legend(fontsize=8, loc="lower left")
    fig.tight_layout()
    return figures.save(fig, path)


def _plot_corrupted_counts(ax, curve: list[dict], window_table: list[dict], label: str, keep: float) -> None:
    """Grey bars on a second axis: the corrupted examples inside each window of the sweep."""
    offsets = sorted(r["offset"] for r in curve if r["method"] == label and r["keep"] == keep
                     and r["offset"] is not None)
    hits = {r["offset"]: r["corrupted_kept"] for r in window_table if r["score"] == label and r["keep"] == keep}
    twin = ax.twinx()
    twin.bar(offsets, [hits.get(o, 0) for o in offsets], width=0.04, color="grey", alpha=0.3)
    twin.set_ylabel("corrupted examples in window", color="grey", fontsize=8)


def _plot_distributions(noisy: np.ndarray, clean: np.ndarray, corrupted: np.ndarray, label: str, bins: int, path):
    plt = figures.pyplot()
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    edges = np.histogram_bin_edges(np.concatenate([noisy, clean]), bins=bins)
    left.hist(noisy[~corrupted], bins=edges, density=True, alpha=0.6, label=f"clean labels (n={int((~corrupted).sum())})")
    left.hist(noisy[corrupted], bins=edges, density=True, alpha=0.6, label=f"corrupted labels (n={int(corrupted.sum())})")
    left.set_title(f"noisy data: {label}", fontsize=10)
    right.hist(clean[corrupted], bins=edges, density=True, alpha=0.6, label="before corruption (clean runs)")
    right.hist(noisy[corrupted], bins=edges, density=True, alpha=0.6, label="after corruption (noisy runs)")
    right.set_title(f"the corrupted examples: {label}", fontsize=10)
    for ax in (left, right):
        ax.set_xlabel(f"{label} (mean over score runs)")
        ax.set_ylabel("density")
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
    return figures.save(fig, path)


def _plot_auroc(aurocs: list[dict], path):
    plt = figures.pyplot()
    rows = aurocs[::-1]  # best at the top
    fig, ax = plt.subplots(figsize=(6.5, 0.3 * len(rows) + 1.2))
    y = np.arange(len(rows))
    ax.barh(y, [r["auroc"] for r in rows], color="tab:orange", label="noisy runs")
    ax.scatter([np.nan if r["auroc_clean_runs"] is None else r["auroc_clean_runs"] for r in rows], y, color="black",
               marker="|", s=120, label="control: clean runs")
    ax.set_yticks(y, [r["score"] for r in rows], fontsize=8)
    ax.axvline(0.5, color="grey", linestyle="--")
    ax.set_xlim(0, 1)
    ax.set_xlabel("AUROC (corrupted examples ranked first)")
    ax.legend(fontsize=8, loc="lower right")
    ax.grid(alpha=0.3, axis="x")
    return figures.save(fig, path)


STUDY = Study(NAME, TITLE, SOURCE, Config, PRESETS, run, doc=__doc__)
