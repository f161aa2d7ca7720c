"""`datadiet reproduce --preset NAME`: Kirsch (2023) Figures 1–3 / Data Diet Fig. 1 from one command.

Pipeline: score runs (cached) → selections → evaluation sweep (resumable, local or Ray) → report.  It is a study
like the analyses: it runs on a :class:`~datadiet.runs.workspace.Workspace` (score runs in ``scores/``, evaluation
runs in ``sweep/runs/``, its plan, tables, figures and section in ``reproduce/``), so `datadiet analyze` can share
its folder, and ``report.md`` gathers every section.
Scoring runs come in K independent draws of R runs (draw d: seeds ``d·R..d·R+R-1``; one draw: ``0..R-1``), and
evaluation seed s selects its subsets from draw s mod K, so the report's intervals cover the score runs' randomness
too. Evaluation runs use seeds from ``eval_seed_base`` on, so the models that judge a subset never include the
models that chose it (Data Diet B.3).
Every kept fraction trains for the same number of steps as the full data (matched budget), so pruning saves no training
compute here; the report's Compute section says what each point and the whole folder cost, score runs included.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable, Literal

from ..version import __version__
from ..config import DataConfig, TrainConfig, check_keeps, check_offsets, from_dict, is_user_data, resolve_flip, to_dict
from ..errors import DataDietError
from ..io import UnreadableFileError, load_json, write_json_atomic
from ..methods import Method
from ..report.pruning import describe_accounting, write_pruning_report
from ..report.tables import choose_metric
from ..runs.identity import canonical
from ..runs.plan import PLAN, account_runs, other_plans, plan_classes, read_plan
from ..runs.presets import Setting, study_presets
from ..runs.scoring import charge, recipe_flops, score_run_costs
from ..runs.sweep import Execution, Task, read_run_files
from ..runs.workspace import ScoreDraws, Workspace
from ..scores import load_scores
from ..scores.registry import ScoreLabel
from .common import Study, baseline_tasks, check_seed_counts, pruning_tasks

NAME = "reproduce"
TITLE = "Pruning curves: scores against random at matched steps"
SOURCE = "Kirsch (2023) Figs. 1–3 and Paul et al. (2021) Fig. 1"


@dataclass(frozen=True)
class Config:
    """One reproduction: a preset of the shared table plus the grid of this study."""

    setting: Setting
    # Methods (datadiet.methods): el2n@epoch2 keeps the hardest, +easiest the easiest, +ccs samples by coverage,
    # +moderate keeps the scores nearest the median; +balanced (last) keeps each class's proportional share, +equal
    # (last) the same count from every class. Empty = Kirsch's five scores at the early epoch.
    methods: tuple[Method, ...] = ()    # SCORE[+RULE][+balanced|+equal], RULE easiest, ccs or moderate; empty = Kirsch's five
    keeps: tuple[float, ...] = ()       # kept fractions; empty = the setting's
    # Explicit B.3 windows: for each kept fraction, also drop the lowest ``offset`` fraction first and keep
    # the next ``keep`` (windows past the top, offset + keep > 1, are skipped). Empty = keep the highest only.
    offsets: tuple[float, ...] = ()
    eval_seeds: int | None = None       # evaluation runs per point; None = the setting's
    score_runs: int | None = None       # independent scoring runs averaged; None = the setting's
    score_draws: int | None = None      # score draws (eval seed s: draw s mod K); None = the setting's
    # What judges the curves, the comparisons with random, Holm and the did-it-learn gate: test accuracy, balanced
    # accuracy (mean per-class recall) or worst-class accuracy (lowest class recall). auto: accuracy, or balanced
    # where the training split's largest class has over 1.5× the examples of its smallest.
    metric: Literal["auto", "accuracy", "balanced", "worst-class"] = "auto"

    def __post_init__(self) -> None:
        check_keeps(self.keeps, empty=True)
        check_offsets(self.offsets)
        check_seed_counts(self)
        object.__setattr__(self, "methods", tuple(map(Method.coerce, self.methods)))  # parsed once, here

    @property
    def resolved(self) -> "Config":
        """Every empty or None field filled in from the setting."""
        s = self.setting
        return replace(self, methods=self.methods or kirsch_methods(s.score_epoch), keeps=self.keeps or s.keeps,
                       eval_seeds=self.eval_seeds or s.eval_seeds, score_runs=self.score_runs or s.score_runs,
                       score_draws=self.score_draws or s.score_draws)


def kirsch_methods(score_epoch: float) -> tuple[Method, ...]:
    """The scores of Kirsch's Figs. 1–3: input norm, GraNd at init and early, EL2N early, forgetting."""
    labels = ("input_norm", "grand@init", str(ScoreLabel("grand", score_epoch)), str(ScoreLabel("el2n", score_epoch)),
              "forgetting@end")
    return tuple(map(Method, labels))


PRESETS: dict[str, Config] = study_presets(NAME, Config)


def reproduce(config: Config, out: str | Path, *, log: Callable[[str], None] = print, **execution) -> dict:
    """Run (or resume) a reproduction into the workspace ``out`` and build its report; returns the report summary.
    ``execution``: fields of :class:`~datadiet.runs.sweep.Execution` (``data_root``, ``device``, ``workers`` ...)."""
    from . import run_study  # the package's runner: one lock, one workspace layout, one report for every study

    return run_study(NAME, config, Workspace(Path(out), Execution(**execution), log=log))


def run(config: Config, ws: Workspace) -> None:
    """Score (K draws, cached), select, and evaluate every run of the reproduction in ``ws``; the report is built
    from disk afterwards by :func:`rebuild`, the same way `datadiet report` builds it. (`run_study` has claimed the
    folder and checked that the model fits the data.)"""
    config = config.resolved
    data, train, scores = _recipe(config, ws)
    splits = ws.splits(data)
    metric, why = choose_metric(config.metric, splits.train.labels, splits.train.num_classes)
    write_json_atomic(ws.folder(NAME) / "config.json", {**_record(config, ws), "metric": metric, "metric_reason": why})
    ws.log(f"{config.setting.name}: {len(splits.train)} training examples of {splits.name}, model {train.model}")
    ws.evaluate(build_tasks(config, ws, train, ws.score_draws(_setting(config), **scores)), NAME)


def claim(config: Config, ws: Workspace) -> None:
    """Refuse a folder that holds another reproduction (see :func:`_claim_folder`); reads only configs."""
    _claim_folder(ws.root / NAME, _record(config.resolved, ws))


def _recipe(config: Config, ws: Workspace) -> tuple:
    """The data and recipe the runs use (where they execute applied; the flip resolved, which config.json records)
    and the arguments of the score runs."""
    data = ws.data(config.setting.data)
    train = resolve_flip(ws.train(config.setting.train), user_data=is_user_data(data.dataset))
    labels = tuple(dict.fromkeys(m.label for m in config.methods))
    return data, train, dict(data=data, train=train, runs=config.score_runs, labels=labels)


def _record(config: Config, ws: Workspace) -> dict:
    """The study's config.json: the resolved config, with where its score draws are cached (relative to ``ws``)."""
    data, train, scores = _recipe(config, ws)
    folders = ws.score_draw_folders(_setting(config), **scores)
    return folder_record(config, data, train, [str(f.relative_to(ws.root)) for f in folders])


def _setting(config: Config) -> Setting:
    """The preset's setting with the reproduction's own evaluation seeds, score runs and draws."""
    return config.setting.with_protocol(eval_seeds=config.eval_seeds, score_runs=config.score_runs,
                                        score_draws=config.score_draws)


def folder_record(config: Config, data_cfg: DataConfig, train_cfg: TrainConfig, score_folders: list[str]) -> dict:
    """The study's ``config.json`` (resolved config, version, and where its score draws are cached)."""
    return {"preset": config.setting.name, "title": config.setting.title, "version": __version__,
            "data": to_dict(data_cfg), "train": to_dict(train_cfg), "methods": list(map(str, config.methods)),
            "score_runs": config.score_runs, "score_draws": config.score_draws, "keeps": list(config.keeps),
            "offsets": list(config.offsets), "score_folders": score_folders,
            "eval_seeds": config.eval_seeds, "eval_seed_base": config.setting.eval_seed_base}


def build_tasks(config: Config, ws: Workspace, train: TrainConfig, draws: ScoreDraws) -> list[Task]:
    """Full-data, random and score-based runs of ``train`` for every kept fraction (and B.3 window) and evaluation
    seed; evaluation seed s selects from draw s mod K of ``draws`` (the study kit's rule)."""
    config = config.resolved
    setting = _setting(config)
    tasks = baseline_tasks(ws, setting, config.keeps, train=train)
    for method in config.methods:
        tasks += pruning_tasks(ws, setting, method, draws, config.keeps, train=train, offsets=config.offsets)
    return tasks


def _scores_of(methods) -> list[str]:
    """The score labels behind methods (``el2n@epoch2+ccs`` → ``el2n@epoch2``), sorted."""
    return sorted({Method.coerce(m).label for m in methods})


def rebuild(root: str | Path, *, extra_seeds: str = "ignore", log: Callable[[str], None] = print) -> dict:
    """(Re)build every table, figure and the section of the reproduction in workspace ``root`` from its files;
    returns the summary.

    The report aggregates exactly the runs of the study's plan (its task list, by run identity). Other run files
    are counted and named, never averaged in: ``extra_seeds="include"`` adds the runs of the same experiment with
    evaluation seeds beyond the plan (left by an earlier, larger ``--eval-seeds``); other studies' runs, foreign
    runs (other data, recipe, method or subset) and damaged files are always left out.
    """
    if extra_seeds not in ("ignore", "include"):
        raise DataDietError(f"extra_seeds is 'ignore' or 'include', not {extra_seeds!r}.")
    root = Path(root)
    folder = root / NAME
    config = _read_config(folder)
    plan_record = read_plan(folder / PLAN)
    plan = plan_record["runs"]
    files = read_run_files(root / "sweep")
    accounting = account_runs(plan, files, config, other_plans(root, NAME))
    chosen = accounting.pop("chosen") + (accounting["extra"] if extra_seeds == "include" else [])
    accounting = {"included_extra_seeds": extra_seeds == "include", **{k: sorted(v) for k, v in accounting.items()}}
    for line in describe_accounting(accounting):
        log(f"report: {line}")
    draws = [root / f for f in config.get("score_folders", [])]
    tables = [load_scores(p) for p in sorted(draws[0].glob("*.npz"))] if draws else []
    records = [files.records[rid] for rid in chosen]
    summary = write_pruning_report(folder, config, records, {t.label: t.mean for t in tables}, accounting=accounting,
                                   classes=plan_classes(plan_record), compute=compute_inputs(draws, config, records),
                                   untrained=untrained_scores(draws))
    for line in summary.get("class_warnings", []):
        log(f"report: warning: {line}")
    return summary


def untrained_scores(draws: list[Path]) -> dict[str, str]:
    """{score label: why its network had not learned when it scored} over every draw's score files (the first draw
    that says so); scores of runs cached before they measured their fit say nothing."""
    out: dict[str, str] = {}
    for folder in draws:
        for path in sorted(folder.glob("*.npz")):
            table = load_scores(path)
            if table.meta.get("untrained") and table.label not in out:
                out[table.label] = str(table.meta["untrained"])
    return out


def compute_inputs(draws: list[Path], config: dict, records: list[dict]) -> dict:
    """What the report's compute section needs: the cost of every score run of the draws the evaluation seeds
    selected from (``draws``: their score folders, each once), each method's charge (what its score needed of all
    those runs), and, for run records that predate recorded costs, the model's FLOPs per example."""
    runs = [r for folder in draws for r in score_run_costs(folder)]
    methods = [Method.parse(m) for m in config.get("methods", [])]
    per_example = None
    if any("cost" not in r for r in records) and draws:
        per_example = _recipe_flops(draws[0] / "score_config.json", config.get("train", {}))
    return {"charges": {str(m): charge(runs, m.label) for m in methods} if runs else {},
            "score_runs": [charge([r]) for r in runs], "per_example": per_example}


def _recipe_flops(score_config: Path, train: dict) -> tuple[int, int] | None:
    """FLOPs per example of the folder's model, on the data its score runs describe; None when unknown."""
    try:
        dataset = load_json(score_config)["dataset"]
        return recipe_flops(from_dict(TrainConfig, train), dataset["shape"], int(dataset["num_classes"]))
    except (OSError, ValueError, KeyError, TypeError, DataDietError):
        return None


def _read_config(folder: Path) -> dict:
    path = folder / "config.json"
    if not path.exists():  # a pipe or a device in its place is refused by load_json, not taken for no file
        raise DataDietError(f"{folder.parent} holds no reproduction (no {NAME}/config.json). Point `datadiet report` "
                            "at the --out folder of `datadiet reproduce` or `datadiet analyze`.")
    try:
        record = load_json(path)  # strict, bounded, from a regular file
    except UnreadableFileError as exc:
        raise DataDietError(f"{exc.sentence(f'{path} is damaged: it')}. Restore it, or delete {folder} and run the "
                            "reproduction again.") from None
    if not isinstance(record, dict):
        raise DataDietError(f"{path} is not a datadiet config file. Restore it, or delete {folder} and run the "
                            "reproduction again.")
    return record


# with the scores behind the methods: what a point means (more score draws change the subsets of seeds 1, 2, ...)
IDENTITY_KEYS = ("preset", "data", "train", "score_runs", "score_draws")


def _claim_folder(out: Path, record: dict) -> None:
    """Refuse to mix two different experiments in one results folder.

    More kept fractions, offsets, evaluation seeds or selection rules of the same scores (``el2n@epoch2+ccs``
    beside ``el2n@epoch2``) extend an experiment; other data, another recipe, other scores or another number
    of score runs would put different subsets under the same label. Where the data lies and which device
    computes do not change an experiment (see runs.identity).
    """
    if not (out / "config.json").is_file():
        return
    previous = {"score_draws": 1, **_read_config(out)}  # folders of earlier versions had one draw
    changed = [k for k in IDENTITY_KEYS if canonical(previous.get(k)) != canonical(record.get(k))]
    if _scores_of(previous.get("methods") or []) != _scores_of(record["methods"]):
        changed.append("the scores of --methods")
    if changed:
        raise DataDietError(f"{out} holds another experiment ({previous.get('preset')!r}; differs in "
                            f"{', '.join(changed)}). Use another --out folder, or the same settings to resume.")


STUDY = Study(NAME, TITLE, SOURCE, Config, PRESETS, run, doc=__doc__, claim=claim, rebuild=rebuild)
