"""Label-independent scores against GraNd and EL2N [Paul et al. (2021) App. D, Fig. 9].

With ``ψ_k = ∇_θ f_k(x)`` and ``p = softmax(f(x))``, GraNd is ``‖Σ_k (p_k − y_k) ψ_k‖`` and EL2N ``‖p − y‖``.
Dropping the label gives Score1 ``‖Σ_k ψ_k‖``, Score2 ``‖p‖`` and Score3 ``‖Σ_k p_k ψ_k‖``. Every score at
initialization and early in training, all from the same standard score runs; their Spearman correlations;
then keep the highest-scoring 50 % by each and retrain, against random subsets and the full data. Paul et
al.: "Only the label-dependent scores perform significantly better than the random baseline", and GraNd beat
Score1, its label-free variant, at initialization.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..report import figures
from ..config import check_keeps
from ..report.tables import curve_table
from ..stats import spearman_matrix, summarize, verdict_phrase
from ..scores.registry import ScoreLabel, score_spec
from .compare import accuracies, check_labels, contrast, interval_text, mean_or_nan, relation, verdict
from ..runs.presets import ON_SCARCE, Setting, standard_scores, study_presets
from ..runs.workspace import Workspace
from .common import Study, accuracy_rows, baseline_tasks, coverage, pruning_tasks

NAME = "label_free"
TITLE = "Label-independent scores (Score1–3) against GraNd and EL2N"
SOURCE = "Paul et al. (2021) App. D, Fig. 9"

LABEL_USING = ("grand", "el2n")
LABEL_FREE = ("score1", "score2", "score3")
# The label-using score each label-free one is an ablation of: Score1 and Score3 drop the label from
# GraNd's logit-gradient sum (Paul et al. call Score1 GraNd's label-independent variant), Score2 from EL2N.
COUNTERPART = {"score1": "grand", "score2": "el2n", "score3": "grand"}


@dataclass(frozen=True)
class Config:
    setting: Setting
    keeps: tuple[float, ...] = (0.5,)
    scores: tuple[str, ...] = ()        # score labels; empty = GraNd, EL2N, Score1–3 at init and early

    def __post_init__(self) -> None:
        check_keeps(self.keeps)


# smoke: 10 scores × 2 seeds + 2 random + 2 full = 24 tiny runs.
# quick: 10 scores × 3 seeds + 3 random + 3 full = 36 runs ≈ 6 min at ≈ 10 s a run (EL2N/GraNd at keep 0.5 and
# the baselines are shared with the other analyses of the workspace); no new score runs.
# paper (Fig. 9): 50 % of CIFAR-10 kept, ResNet18, scores at init and epoch 20 averaged over 10 runs.
PRESETS = study_presets(NAME, Config, settings=ON_SCARCE)


def default_labels(setting: Setting) -> tuple[str, ...]:
    return tuple(str(ScoreLabel(s, epoch)) for epoch in (0.0, setting.score_epoch) for s in (*LABEL_USING, *LABEL_FREE))


def run(config: Config, ws: Workspace) -> dict:
    setting = config.setting
    labels = config.scores or default_labels(setting)
    check_labels(labels, standard_scores(setting))
    draws = ws.score_draws(setting)
    names, rho = spearman_matrix({label: draws.for_seed(0)[label].mean for label in labels})  # draw 0

    tasks = baseline_tasks(ws, setting, config.keeps)
    for label in labels:
        tasks += pruning_tasks(ws, setting, label, draws, config.keeps)
    rows = accuracy_rows(ws.evaluate(tasks, NAME))
    table = accuracy_table(rows, labels, config.keeps, dict(zip(names, rho)), names)

    folder = ws.folder(NAME)
    figures.correlation_heatmap(names, rho, folder / "spearman.png",
                                title="Spearman: label-using and label-free scores")
    _plot_accuracy(labels, curve_table(rows), folder / "accuracy.png")
    matrix = [{"score": n, **{m: float(rho[i, j]) for j, m in enumerate(names)}} for i, n in enumerate(names)]
    return STUDY.write_section(folder, config, findings=[coverage(setting), *findings(table)],
        tables={"accuracy.csv": table, "spearman.csv": matrix, "results.csv": rows},
        figures={"accuracy.png": "test accuracy after keeping the highest-scoring examples by each score (mean, 16th–84th "
                         "percentile over evaluation seeds), one panel per scoring time; random subsets in black, "
                         "full data dotted",
         "spearman.png": "Spearman rank correlation between the label-using and label-free scores"},
        summary={"points": table})


def counterpart_of(label: str) -> str | None:
    """The label-using score at the same time, for a label-free score; ``None`` otherwise."""
    parsed = ScoreLabel.parse(label)
    return str(ScoreLabel.at(COUNTERPART[parsed.name], parsed.epoch)) if parsed.name in COUNTERPART else None


def accuracy_table(rows, labels, keeps, rho_rows: dict, names: list[str]) -> list[dict]:
    """Per (score, kept fraction): mean accuracy with its spread, against random and (label-free scores)
    against the label-using counterpart at the same time, with Welch 95 % intervals."""
    out = []
    full = accuracies(rows, "full", 1.0)
    for label in labels:
        parsed = ScoreLabel.parse(label)
        name, when = parsed.name, parsed.when
        other = counterpart_of(label)
        for keep in keeps:
            a, rand = accuracies(rows, label, keep), accuracies(rows, "random", keep)
            mine = accuracies(rows, other, keep) if other else np.array([])
            spread = summarize(a)
            out.append({"score": label, "name": name, "time": when, "uses_labels": score_spec(name).uses_labels,
                        "keep": keep, **{k: spread[k] for k in ("n", "mean", "p16", "p84")},
                        "random": mean_or_nan(rand), "full": mean_or_nan(full), **contrast(a, rand, "vs_random"),
                        "counterpart": other or "", **contrast(a, mine, "vs_counterpart"),
                        "spearman_counterpart": float(rho_rows[label][names.index(other)])
                        if other in names else float("nan")})
    return out


def findings(table: list[dict]) -> list[str]:
    lines = []
    for row in table:
        if row["uses_labels"]:
            continue
        head = (f"{row['score']} at keep {row['keep']:g}: accuracy {row['mean']:.4f}, {relation(row, 'vs_random')} "
                f"random ({row['random']:.4f}; {interval_text(row, 'vs_random')})")
        if row["counterpart"]:
            head += (f"; vs {row['counterpart']}: {interval_text(row, 'vs_counterpart')}, "
                     f"{verdict_phrase(verdict(row, 'vs_counterpart'), 'it')}; Spearman "
                     f"{row['spearman_counterpart']:.2f}")
        lines.append(head + ".")
    free = [r for r in table if not r["uses_labels"] and r["counterpart"]]
    matched = [f"{r['score']} (keep {r['keep']:g})" for r in free if verdict(r, "vs_counterpart") == "no different"]
    unresolved = sum(verdict(r, "vs_counterpart") == "not resolved" for r in free)
    lines.append(f"Label-free scores statistically indistinguishable from their label-using counterpart: "
                 f"{', '.join(matched) or 'none'} ({len(matched)} of {len(free)}"
                 + (f"; {unresolved} not resolved: too few seeds to tell" if unresolved else "") + ").")
    for uses, kind in ((True, "label-using"), (False, "label-free")):
        better = [f"{r['score']} (keep {r['keep']:g})" for r in table
                  if r["uses_labels"] == uses and verdict(r, "vs_random") == "better"]
        lines.append(f"{kind.capitalize()} scores significantly better than random: {', '.join(better) or 'none'} "
                     f"(Paul et al.: only the label-using ones).")
    return lines


def _plot_accuracy(labels, curve: list[dict], path):
    """Fig. 9 as :func:`figures.accuracy_points` draws it: one panel per scoring time, each score's accuracy
    (16th–84th percentile bars) against the kept fraction beside random's, the full data dotted."""
    panels: dict[str, list] = {}
    for label in labels:
        parsed = ScoreLabel.parse(label)
        free = not score_spec(parsed.name).uses_labels
        panels.setdefault(f"scores at {parsed.when}", []).append(
            (label, parsed.name + (" (label-free)" if free else ""), "^" if free else "o"))
    return figures.accuracy_points(curve, {title: [*methods, ("random", "random", "x")]
                                           for title, methods in panels.items()}, path)


STUDY = Study(NAME, TITLE, SOURCE, Config, PRESETS, run, doc=__doc__)
