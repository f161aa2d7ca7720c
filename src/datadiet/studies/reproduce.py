"""`datadiet reproduce --preset NAME`: Kirsch (2023) Figures 1–3 / Data Diet Fig. 1 from one command.

Pipeline: score runs (cached) → selections → evaluation sweep (resumable, local or Ray) → report.
Scoring runs come in K independent draws of R runs (draw d: seeds ``d·R..d·R+R-1``; one draw: ``0..R-1``), and
evaluation seed s selects its subsets from draw s mod K, so the report's intervals cover the score runs' randomness
too. Evaluation runs use seeds from ``eval_seed_base`` on, so the models that judge a subset never include the
models that chose it (Data Diet B.3).
Every kept fraction trains for the same number of steps as the full data (matched budget), so pruning saves no training
compute here; the report's Compute section says what each point and the whole folder cost, score runs included.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable

from ..version import __version__
from ..config import DataConfig, TrainConfig, check_keeps, check_offsets, from_dict, is_user_data, resolve_flip, to_dict
from ..data import load_data
from ..errors import DataDietError
from ..io import builds_report, folder_lock, write_json_atomic
from ..report.pruning import describe_accounting, write_pruning_report
from ..runs.identity import canonical, digest_ids
from ..runs.presets import Setting, get_preset
from ..runs.scoring import charge, draw_folder, recipe_flops, score_draws, score_run_costs
from ..runs.sweep import (RunSpec, Task, check_execution, check_recipe, data_fingerprint_of, read_run_files,
                          run_sweep, task_for)
from ..scores import load_scores
from ..scores.registry import ScoreLabel
from ..selection import is_top_window, offset_windows, select_random
from ..methods import Method
from .common import check_seed_counts, plan_class_counts


@dataclass(frozen=True)
class Config:
    """One reproduction: a preset of the shared table plus the grid of this study."""

    setting: Setting
    # Methods (datadiet.methods): el2n@epoch2 keeps the hardest, +easiest the easiest, +ccs samples by coverage,
    # +moderate keeps the scores nearest the median; +balanced (last) keeps each class's share. Empty = Kirsch's five
    # scores at the early epoch.
    methods: tuple[str, ...] = ()       # SCORE[+RULE][+balanced], RULE easiest, ccs or moderate; empty = Kirsch's five
    keeps: tuple[float, ...] = ()       # kept fractions; empty = the setting's
    # Explicit B.3 windows: for each kept fraction, also drop the lowest ``offset`` fraction first and keep
    # the next ``keep`` (windows past the top, offset + keep > 1, are skipped). Empty = keep the highest only.
    offsets: tuple[float, ...] = ()
    eval_seeds: int | None = None       # evaluation runs per point; None = the setting's
    score_runs: int | None = None       # independent scoring runs averaged; None = the setting's
    score_draws: int | None = None      # score draws (eval seed s: draw s mod K); None = the setting's

    def __post_init__(self) -> None:
        check_keeps(self.keeps, empty=True)
        check_offsets(self.offsets)
        check_seed_counts(self)
        for method in self.methods:
            Method.parse(method)

    @property
    def resolved(self) -> "Config":
        """Every empty or None field filled in from the setting."""
        s = self.setting
        return replace(self, methods=self.methods or kirsch_methods(s.score_epoch), keeps=self.keeps or s.keeps,
                       eval_seeds=self.eval_seeds or s.eval_seeds, score_runs=self.score_runs or s.score_runs,
                       score_draws=self.score_draws or s.score_draws)


def kirsch_methods(score_epoch: float) -> tuple[str, ...]:
    """The scores of Kirsch's Figs. 1–3: input norm, GraNd at init and early, EL2N early, forgetting."""
    return ("input_norm", "grand@init", str(ScoreLabel("grand", score_epoch)), str(ScoreLabel("el2n", score_epoch)),
            "forgetting@end")


PRESETS: dict[str, Config] = {name: Config(get_preset(name)) for name in ("smoke", "quick", "quick-scarce", "gpu", "paper")}


def reproduce(config: Config, out: str | Path, *, data_root: str | None = None, device: str | None = None,
              executor: str = "local", address: str | None = None, cpus: float = 1, gpus: float = 0,
              workers: int | None = None, log: Callable[[str], None] = print) -> dict:
    """Run (or resume) a reproduction into ``out`` and build its report; returns the report summary."""
    out, config = Path(out), config.resolved
    setting = config.setting
    data_cfg = replace(setting.data, data_root=data_root) if data_root else setting.data
    train_cfg = replace(setting.train, device=device) if device else setting.train
    train_cfg = resolve_flip(train_cfg, user_data=is_user_data(data_cfg.dataset))  # config.json says which flip
    record = folder_record(config, data_cfg, train_cfg)
    check_execution(executor, workers)
    check_recipe(train_cfg)
    with folder_lock(out, "datadiet reproduce"):
        _claim_folder(out, record)
        splits = load_data(data_cfg)
        check_recipe(train_cfg, splits.train)  # a user model that does not fit the data: refused before any write
        write_json_atomic(out / "config.json", record)
        log(f"{setting.name}: {len(splits.train)} training examples of {splits.name}, model {train_cfg.model}")
        labels = tuple(dict.fromkeys(Method.parse(m).label for m in config.methods))
        draws = min(config.score_draws, config.eval_seeds)  # a draw no evaluation seed selects from adds nothing
        tables = score_draws(labels, config.score_runs, draws, train_cfg, data_cfg, splits, out / "scores", log=log)
        tasks = build_tasks(config, data_cfg, train_cfg, splits.train, tables)
        write_plan(out, tasks, splits.train)
        outcome = run_sweep(tasks, out, executor=executor, address=address, cpus=cpus, gpus=gpus, workers=workers,
                            log=log)
        summary = build_report(out, log=log)
    if outcome.failures:
        log(f"{len(outcome.failures)} runs failed (see {out / 'failures'}); re-run the same command to retry them. "
            "The report covers the finished runs.")
    summary["failed_runs"] = len(outcome.failures)
    return summary


def folder_record(config: Config, data_cfg: DataConfig, train_cfg: TrainConfig) -> dict:
    """The ``config.json`` of a results folder (resolved config, version)."""
    return {"preset": config.setting.name, "title": config.setting.title, "version": __version__,
            "data": to_dict(data_cfg), "train": to_dict(train_cfg), "methods": list(config.methods),
            "score_runs": config.score_runs, "score_draws": config.score_draws, "keeps": list(config.keeps),
            "offsets": list(config.offsets),
            "eval_seeds": config.eval_seeds, "eval_seed_base": config.setting.eval_seed_base}


def build_tasks(config: Config, data_cfg: DataConfig, train_cfg: TrainConfig, train_set, draws: list[dict]) -> list[Task]:
    """Full-data, random and score-based runs for every kept fraction and evaluation seed; evaluation seed s selects
    from the score tables of draw s mod K (``draws``: one {label: ScoreTable} per draw, as :func:`score_draws`)."""
    config = config.resolved
    ids, labels = train_set.ids.numpy(), train_set.labels.numpy()
    tasks = []
    for s in range(config.eval_seeds):
        cfg = replace(train_cfg, seed=config.setting.eval_seed_base + s)
        tables = draws[s % len(draws)]
        tasks.append(Task(RunSpec(data_cfg, cfg, "full", 1.0, None, digest_ids(ids),
                                  data_fingerprint_of(data_cfg, train_set))))
        for keep in config.keeps:
            kept = select_random(ids, keep=keep, seed=cfg.seed)  # a fresh random subset for every run
            tasks.append(task_for(data_cfg, cfg, "random", keep, kept, train_set))
            for method in map(Method.parse, config.methods):
                choose = dict(keep=keep, seed=cfg.seed, labels=labels, num_classes=train_set.num_classes)
                kept = method.select(tables[method.label], **choose)
                tasks.append(task_for(data_cfg, cfg, str(method), keep, kept, train_set))
                for offset in extra_windows(keep, config.offsets) if method.rule == "hardest" else ():
                    kept = method.select(tables[method.label], offset=offset, **choose)
                    tasks.append(task_for(data_cfg, cfg, str(method), keep, kept, train_set, offset))
    return tasks


def extra_windows(keep: float, offsets) -> list[float]:
    """Offset windows that fit, except the keep-highest one, which every sweep already holds (offset None)."""
    return [o for o in offset_windows(keep, offsets) if not is_top_window(keep, o)]


def _scores_of(methods) -> list[str]:
    """The score labels behind methods (``el2n@epoch2+ccs`` → ``el2n@epoch2``), sorted."""
    return sorted({Method.parse(m).label for m in methods})


PLAN = "plan.json"


def write_plan(out: Path, tasks: list[Task], train_set=None) -> None:
    """``plan.json``: the run ids of this experiment's task list, which alone the report aggregates, and (given
    the training split) each subset's kept count per class, which the report shows."""
    runs = {t.spec.run_id: {"method": t.spec.method, "keep": t.spec.keep, "offset": t.spec.offset,
                            "seed": t.spec.train.seed, "subset_digest": t.spec.subset_digest} for t in tasks}
    classes = {} if train_set is None else {"classes": plan_class_counts(tasks, train_set)}
    write_json_atomic(out / PLAN, {"version": __version__, "runs": runs, **classes})


@builds_report  # reading the runs and writing the report is one step: two builds never interleave
def build_report(folder: str | Path, *, extra_seeds: str = "ignore", log: Callable[[str], None] = print) -> dict:
    """(Re)build every table, figure and the report of a results folder from its files; returns the summary.

    The report aggregates exactly the runs of the folder's plan (its task list, by run identity). Other run files
    are counted and named, never averaged in: ``extra_seeds="include"`` adds the runs of the same experiment with
    evaluation seeds beyond the plan (left by an earlier, larger ``--eval-seeds``); foreign runs (other data,
    recipe, method or subset) and damaged files are always left out.
    """
    if extra_seeds not in ("ignore", "include"):
        raise DataDietError(f"extra_seeds is 'ignore' or 'include', not {extra_seeds!r}.")
    folder = Path(folder)
    config = _read_json(folder / "config.json", folder)
    plan_record = _read_json(folder / PLAN, folder)
    plan = plan_record["runs"]
    files = read_run_files(folder)
    accounting = account_runs(plan, files, config)
    chosen = accounting.pop("chosen") + (accounting["extra"] if extra_seeds == "include" else [])
    accounting = {"included_extra_seeds": extra_seeds == "include", **{k: sorted(v) for k, v in accounting.items()}}
    for line in describe_accounting(accounting):
        log(f"report: {line}")
    scores = folder / "scores"
    if scores.exists() and not scores.is_dir():
        raise DataDietError(f"{scores} is a file, but datadiet keeps the score files in a folder of that name. Move "
                            "the file away and re-run `datadiet reproduce` to recompute the scores.")
    tables = [load_scores(p) for p in sorted(scores.glob("*.npz"))]
    records = [files.records[rid] for rid in chosen]
    summary = write_pruning_report(folder, config, records, {t.label: t.mean for t in tables}, accounting=accounting,
                                   classes=plan_classes(plan_record), compute=compute_inputs(folder, config, records))
    for line in summary.get("class_warnings", []):
        log(f"report: warning: {line}")
    return summary


def compute_inputs(folder: Path, config: dict, records: list[dict]) -> dict:
    """What the report's compute section needs of the folder: the cost of every score run of the draws the
    evaluation seeds selected from (each once), each method's charge (what its score needed of all those runs),
    and, for run records that predate recorded costs, the model's FLOPs per example."""
    draws = min(int(config.get("score_draws") or 1), int(config.get("eval_seeds") or 1))
    runs = [r for d in range(draws) for r in score_run_costs(draw_folder(folder / "scores", d))]
    methods = [Method.parse(m) for m in config.get("methods", [])]
    per_example = None
    if any("cost" not in r for r in records):
        per_example = _recipe_flops(folder / "scores" / "score_config.json", config.get("train", {}))
    return {"charges": {str(m): charge(runs, m.label) for m in methods} if runs else {},
            "score_runs": [charge([r]) for r in runs], "per_example": per_example}


def _recipe_flops(score_config: Path, train: dict) -> tuple[int, int] | None:
    """FLOPs per example of the folder's model, on the data its score runs describe; None when unknown."""
    try:
        dataset = json.loads(score_config.read_text(encoding="utf-8"))["dataset"]
        return recipe_flops(from_dict(TrainConfig, train), dataset["shape"], int(dataset["num_classes"]))
    except (OSError, ValueError, KeyError, TypeError, DataDietError):
        return None


def plan_classes(plan_record: dict) -> dict | None:
    """The plan's per-class counts with each run's method, fraction and offset; None for plans without them."""
    classes = plan_record.get("classes")
    if not isinstance(classes, dict) or not isinstance(classes.get("counts"), dict):
        return None  # written by datadiet 0.2 or earlier: the report shows no class counts
    return {**classes, "runs": plan_record["runs"]}


def account_runs(plan: dict, files, config: dict) -> dict[str, list]:
    """Sort the folder's run files: the plan's finished runs (``chosen``), planned runs not on disk
    (``missing``), runs of the same experiment with other evaluation seeds (``extra``), runs of anything else
    (``foreign``) and files that are no finished run (``damaged``)."""
    chosen = [rid for rid in plan if rid in files.records]
    points = {_point_key(p) for p in plan.values()}
    fingerprints = {files.records[rid].get("dataset_fingerprint") for rid in chosen}
    extra, foreign = [], []
    for rid, record in files.records.items():
        if rid in plan:
            continue
        same = (canonical(record["data"]) == canonical(config.get("data"))
                and _recipe(record["train"]) == _recipe(config.get("train", {}))
                and record.get("dataset_fingerprint") in (fingerprints or {record.get("dataset_fingerprint")})
                and _point_key(record) in points)
        (extra if same else foreign).append(rid)
    return {"chosen": chosen, "missing": [rid for rid in plan if rid not in files.records], "extra": extra,
            "foreign": foreign, "damaged": [f"{p.name} ({why})" for p, why in files.invalid.items()],
            "unchecked": [rid for rid in files.unchecked if rid in plan or rid in extra]}


def _point_key(run: dict) -> str:
    """A point of the curve: method, kept fraction, offset and, where the subset does not depend on the evaluation
    seed, the exact subset (random subsets and CCS samples are drawn afresh for every seed)."""
    return json.dumps(canonical([run["method"], float(run["keep"]), run.get("offset"),
                                 None if _seeded(run["method"]) else run.get("subset_digest")]))


def _seeded(method: str) -> bool:
    """Whether ``method`` draws its subset afresh per seed; a method no parse reads (a foreign run's) does not."""
    if method in ("random", "full"):
        return method == "random"
    try:
        return Method.parse(method).seeded
    except DataDietError:
        return False


def _recipe(train: dict) -> dict:
    return canonical({k: v for k, v in train.items() if k != "seed"})


def _read_json(path: Path, folder: Path) -> dict:
    if not path.is_file():
        if path.name == PLAN and (folder / "config.json").is_file():
            raise DataDietError(f"{folder} has no {PLAN} (it was made by datadiet 0.2.0 or earlier). Re-run "
                                "`datadiet reproduce` with the same --out and options: it trains nothing already "
                                "finished and writes the plan the report needs.")
        raise DataDietError(f"{folder} is not a datadiet results folder (no {path.name}). Point `datadiet report` "
                            "at the --out folder of `datadiet reproduce`.")
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise DataDietError(f"{path} is damaged ({type(exc).__name__}: {exc}). Restore it, or delete {folder} "
                            "and run the experiment again.") from None
    if not isinstance(record, dict) or (path.name == PLAN and not isinstance(record.get("runs"), dict)):
        raise DataDietError(f"{path} is not a datadiet {path.stem} file. Restore it, or delete {folder} and run "
                            "the experiment again.")
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
    path = out / "config.json"
    if not path.is_file():
        return
    previous = {"score_draws": 1, **_read_json(path, out)}  # folders of earlier versions had one draw
    changed = [k for k in IDENTITY_KEYS if canonical(previous.get(k)) != canonical(record.get(k))]
    if _scores_of(previous.get("methods") or []) != _scores_of(record["methods"]):
        changed.append("the scores of --methods")
    if changed:
        raise DataDietError(f"{out} holds another experiment ({previous.get('preset')!r}; differs in "
                            f"{', '.join(changed)}). Use another --out folder, or the same settings to resume.")
