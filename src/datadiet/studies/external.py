"""External per-example values [Paul et al. (2021) App. G: EL2N against memorization estimates].

The user supplies per-example values (Paul et al. used Feldman & Zhang's memorization estimates for 1,015
CIFAR-100 examples) as a CSV file with an id column and a value column, or as an ``.npz`` with arrays ``ids``
and ``values``. Ids are example ids: positions in the dataset's canonical (official) training order, the ids
every datadiet score file carries. Each score (mean over the R score runs) is correlated with the values on
the examples both cover: Spearman and Pearson, scatter plots, and the mean value per score decile.

Partial coverage is allowed, because memorization estimates usually exist for a subset only: the analysis
uses the intersection of the file's ids with the setting's training examples and reports how many matched.
Ids that are not examples of the dataset's training split at all are an error (the table was made for another
dataset or uses another id convention), as are duplicate ids, non-numeric or NaN values and too few matches.

``datadiet analyze external --values memorization.csv --value-column mem`` correlates with the user's table.
Without ``--values``, the smoke and quick presets first estimate memorization themselves (Feldman & Zhang's
subsampled estimator, ``memorization.py``: 4 and 16 runs on random halves) and use that table, so the analysis
runs end to end on Fashion-MNIST; the paper preset needs ``--values`` (Feldman & Zhang's published CIFAR-100
estimates).
"""
from __future__ import annotations

import csv
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from ..report import figures
from ..selection import rank_order
from ..stats import correlations
from ..errors import DataDietError, unknown_name
from ..io import read_npz
from ..runs.memorization import estimate
from ..runs.presets import ON_SCARCE, Setting, study_presets
from ..runs.workspace import Workspace
from ..config import check_counts, check_fractions
from ..errors import ConfigError
from .common import Study, check_score_labels
NAME = "external"
TITLE = "Scores against external per-example values"
SOURCE = "Paul et al. (2021) App. G (Fig. 19, memorization)"


class ExternalValuesError(DataDietError, ValueError):
    """The user's table of per-example values cannot be used."""


@dataclass(frozen=True)
class Config:
    setting: Setting
    values: str | None = None         # CSV or .npz of per-example values (or --memorization-runs)
    id_column: str = "id"             # CSV: the id column (npz: this array if present, else ``ids``)
    value_column: str | None = None   # CSV: the value column; None = the only other column (npz: ``values``)
    scores: tuple[str, ...] = ()      # score labels to correlate; empty = every standard score
    memorization_runs: int = 0        # without values: estimate memorization with this many subset runs
    memorization_fraction: float = 0.5  # each memorization run trains on this fraction of the examples
    min_matched: int = 10             # fewer matched examples than this is an error (deciles need 10)
    bins: int = 10                    # score quantile bins of the binned plot (deciles)
    max_points: int = 5000            # examples drawn per scatter plot (all are used for the numbers)

    def __post_init__(self) -> None:
        check_counts(self, ("min_matched", "bins", "max_points"))
        if not (isinstance(self.memorization_runs, int) and self.memorization_runs >= 0):
            raise ConfigError(f"--memorization-runs must be a whole number >= 0; got {self.memorization_runs}.")
        check_fractions("--memorization-fraction", (self.memorization_fraction,), "(0, 1)")
        check_score_labels(self, "scores")


# Cost with a table: the shared score runs (cached) plus reading it, seconds.  Without one, smoke and quick
# estimate memorization first: quick trains 16 small CNNs on 2,000 of the 4,000 examples with the full 20-epoch
# step budget (≈ 25 s each on 2 CPU cores, ≈ 7 min).  The paper preset needs --values.
PRESETS = study_presets(NAME, Config, settings=ON_SCARCE, smoke=dict(memorization_runs=4), quick=dict(memorization_runs=16))


# ---------------------------------------------------------------- reading and joining (pure, no workspace)


def read_values(path: str | Path, id_column: str = "id", value_column: str | None = None
                ) -> tuple[np.ndarray, np.ndarray, str]:
    """Per-example values from a CSV or ``.npz`` file: ``(ids int64 [M], values float64 [M], value name)``.

    Raises :class:`ExternalValuesError` for a missing or unreadable file, missing columns, non-integer ids,
    non-numeric, empty or non-finite values and duplicate ids.
    """
    path = Path(path)
    if not path.is_file():
        raise ExternalValuesError(f"The values file {path} does not exist. Pass --values PATH with a CSV file "
                                  f"(columns {id_column!r} and a value column) or an .npz file (arrays ids, values).")
    if path.suffix.lower() == ".npz":
        ids, values, name = _read_npz(path, id_column, value_column)
    else:
        ids, values, name = _read_csv(path, id_column, value_column)
    _check_values(path, ids, values, name)
    return ids, values, name


def _read_csv(path: Path, id_column: str, value_column: str | None) -> tuple[np.ndarray, np.ndarray, str]:
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise ExternalValuesError(f"Cannot read {path} as a UTF-8 CSV file: {exc}.") from exc
    delimiter = "\t" if "\t" in text.partition("\n")[0] and "," not in text.partition("\n")[0] else ","
    reader = csv.reader(text.splitlines(), delimiter=delimiter)
    header = [h.strip() for h in next(reader, [])]
    if not header or header == [""]:
        raise ExternalValuesError(f"{path} is empty; it needs a header row with an id and a value column.")
    if id_column not in header:
        raise ExternalValuesError(f"{path} has no id column {id_column!r} (columns: {', '.join(header)}); name it "
                                  "with --id-column.")
    others = [h for h in header if h != id_column]
    if value_column is None:
        if len(others) != 1:
            raise ExternalValuesError(f"{path} has {len(others)} columns besides {id_column!r} "
                                      f"({', '.join(others) or 'none'}); choose the values with --value-column.")
        value_column = others[0]
    elif value_column not in header:
        raise ExternalValuesError(f"{path} has no value column {value_column!r} (columns: {', '.join(header)}); "
                                  "name it with --value-column.")
    i, j = header.index(id_column), header.index(value_column)
    ids, values = [], []
    for line, row in enumerate(reader, start=2):
        if not row or all(not c.strip() for c in row):
            continue  # blank lines, e.g. a trailing newline
        if len(row) != len(header):
            raise ExternalValuesError(f"{path}, line {line}: {len(row)} fields, but the header has {len(header)}.")
        ids.append(_parse_id(path, line, row[i], id_column))
        values.append(_parse_value(path, line, row[j], value_column))
    return np.asarray(ids, dtype=np.int64), np.asarray(values, dtype=np.float64), value_column


def _parse_id(path: Path, line: int, text: str, column: str) -> int:
    try:
        number = float(text.strip())
    except ValueError:
        number = float("nan")
    if not np.isfinite(number) or number != int(number):
        raise ExternalValuesError(f"{path}, line {line}: id {text!r} in column {column!r} is not an integer example "
                                  "id (ids are positions in the dataset's official training order: 0, 1, 2, ...).")
    return int(number)


def _parse_value(path: Path, line: int, text: str, column: str) -> float:
    if not text.strip():
        raise ExternalValuesError(f"{path}, line {line}: the value in column {column!r} is empty. Remove the row "
                                  "or give it a value.")
    try:
        return float(text.strip())
    except ValueError:
        raise ExternalValuesError(f"{path}, line {line}: value {text!r} in column {column!r} is not a number.") \
            from None


def _read_npz(path: Path, id_column: str, value_column: str | None) -> tuple[np.ndarray, np.ndarray, str]:
    # Which keys it needs depends on the keys it has (the id column falls back to "ids"): checked below.
    arrays = read_npz(path, what="a file of values (.npz of plain arrays)", error=ExternalValuesError,
                      fix="Save the values with numpy.savez(path, ids=..., values=...), or pass a .csv or .json.")
    id_name = id_column if id_column in arrays else "ids"
    value_name = value_column or "values"
    for name in (id_name, value_name):
        if name not in arrays:
            raise ExternalValuesError(f"{path} has no array {name!r} (arrays: {', '.join(sorted(arrays)) or 'none'}); "
                                      "it needs arrays ids and values (or name them with --id-column/--value-column).")
    ids, values = np.asarray(arrays[id_name]), np.asarray(arrays[value_name])
    if ids.ndim != 1 or values.shape != ids.shape:
        raise ExternalValuesError(f"{path}: {id_name} {ids.shape} and {value_name} {values.shape} must be vectors of "
                                  "the same length.")
    if values.dtype.kind not in "iuf":
        raise ExternalValuesError(f"{path}: {value_name} holds {values.dtype} data, not numbers.")
    if ids.dtype.kind == "f" and np.all(np.isfinite(ids)) and np.all(ids == np.round(ids)):
        ids = ids.astype(np.int64)  # integral floats are ids written by a tool that knows no integers
    if ids.dtype.kind not in "iu":
        raise ExternalValuesError(f"{path}: {id_name} holds {ids.dtype} data, not integer example ids.")
    return ids.astype(np.int64), values.astype(np.float64), value_name


def _check_values(path: Path, ids: np.ndarray, values: np.ndarray, name: str) -> None:
    if len(ids) == 0:
        raise ExternalValuesError(f"{path} holds no rows of values.")
    bad = ~np.isfinite(values)
    if bad.any():
        raise ExternalValuesError(f"{path}: {int(bad.sum())} values of {name!r} are NaN or infinite (ids "
                                  f"{ids[bad][:5].tolist()}{' ...' if bad.sum() > 5 else ''}). Drop those rows.")
    unique, counts = np.unique(ids, return_counts=True)
    if (counts > 1).any():
        twice = unique[counts > 1]
        raise ExternalValuesError(f"{path}: {len(twice)} ids occur more than once (first: {twice[:5].tolist()}); "
                                  "give each example one value.")


def join_values(ids: np.ndarray, values: np.ndarray, train_ids: np.ndarray, dataset_ids: np.ndarray, *,
                dataset: str = "the dataset", min_matched: int = 10) -> tuple[np.ndarray, np.ndarray, dict]:
    """Match the file's ids to the training examples.

    Args:
        ids, values: the file's rows.
        train_ids: ids of the setting's training examples (the score tables' order).
        dataset_ids: ids of the dataset's whole training split (every valid id).
    Returns:
        ``(positions into train_ids, values at those positions, coverage counts)``, sorted by position.
    Raises:
        ExternalValuesError: ids that are no example of the training split, or fewer than ``min_matched`` matches.
    """
    unknown = ~np.isin(ids, dataset_ids)
    if unknown.any():
        raise ExternalValuesError(
            f"{int(unknown.sum())} of the {len(ids)} ids in the values file are not examples of {dataset}'s "
            f"training split (valid ids: {int(dataset_ids.min())}..{int(dataset_ids.max())}; first unknown: "
            f"{ids[unknown][:5].tolist()}). The table was made for another dataset or numbers examples differently; "
            "ids must be positions in the official training order.")
    position = {int(i): p for p, i in enumerate(train_ids)}
    pairs = sorted((position[int(i)], float(v)) for i, v in zip(ids, values) if int(i) in position)
    coverage = {"file_rows": int(len(ids)), "matched": len(pairs), "training_examples": int(len(train_ids)),
                "outside_subset": int(len(ids) - len(pairs))}
    if len(pairs) < min_matched:
        raise ExternalValuesError(
            f"Only {len(pairs)} of the {len(ids)} ids in the values file are among the {len(train_ids)} training "
            f"examples of this setting (the other {coverage['outside_subset']} are examples of {dataset} outside "
            f"its subset); at least {min_matched} are needed. Use a setting whose training set covers the table, "
            "or a table for these examples.")
    positions = np.array([p for p, _ in pairs], dtype=np.int64)
    return positions, np.array([v for _, v in pairs], dtype=np.float64), coverage


# ---------------------------------------------------------------- correlations (pure)


def binned_means(score: np.ndarray, values: np.ndarray, ids: np.ndarray, bins: int = 10) -> list[dict]:
    """Examples sorted by score (ties in rank_order's seeded tie order) cut into ``bins`` near-equal groups: the mean value per group."""
    order = rank_order(score, ids)
    rows = []
    for b, group in enumerate(np.array_split(order, min(bins, len(order)))):
        v = values[group]
        rows.append({"bin": b + 1, "n": len(group), "score_min": float(score[group].min()),
                     "score_max": float(score[group].max()), "value_mean": float(v.mean()),
                     "value_sem": float(v.std(ddof=1) / np.sqrt(len(v))) if len(v) > 1 else float("nan")})
    return rows


# ---------------------------------------------------------------- the analysis


def run(config: Config, ws: Workspace) -> dict:
    setting = config.setting
    estimated = config.values is None
    config = with_values(config, ws)
    ids, values, value_name = read_values(config.values, config.id_column, config.value_column)
    splits = ws.splits(setting.data)
    whole = ws.splits(replace(setting.data, subset=None, label_noise=0.0)).train  # every valid id
    positions, matched, coverage = join_values(ids, values, splits.train.ids.numpy(), whole.ids.numpy(),
                                               dataset=setting.data.dataset, min_matched=config.min_matched)
    tables = ws.scores(setting)
    labels = config.scores or tuple(tables)
    for label in labels:
        if label not in tables:
            raise unknown_name("score", label, tuple(tables))
    matched_ids = splits.train.ids.numpy()[positions]
    scores = {label: tables[label].mean[positions] for label in labels}

    corr = [{"score": label, "n": len(positions), **correlations(scores[label], matched)} for label in labels]
    binned = [{"score": label, **row} for label in labels
              for row in binned_means(scores[label], matched, matched_ids, config.bins)]
    folder = ws.folder(NAME)
    plot_scatter(scores, matched, corr, value_name, folder / "scatter.png", max_points=config.max_points)
    plot_binned(binned, labels, value_name, folder / "binned.png")

    lines = findings(corr, binned, coverage, value_name, setting)
    if estimated:
        lines.insert(0, f"Values: memorization estimated here from {config.memorization_runs} runs on random "
                        f"{config.memorization_fraction:.0%} subsets (Feldman & Zhang's estimator); mean "
                        f"{values.mean():.3f}, {float((values > 0.5).mean()):.1%} of the examples above 0.5.")
    return STUDY.write_section(folder, config, findings=lines,
        tables={"correlations.csv": corr, "binned.csv": binned},
        figures={"scatter.png": f"{value_name} against each score (mean over {setting.score_runs} runs), matched examples",
         "binned.png": f"mean {value_name} per score bin (examples sorted by score, {config.bins} equal groups; "
                       "bars: standard error)"},
        summary={"coverage": coverage, "spearman": {r["score"]: r["spearman"] for r in corr},
         "pearson": {r["score"]: r["pearson"] for r in corr}})


def missing_input(config: Config) -> str | None:
    """Why this config cannot run on its own (``analyze all`` skips it), or None."""
    if config.values is None and config.memorization_runs <= 0:
        return "needs --values PATH (per-example values) or --memorization-runs K"
    return None


def with_values(config: Config, ws: Workspace) -> Config:
    """The config with a values file: the user's, or else a memorization estimate made here."""
    if config.values is not None:
        return config
    if missing_input(config):
        raise ExternalValuesError(
            "The external analysis correlates the scores with per-example values and has none: pass --values PATH "
            "(a CSV with an id column and a value column, or an .npz with arrays ids and values; ids are positions "
            "in the dataset's official training order), or --memorization-runs K to estimate memorization here.")
    path = estimate(ws, config.setting, config.memorization_runs, fraction=config.memorization_fraction)
    return replace(config, values=str(path), id_column="id", value_column="memorization")


def findings(corr: list[dict], binned: list[dict], coverage: dict, value_name: str, setting: Setting) -> list[str]:
    lines = [f"{coverage['matched']} of the {coverage['file_rows']} examples in the values file are among the "
             f"{coverage['training_examples']} training examples ({coverage['outside_subset']} lie outside this "
             f"setting's subset); all correlations use these {coverage['matched']}."]
    ranked = sorted((r for r in corr if np.isfinite(r["spearman"])), key=lambda r: -abs(r["spearman"]))
    if ranked:
        lines.append(f"Strongest rank correlation with {value_name}: " + "; ".join(
            f"{r['score']} Spearman {r['spearman']:.3f} (Pearson {r['pearson']:.3f})" for r in ranked[:3]) + ".")
    el2n = next((r for r in corr if r["score"] == setting.early("el2n")), None)
    if el2n is not None:
        bins = [b for b in binned if b["score"] == el2n["score"]]
        lines.append(f"{el2n['score']} ~ {value_name}: Spearman {el2n['spearman']:.3f} (p = {el2n['spearman_p']:.2g}), "
                     f"Pearson {el2n['pearson']:.3f}; mean {value_name} {bins[0]['value_mean']:.3g} in the lowest and "
                     f"{bins[-1]['value_mean']:.3g} in the highest EL2N bin (Paul et al. App. G: EL2N and "
                     "memorization values do not appear correlated).")
    rand = next((r for r in corr if r["score"] == "random"), None)
    if rand is not None:
        lines.append(f"Sanity check: the random score ~ {value_name}: Spearman {rand['spearman']:.3f}.")
    return lines


# ---------------------------------------------------------------- figures


def _grid(plt, count: int):
    cols = min(4, count)
    rows = -(-count // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.3 * cols, 2.9 * rows), squeeze=False, layout="constrained")
    for ax in axes.flat[count:]:
        ax.axis("off")
    return fig, list(axes.flat)


def plot_scatter(scores: dict, values: np.ndarray, corr: list[dict], value_name: str, path: Path, *,
                 max_points: int) -> Path:
    plt = figures.pyplot()
    fig, axes = _grid(plt, len(scores))
    pick = np.random.default_rng(0).permutation(len(values))[:max_points]
    for ax, (label, x), row in zip(axes, scores.items(), corr):
        ax.scatter(x[pick], values[pick], s=4, alpha=0.4, linewidths=0)
        ax.set_title(f"{label}\nρ = {row['spearman']:.3f}, r = {row['pearson']:.3f}", fontsize=8)
        ax.set_ylabel(value_name, fontsize=7)
        ax.tick_params(labelsize=6)
        ax.grid(alpha=0.3)
    return figures.save(fig, path)


def plot_binned(binned: list[dict], labels, value_name: str, path: Path) -> Path:
    plt = figures.pyplot()
    fig, axes = _grid(plt, len(labels))
    for ax, label in zip(axes, labels):
        rows = [r for r in binned if r["score"] == label]
        ax.errorbar([r["bin"] for r in rows], [r["value_mean"] for r in rows],
                    yerr=[0 if np.isnan(r["value_sem"]) else r["value_sem"] for r in rows], marker="o", capsize=2)
        overall = sum(r["n"] * r["value_mean"] for r in rows) / sum(r["n"] for r in rows)
        ax.axhline(overall, color="gray", linestyle="--", linewidth=1)  # no relation: every bin near this line
        ax.set_title(label, fontsize=8)
        ax.set_xlabel("score bin (low → high)", fontsize=7)
        ax.set_ylabel(f"mean {value_name}", fontsize=7)
        ax.tick_params(labelsize=6)
        ax.grid(alpha=0.3)
    return figures.save(fig, path)


STUDY = Study(NAME, TITLE, SOURCE, Config, PRESETS, run, doc=__doc__, missing_input=missing_input)
