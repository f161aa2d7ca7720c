"""Example grids [Paul et al. (2021) Figs. 5–8]: the lowest- and highest-scoring training images of each class.

For each score (mean over the R score runs) and each class, the two lowest- and the two highest-scoring
training images, one figure per score: rows are classes, columns the lowest, second lowest, second highest
and highest image, titled with example id and score. Ties follow ``selection.rank_order``'s seeded tie order at both
ends (never the id, which follows class order in folders), so the grid is deterministic even for integer
scores such as forgetting (where many examples tie).
No training beyond the shared score runs.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..report import figures
from ..scores.registry import ScoreLabel
from ..selection import rank_order
from ..errors import unknown_name
from ..runs.presets import ON_SCARCE, Setting, study_presets
from ..runs.workspace import Workspace
from ..config import check_counts
from .common import Study, check_score_labels
NAME = "examples"
TITLE = "Lowest- and highest-scoring examples of each class"
SOURCE = "Paul et al. (2021) Figs. 5–8"


@dataclass(frozen=True)
class Config:
    setting: Setting
    scores: tuple[str, ...] = ()   # score labels; empty = EL2N and GraNd early, GraNd at init, forgetting, input norm
    per_side: int = 2              # images at each end of each class' ranking (the papers show 2)

    def __post_init__(self) -> None:
        check_counts(self, ("per_side",))
        check_score_labels(self, "scores")


# Every preset costs only the shared score runs (cached) plus drawing: seconds on top of them.
PRESETS = study_presets(NAME, Config, settings=ON_SCARCE)


def default_scores(setting: Setting) -> tuple[str, ...]:
    return (setting.early("el2n"), setting.early("grand"), "grand@init", "forgetting@end", "input_norm")


# ---------------------------------------------------------------- pure computations


def extremes(values: np.ndarray, ids: np.ndarray, labels: np.ndarray, per_side: int = 2) -> list[dict]:
    """For every class, the ``per_side`` lowest and highest examples.

    Returns rows ``{label, kind ("lowest"/"highest"), position (1 = most extreme), row (index into the
    arrays), id, value}``. Ties follow ``rank_order``'s seeded tie order at both ends. A class with fewer than
    ``2·per_side`` examples shows some examples at both ends.
    """
    values, ids, labels = np.asarray(values, dtype=np.float64), np.asarray(ids), np.asarray(labels)
    rows = []
    for label in np.unique(labels):
        members = np.flatnonzero(labels == label)
        ascending = members[rank_order(values[members], ids[members])]    # value up, ties in the seeded tie order
        descending = members[rank_order(-values[members], ids[members])]  # value down, ties in the seeded tie order
        for kind, order in (("lowest", ascending), ("highest", descending)):
            rows += [{"label": int(label), "kind": kind, "position": p + 1, "row": int(r), "id": int(ids[r]),
                      "value": float(values[r])} for p, r in enumerate(order[:per_side])]
    return rows


def ties_at_cut(values: np.ndarray, labels: np.ndarray, per_side: int = 2) -> int:
    """How many (class, end) cuts fall inside a run of tied values, i.e. where the tie order decided who is shown."""
    values, labels = np.asarray(values, dtype=np.float64), np.asarray(labels)
    decided = 0
    for label in np.unique(labels):
        ranked = np.sort(values[labels == label])
        if len(ranked) > per_side:
            decided += int(ranked[per_side - 1] == ranked[per_side])      # lowest end
            decided += int(ranked[-per_side] == ranked[-per_side - 1])   # highest end
    return decided


def grid_order(rows: list[dict], label: int) -> list[dict]:
    """One class' columns left to right: lowest, second lowest, …, second highest, highest."""
    low = sorted((r for r in rows if r["label"] == label and r["kind"] == "lowest"), key=lambda r: r["position"])
    high = sorted((r for r in rows if r["label"] == label and r["kind"] == "highest"), key=lambda r: -r["position"])
    return low + high


def percentile_of(values: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Percentile (0–100) of each value within ``reference``, the share of reference values below or equal."""
    ref = np.sort(reference)
    return 100.0 * np.searchsorted(ref, values, side="right") / len(ref)


# ---------------------------------------------------------------- the analysis


def run(config: Config, ws: Workspace) -> dict:
    setting = config.setting
    tables = ws.scores(setting)
    labels_wanted = config.scores or default_scores(setting)
    for label in labels_wanted:
        if label not in tables:
            raise unknown_name("score", label, tuple(tables))
    splits = ws.splits(setting.data)
    train = splits.train
    ids, labels = train.ids.numpy(), train.labels.numpy()
    norm = tables["input_norm"].mean
    folder = ws.folder(NAME)

    table, figs, stats = [], {}, []
    for score in labels_wanted:
        values = tables[score].mean  # in the training set's order (checked when the score file is loaded)
        rows = extremes(values, ids, labels, config.per_side)
        table += [{"score": score, "class": train.classes[r["label"]], "label": r["label"], "kind": r["kind"],
                   "position": r["position"], "id": r["id"], "value": r["value"]} for r in rows]
        file = f"grid_{ScoreLabel.parse(score).file_stem}.png"
        plot_grid(train, rows, score, folder / file)
        figs[file] = (f"{score}: per class (rows), the {config.per_side} lowest (left) and {config.per_side} highest "
                      "(right) scoring training images; titles give id and score")
        stats.append(summarize(score, rows, values, labels, norm, config.per_side))

    return STUDY.write_section(folder, config, findings=findings(stats, setting),
        tables={"examples.csv": table, "summary.csv": stats},
        figures=figs,
        summary={"input_norm_percentile": {s["score"]: {"lowest": s["lowest_norm_percentile"],
                                                              "highest": s["highest_norm_percentile"]} for s in stats}})


def summarize(score: str, rows: list[dict], values: np.ndarray, labels: np.ndarray, norm: np.ndarray,
              per_side: int) -> dict:
    """Per score: the range of shown values and where the shown images' input norms sit among all examples
    (Kirsch: GraNd at init picks by input norm, so its highest images should be the high-norm ones)."""
    low = [r for r in rows if r["kind"] == "lowest"]
    high = [r for r in rows if r["kind"] == "highest"]
    pct = percentile_of(norm, norm)
    return {"score": score, "classes": len({r["label"] for r in rows}),
            "lowest_mean": float(np.mean([r["value"] for r in low])),
            "highest_mean": float(np.mean([r["value"] for r in high])),
            "all_mean": float(values.mean()),
            "lowest_norm_percentile": float(np.mean([pct[r["row"]] for r in low])),
            "highest_norm_percentile": float(np.mean([pct[r["row"]] for r in high])),
            "cuts_decided_by_tie": ties_at_cut(values, labels, per_side)}


def findings(stats: list[dict], setting: Setting) -> list[str]:
    lines = []
    for s in stats:
        line = (f"{s['score']}: the shown lowest images score {s['lowest_mean']:.3g} on average and the highest "
                f"{s['highest_mean']:.3g} (all examples: {s['all_mean']:.3g}); their input norms sit at "
                f"percentile {s['lowest_norm_percentile']:.0f} and {s['highest_norm_percentile']:.0f} of all examples")
        if s["cuts_decided_by_tie"]:
            line += (f"; in {s['cuts_decided_by_tie']} of {2 * s['classes']} class ends the score ties and the "
                     "seeded tie order chose what was shown")
        lines.append(line + ".")
    init = next((s for s in stats if s["score"] == "grand@init"), None)
    if init is not None:
        lines.append(f"GraNd at init's highest-scoring images have input norms at percentile "
                     f"{init['highest_norm_percentile']:.0f} on average and its lowest at percentile "
                     f"{init['lowest_norm_percentile']:.0f} (Kirsch: GraNd at init ranks by input norm).")
    return lines


def plot_grid(dataset, rows: list[dict], score: str, path: Path) -> Path:
    """Rows = classes, columns = lowest … highest; each image titled with its id and score."""
    plt = figures.pyplot()
    classes = sorted({r["label"] for r in rows})
    columns = max(len(grid_order(rows, c)) for c in classes)
    fig, axes = plt.subplots(len(classes), columns, figsize=(1.5 * columns + 1.0, 1.6 * len(classes) + 0.5),
                             squeeze=False, layout="constrained")
    positions = dataset.positions_of([r["id"] for r in rows]).numpy()
    image_of = {r["id"]: dataset.images[int(p)] for r, p in zip(rows, positions)}
    for i, label in enumerate(classes):
        for j in range(columns):
            ax = axes[i][j]
            ax.set_xticks([])
            ax.set_yticks([])
            shown = grid_order(rows, label)
            if j >= len(shown):
                ax.axis("off")
                continue
            r = shown[j]
            img = image_of[r["id"]].permute(1, 2, 0).numpy()
            if img.shape[2] == 1:
                ax.imshow(img[:, :, 0], cmap="gray", vmin=0, vmax=255)
            else:
                ax.imshow(img)
            ax.set_title(f"id {r['id']}\n{r['value']:.3g}", fontsize=7)
            if j == 0:
                ax.set_ylabel(dataset.classes[label], fontsize=8)
    fig.suptitle(f"{score}: lowest (left) and highest (right) per class", fontsize=10)
    return figures.save(fig, path)


STUDY = Study(NAME, TITLE, SOURCE, Config, PRESETS, run, doc=__doc__)
