"""The ``datadiet`` command.  Flags are generated from the config dataclasses.

One spelling everywhere: a preset is ``--preset NAME``; a list flag is plural and space-separated
(``--keeps 0.3 0.5``, ``--scores el2n@epoch2 grand@init``); ``--epochs`` is always the training budget and
``--score-epochs`` the times at which scores are taken.  Old spellings still work for one release and say so.

Bad input never ends in a traceback: every :class:`~datadiet.errors.DataDietError` and every operating-system
error (a read-only or full disk, a file where a folder belongs, ...) is printed as one paragraph naming the
offending file or value, with status 2. Anything else is a bug in datadiet: one paragraph, status 1. ``--debug``
(or ``DATADIET_DEBUG=1``) shows the full traceback instead.
"""
from __future__ import annotations

import argparse
import errno
import functools
import importlib
import os
import sys
import textwrap
import threading
import traceback
from dataclasses import MISSING, dataclass, fields, replace
from pathlib import Path
from typing import Callable, Literal, NamedTuple, NoReturn, Sequence

from .version import __version__
from .config import (DataConfig, TrainConfig, add_arguments, from_arguments, from_dict, given_arguments, is_user_data,
                     resolve_flip, to_dict)
from .errors import ConfigError, DataDietError, NonFiniteLossError, out_of_memory_message, unknown_name
from .io import folder_lock, write_json_atomic

# Everything heavier (torch, scipy, the data loaders, the studies: about two seconds of imports) is imported by the
# command that uses it, so that `datadiet --help`, `--version` and a refused flag answer at once.  cli is the top
# layer, so these imports point down the stack like any other (tests/test_layers.py checks them, in functions too).
# The module-level names that tests replace are looked up through `_lazy`.
_LAZY = {"MODULES": ("studies", "MODULES"), "run_study": ("studies", "run_study")}


def _lazy(name: str):
    """The heavy module-level ``name``, imported where it is used (importing it again is a dictionary look-up); a
    replacement a test sets on this module wins. Nothing is written into the module's namespace."""
    if name in globals():
        return globals()[name]
    module, attribute = _LAZY[name]
    return getattr(importlib.import_module(f".{module}", __package__), attribute)


def __getattr__(name: str):  # `datadiet.cli.MODULES` from outside (tests replace it)
    if name in _LAZY:
        return _lazy(name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def cmd_train(args: argparse.Namespace) -> int:
    """Train one model and report its final-step test accuracy."""
    data_cfg = _train_data(args)  # a refused flag answers before the heavy imports below
    train_cfg = _train_config(args, data_cfg)
    import torch

    from .data import load_data
    from .manifest import load_subset
    from .runs.sweep import check_recipe
    from .training import train

    splits = load_data(data_cfg)
    _say(f"{splits.name}: {len(splits.train)} train / {len(splits.test)} test examples, "
         f"fingerprint {splits.train.fingerprint}; model {train_cfg.model} (width {train_cfg.width}), "
         f"{torch.get_num_threads()} threads")
    hint = size_hint(tuple(splits.train.shape), train_cfg.model, data_cfg.dataset)
    if hint:
        _say(hint)
    out = Path(args.out) if args.out else None
    record = {"version": __version__, "data": to_dict(data_cfg), "train": to_dict(train_cfg),
              "dataset": splits.train.describe(), "test_dataset": splits.test.describe()}
    check_recipe(train_cfg, splits.train)  # a model that is unknown or does not fit the data: refused here
    positions = None
    if args.subset_file:
        positions = load_subset(args.subset_file, splits.train)
        record["subset_file"] = str(args.subset_file)
        _say(f"training on {len(positions)} of {len(splits.train)} examples from {args.subset_file}")
    if out is None:
        result = train(train_cfg, splits, positions=positions, checkpoint_steps=args.checkpoint_steps or ())
    else:
        with folder_lock(out, "datadiet train"):
            write_json_atomic(out / "config.json", record)
            result = _train_into(out, train_cfg, splits, positions, args.checkpoint_steps or ())
            write_json_atomic(out / "result.json", {**record, "result": result.summary()})
    n_run = len(positions) if positions is not None else len(splits.train)
    steps = (steps_in_words(train_cfg, result.steps, n_run, len(splits.train)) if train_cfg.dynamic is None else
             f"{result.steps} steps ({result.epochs_seen:g} epochs of {train_cfg.pruner_name} pruning over {n_run:,} examples)")
    _say(f"done: {steps} in {result.wall_seconds:.1f}s; final test accuracy {result.test_accuracy:.4f}"
         + _class_numbers(result.test_classes) + (f"; results in {out}" if out else ""))
    _say(cost_in_words(train_cfg, result.cost, len(splits.train)))
    return 0


def _class_numbers(classes) -> str:
    """`` (balanced 0.4500, worst class 0.0000; majority-class rate 0.5750)``: what overall accuracy hides on
    imbalanced data ("" when the test split was not evaluated)."""
    if classes is None or classes.balanced_accuracy is None:
        return ""
    return (f" (balanced {classes.balanced_accuracy:.4f}, worst class {classes.worst_class_accuracy:.4f}; "
            f"majority-class rate {classes.majority_rate:.4f})")


HINT_PIXELS = 128 * 128  # images above this get the --resize hint: the built-in models were made for 28–32 px ones


def size_hint(shape: tuple[int, ...], model: str, dataset: str) -> str | None:
    """One line for images of more than 128×128 pixels on a built-in model, whose time per step grows about with
    the pixels: how much slower than 32×32 (an estimate), and how to make them smaller; None otherwise."""
    from .models import MODELS

    if len(shape) != 3 or shape[1] * shape[2] <= HINT_PIXELS or model.lower() not in MODELS:
        return None
    smaller = ("--resize 32 32 (or 64 64) trains on smaller copies" if dataset.strip().lower().startswith("folder:")
               else "save them smaller (--resize applies to folder: data only)")
    return (f"hint: {shape[1]}×{shape[2]} images make each step of {model} about {shape[1] * shape[2] / 1024:.0f}× "
            f"slower than 32×32 ones (an estimate: the ratio of pixels); {smaller}.")


# Data options that leave the training split as it is: they may differ from those a subset manifest records.
NOT_THE_TRAINING_DATA = ("data_root", "test_subset")


def _train_data(args: argparse.Namespace) -> DataConfig:
    """The data `train` loads: the data flags given; with ``--subset-file``, the data its manifest was selected from,
    which a flag may repeat or re-point (``--data-root``, the new path of a folder:/arrays: source that moved) but
    not contradict."""
    if not args.subset_file:
        return from_arguments(DataConfig, args)
    from .manifest import read_manifest

    record = read_manifest(args.subset_file)
    given = given_arguments(DataConfig, args)
    recorded = _manifest_data(record, args.subset_file)
    if recorded is None:  # written before manifests recorded their data: the dataset it names, the flags for the rest
        name = record["dataset"].get("name") if isinstance(record.get("dataset"), dict) else None
        return DataConfig(**{**({"dataset": name} if isinstance(name, str) and name.strip() else {}), **given})
    _refuse_contradictions(given, recorded, args.subset_file)
    data = _found_again(recorded, record.get("data_path"), f"Subset file {args.subset_file} was selected from",
                        data_root=given.get("data_root"), dataset=given.get("dataset"))
    return replace(data, **{k: v for k, v in given.items() if k not in ("data_root", "dataset")})


def _manifest_data(record: dict, path) -> DataConfig | None:
    """The data config a manifest records (None: written before manifests recorded it)."""
    values = record.get("data")
    if values is None:
        return None
    try:
        if not isinstance(values, dict):
            raise TypeError(f"a JSON {type(values).__name__}, not an object")
        return from_dict(DataConfig, values)
    except (DataDietError, TypeError, ValueError) as exc:
        raise ConfigError(f"Subset file {path}: its recorded data config cannot be used ({exc}). Re-run `datadiet "
                          "prune` to write a new manifest.") from None


def _refuse_contradictions(given: dict, recorded: DataConfig, path) -> None:
    """Refuse a data flag whose value changes which examples the manifest's ids index, naming both values; the same
    value, an option of :data:`NOT_THE_TRAINING_DATA`, or a new path for data of the same kind (folder:, arrays:;
    the fingerprint then decides) passes."""
    for name, value in given.items():
        have = getattr(recorded, name)
        if name in NOT_THE_TRAINING_DATA or _same_data_value(name, value, have):
            continue
        flag = f"--{name.replace('_', '-')}"
        had = ("" if name == "dataset" else f" with {flag} {_flag_text(have)}" if have is not None else
               f" with no {flag}")
        raise ConfigError(f"{flag} {_flag_text(value)} contradicts subset file {path}, whose examples were selected "
                          f"from {recorded.dataset}{had}. Leave {flag} out (`train --subset-file` loads the data its "
                          "manifest records), or prune scores of the data you mean to train on.")


def _same_data_value(name: str, value, have) -> bool:
    if name != "dataset":
        return value == have
    if is_user_data(value) and is_user_data(have):  # the same kind of source, perhaps moved: the fingerprint decides
        return value.partition(":")[0].strip().lower() == have.partition(":")[0].strip().lower()
    return value.strip().lower() == have.strip().lower()


def _flag_text(value) -> str:
    """A value as its flag is written: ``--resize 32 32``, ``--label-noise 0.1``."""
    if isinstance(value, tuple):
        return " ".join(str(v) for v in value)
    return f"{value:g}" if isinstance(value, float) else str(value)


def cost_in_words(train_cfg: TrainConfig, cost, n_full: int) -> str:
    """What training cost, against the same recipe on all ``n_full`` examples without pruning: "cost: 848 sample
    passes (0.83× the 1,024 of full training), 2.89e+08 FLOPs, 2.8 s of training" (a ratio with a ×, so that
    "1.00× the 1,024" cannot read as one pass of 1,024)."""
    full = train_cfg.total_steps(train_size=n_full, full_size=n_full) * min(train_cfg.batch_size, n_full)
    flops = "FLOPs unknown" if cost.flops is None else f"{cost.flops:.3g} FLOPs"
    return (f"cost: {cost.sample_passes:,} sample passes ({cost.sample_passes / max(full, 1):.2f}× the {full:,} of "
            f"full training), {flops}, {cost.wall_seconds:.1f} s of training")


def _train_config(args: argparse.Namespace, data_cfg: DataConfig) -> TrainConfig:
    """The recipe of the flags given, with its flip decided for the data (so every saved config says it)."""
    train = _width_checked(from_arguments(TrainConfig, args), getattr(args, "width", None) is not None)
    return resolve_flip(train, user_data=is_user_data(data_cfg.dataset))


def steps_in_words(train_cfg: TrainConfig, steps: int, n_run: int, n_full: int) -> str:
    """``steps`` of a run on ``n_run`` of ``n_full`` examples, said so that a subset's budget is not read as epochs
    of the subset: "150 steps (the full data's 8 epochs; 90.1 passes over this 213-example subset)"."""
    schedule = train_cfg.schedule(train_size=n_run, full_size=n_full)
    if n_run == n_full:
        return f"{steps} steps ({steps / schedule.per_epoch:.3g} epochs of the {n_full:,} training examples)"
    budget = ("" if train_cfg.steps is not None or train_cfg.budget != "matched" else
              f"the full data's {train_cfg.epochs:g} epochs; ")
    return f"{steps} steps ({budget}{steps * schedule.batch / n_run:.3g} passes over this {n_run:,}-example subset)"


def _train_into(out: Path, train_cfg: TrainConfig, splits, positions, checkpoint_steps):
    """Train with checkpoints in ``out``; if training diverges, say what the folder keeps."""
    from .training import train

    try:
        return train(train_cfg, splits, positions=positions, checkpoint_dir=out / "checkpoints",
                     checkpoint_steps=checkpoint_steps)
    except NonFiniteLossError as exc:
        kept = sorted(p.name for p in (out / "checkpoints").glob("*")) if (out / "checkpoints").is_dir() else []
        raise NonFiniteLossError(
            f"{exc} {out} keeps config.json (the recipe that diverged)"
            + (f" and the checkpoints saved before the divergence ({', '.join(kept)})" if kept else "")
            + ", but no result.json; delete the folder or train into another --out.") from None


def cmd_score(args: argparse.Namespace) -> int:
    """Score every training example, averaged over independently seeded runs."""
    data_cfg = from_arguments(DataConfig, args)  # a refused flag answers before the heavy imports below
    train_cfg = _train_config(args, data_cfg)
    from .data import load_data
    from .runs.scoring import ScoreConfig, run_scores
    from .runs.sweep import check_recipe

    score_cfg = from_arguments(ScoreConfig, args)
    splits = load_data(data_cfg)
    check_recipe(train_cfg, splits.train)  # before the score folder is made
    _say(f"scoring {len(splits.train)} examples of {splits.name} with {score_cfg.runs} runs of {train_cfg.model}: "
         f"{', '.join(score_cfg.scores)} at epochs {', '.join(f'{e:g}' for e in score_cfg.score_epochs)}")
    from .scores import load_scores

    for path in run_scores(score_cfg, train_cfg, data_cfg, splits, args.out, log=_say):
        _say(f"wrote {path}")
        table = load_scores(path)  # read back once, checked as any later reader checks it
        _say_score_ties(table)
        _say_untrained(table)
    return 0


def _say_untrained(table) -> None:
    """Warn when a score file's network had not learned to fit its training data when it scored (training loss
    above 0.9 × ln K; runs.scoring.untrained_reason): its ranking then says little about the examples."""
    if table.meta.get("untrained"):
        _say(f"warning: {table.label}: {table.meta['untrained']}; score later (--score-epochs), train longer or check "
             "the recipe before pruning by it")


def _say_score_ties(table) -> None:
    """Print the largest tie of a score table just written, and warn when it holds over a tenth of the examples: a
    selection whose boundary falls inside it is then chosen by the seeded tie order, not by the score."""
    from .selection import TIE_WARNING_SHARE, percent, tie_phrase, tie_summary

    ties = tie_summary(table.mean)
    _say(f"{table.label}: {tie_phrase(ties)}")
    if ties["largest_tie_share"] > TIE_WARNING_SHARE:
        _say(f"warning: {table.label}: {percent(ties['largest_tie_share'])} of examples tie at "
             f"{ties['largest_tie_value']:g}; a selection whose boundary falls among them picks those examples by "
             "the seeded tie order (--tie-seed), not by the score")


@dataclass(frozen=True)
class PruneConfig:
    """What `datadiet prune` is asked: its flags are generated from these fields."""

    score_file: str                    # a score file (.npz) from `datadiet score`
    keep: float                        # fraction of examples kept, in (0, 1]
    out: str                           # subset manifest to write (.json)
    # a rule of the registry (selection.RULES): window (Data Diet's offset window), hardest, easiest, ccs
    # (coverage-centric sampling), moderate (nearest the median) or random
    rule: str = "window"
    offset: float | None = None        # window: fraction of lowest scores dropped first (default: 1 - keep)
    order: Literal["highest", "lowest"] | None = None  # window: keep the highest (default) or lowest scores
    # ccs: fraction of the hardest examples dropped first (default: by kept fraction, see
    # selection.default_ccs_beta)
    beta: float | None = None
    bins: int | None = None            # ccs: equal-width score bins (default 50)
    sample_seed: int | None = None     # ccs, random: seed of the draw (default 0)
    # every rule: seed of the order among equal scores (default 0; ties are ordered by a seeded hash of the example
    # id, never by id, so no class is favoured)
    tie_seed: int | None = None
    # apply the rule within every class, each keeping its proportional share (so an imbalanced dataset stays as
    # imbalanced): the older spelling of --class-quota proportional
    class_balanced: bool = False
    # apply the rule within every class: proportional (each class keeps its share, so the imbalance) or equal (the
    # same count from every class, a smaller class whole and the rest spread over the larger ones); default: none
    class_quota: Literal["proportional", "equal"] | None = None
    # where the scored data lies now, when it moved: folder:PATH or arrays:PATH (default: the path the score file
    # records, then its absolute path); checked by fingerprint
    dataset: str | None = None
    # where the scored built-in dataset lies (default: $DATADIET_DATA, then system locations); prune checks the
    # score file against it
    data_root: str | None = None


def cmd_prune(args: argparse.Namespace) -> int:
    """Select a subset from a score file and write a subset manifest.

    Rules (the registry ``selection.RULES``): ``window`` (Data Diet B.3: the highest scores, or an offset window),
    ``hardest``, ``easiest``, ``ccs`` (coverage-centric stratified sampling, Zheng et al. 2023), ``moderate`` (the
    scores nearest the median, Xia et al. 2023) and ``random``."""
    prune = from_arguments(PruneConfig, args)
    from .data import load_data
    from .manifest import save_subset
    from .scores import load_scores
    from .selection import select, selection_parameters, tie_decided, tie_summary

    table = load_scores(prune.score_file)
    data_cfg = _scored_data(table, prune)
    train_set = load_data(data_cfg).train
    table.check_dataset(train_set)  # a score file of other data is refused here, not later at `train`
    options = dict(rule=prune.rule, class_balanced=prune.class_balanced, class_quota=prune.class_quota,
                   **_rule_options(prune))
    parameters = selection_parameters(keep=prune.keep, **options)  # every parameter used, defaults resolved
    quota = parameters.get("class_quota")
    balance = dict(labels=train_set.labels.numpy(), num_classes=train_set.num_classes) if quota else {}
    ids = select(table, keep=prune.keep, **options, **balance)
    score_ties = tie_summary(table.mean)
    decided = tie_decided(table.mean, table.ids, ids, labels=balance.get("labels"), **parameters)
    selection = {"scores": str(prune.score_file), "score": table.label, **parameters,
                 "scores_fingerprint": table.meta.get("dataset", {}).get("fingerprint")}
    save_subset(prune.out, ids, train_set, selection, score_ties=score_ties, tie_decided=decided,
                data=_data_record(data_cfg, train_set))
    shown = {k: v for k, v in parameters.items() if k not in ("rule", "keep", "class_balanced", "class_quota")}
    chosen = "at random (the rule reads no score)" if prune.rule == "random" else f"by {table.label}"
    _say(f"kept {len(ids)} of {len(table.ids)} examples {chosen} ({prune.rule} rule, keep {prune.keep:g}"
         + "".join(f", {k} {v:g}" if isinstance(v, float) else f", {k} {v}" for k, v in shown.items())
         + (f", class quota {quota}" if quota else "") + f"); wrote {prune.out}")
    _say_ties(table.label, score_ties, decided, len(ids))
    _say_class_counts(train_set, ids, prune.keep, quota)
    return 0


def _say_ties(label: str, score_ties: dict, decided: int | None, kept: int) -> None:
    """Print the largest tie of the scores and how many kept examples the tie order picked; warn when those are over
    a tenth of the subset (then the seeded tie order, not the score, chose much of it)."""
    from .selection import TIE_WARNING_SHARE, percent, tie_phrase

    if decided is None:
        _say(f"ties: {tie_phrase(score_ties)} (the random rule reads no score)")
        return
    _say(f"ties: {tie_phrase(score_ties)}; the seeded tie order picked {decided} of the {kept} kept examples "
         f"({percent(decided / kept)})")
    if decided > TIE_WARNING_SHARE * kept:
        _say(f"warning: the seeded tie order, not {label}, picked {decided} of the {kept} kept examples "
             f"({percent(decided / kept)}): they tie with examples left out at the selection boundary; use a score "
             "with fewer ties, or prune again with another --tie-seed to see how much the subset depends on it")


def _say_class_counts(train_set, ids, keep: float, quota: str | None = None) -> None:
    """Print the kept count of every class, and a warning for each class kept at under half its share (not under
    ``--class-quota equal``, which gives up proportional shares on purpose)."""
    from .manifest import class_names
    from .selection import class_counts, short_classes

    labels = train_set.labels.numpy()
    counts = class_counts(labels[train_set.positions_of(ids).numpy()], train_set.num_classes)
    sizes = class_counts(labels, train_set.num_classes)
    names = class_names(train_set)
    _say("kept per class: " + ", ".join(f"{n} {c}/{s}" for n, c, s in zip(names, counts, sizes)))
    for c in short_classes(counts, sizes, keep) if quota != "equal" else []:
        _say(f"warning: class {names[c]!r} keeps {counts[c]} of its {sizes[c]} examples, under half of its "
             f"proportional share ({keep:g} x {sizes[c]} = {keep * sizes[c]:g}); {CLASS_REMEDIES}")


# What the class warnings offer: both quotas, and what each does to an imbalanced dataset.
CLASS_REMEDIES = ("--class-balanced (a method's +balanced) keeps every class's proportional share, so an imbalanced "
                  "dataset stays as imbalanced; --class-quota equal (+equal) keeps the same count from every class, "
                  "evening the classes out")


def _rule_options(prune: PruneConfig) -> dict:
    """The rule options the user gave (select() refuses those that mean nothing to the chosen rule): every option of
    the rule registry is a field of :class:`PruneConfig` of the same name, so a flag (tests/test_cli.py checks it)."""
    from .selection import RULES

    options = {name for rule in RULES.values() for name in rule.options}
    given = {**{name: getattr(prune, name) for name in options}, "seed": prune.sample_seed, "tie_seed": prune.tie_seed}
    return {k: v for k, v in given.items() if v is not None}


def _scored_data(table, args: PruneConfig) -> DataConfig:
    """The data a score file was computed on: its recorded config, with the data found again from any folder
    (:func:`_found_again`: ``--dataset`` and ``--data-root`` re-point it)."""
    try:
        data = from_dict(DataConfig, table.meta.get("data", {}))
    except (DataDietError, TypeError, ValueError) as exc:
        raise ConfigError(f"Score file {table.source}: its recorded data config cannot be used ({exc}). Recompute the "
                          "scores with `datadiet score`.") from None
    return _found_again(data, table.meta.get("data_path"), f"Score file {table.source} was computed on",
                        data_root=args.data_root, dataset=args.dataset)


def _found_again(data: DataConfig, absolute: str | None, recorded_by: str, *, data_root: str | None = None,
                 dataset: str | None = None) -> DataConfig:
    """``data`` as a file recorded it, found again from any folder.

    ``dataset`` re-points it (your folder or arrays moved, or were named relative to another folder), and
    ``data_root`` says where a built-in dataset lies.  Without them, data you brought is looked for at the path
    recorded, then at the ``absolute`` path the file also records.  The fingerprint is checked once it is loaded."""
    recorded = data.data_root if data.data_root and Path(data.data_root).is_dir() else None  # recorded elsewhere?
    data = replace(data, data_root=data_root or recorded)
    if dataset:
        return replace(data, dataset=dataset)
    if not is_user_data(data.dataset):
        return data
    kind, _, path = data.dataset.partition(":")
    if Path(path).expanduser().exists() or not absolute:
        return data
    if Path(absolute).exists():
        return replace(data, dataset=f"{kind}:{absolute}")
    raise ConfigError(f"{recorded_by} {data.dataset} (at {absolute}), which is in neither place now. Give its new "
                      f"location: --dataset {kind}:PATH; the fingerprint is checked.")


def _data_record(data_cfg: DataConfig, dataset) -> dict:
    """What a subset manifest records of its data, so that `train --subset-file` loads it again: the data config and,
    for data the user brought, its absolute path (found from any folder)."""
    path = dataset.notes.get("source", {}).get("path")
    return {"data": to_dict(data_cfg), **({"data_path": path} if path else {})}


def cmd_reproduce(args: argparse.Namespace) -> int:
    """Reproduce Kirsch (2023) Figs. 1-3 / Data Diet Fig. 1: score, prune, retrain, test against random, report."""
    from .runs.workspace import Workspace
    from .studies import get_study, run_study

    reproduction = get_study("reproduce")
    preset = _preset_name(args)
    if preset not in reproduction.presets:
        raise unknown_name("preset", preset, tuple(reproduction.presets))
    config = _configured(reproduction, preset, args)
    ws = Workspace(Path(args.out or f"results/{preset}"), _execution(args), log=_say)
    _say_summary(run_study(reproduction.name, config, ws), ws.root)
    return 0


def _preset_name(args: argparse.Namespace) -> str:
    if args.preset_positional:
        _deprecation("`datadiet reproduce NAME`", f"`datadiet reproduce --preset {args.preset_positional}`")
        if args.preset and args.preset != args.preset_positional:
            raise DataDietError(f"Two presets given ({args.preset_positional!r} and --preset {args.preset!r}); "
                                "give one, as --preset NAME.")
        return args.preset_positional
    return args.preset or "quick"


def cmd_report(args: argparse.Namespace) -> int:
    """Rebuild the tables, figures and report of a results folder (a reproduction, analyses, or both)."""
    from .studies import build_workspace_report

    folder = Path(args.folder)
    if not folder.is_dir():
        raise DataDietError(f"{folder} is not a folder; point `datadiet report` at the --out folder of "
                            "`datadiet reproduce` or `datadiet analyze`.")
    report = build_workspace_report(folder, extra_seeds=args.extra_seeds, log=_say)
    for summary in report.summaries.values():
        _say_summary(summary, folder)
    if not report.summaries:
        _say(f"report: {report.markdown} and {report.markdown.with_suffix('.html')}")
    return 0


def _say_summary(summary: dict, out: Path) -> None:
    for line in summary.get("headline", []):
        _say(line.replace("**", ""))
    if summary.get("spearman_grand_init_input_norm") is not None:
        _say(f"Spearman(GraNd@init, input norm) = {summary['spearman_grand_init_input_norm']:.3f}")
    _say(f"report: {out / 'report.md'} and {out / 'report.html'}")


def cmd_migrate(args: argparse.Namespace) -> int:
    """Move a reproduce folder of the old layout into the workspace layout; rename 0.1 runs to current ids."""
    from .runs.migrate import migrate

    migrate(args.folder, log=_say)
    return 0


def cmd_data(args: argparse.Namespace) -> int:
    """Show where a dataset was found, its sizes and fingerprints."""
    from .data import load_data
    from .data.registry import locate
    from .data.transforms import describe_augmentation

    data_cfg = from_arguments(DataConfig, args)
    folder = locate(data_cfg.dataset, data_cfg.data_root)
    splits = load_data(data_cfg)
    _say(f"{data_cfg.dataset} in {folder}")
    source = splits.train.notes.get("source")
    if source:  # data brought by the user: what was found, and how it was read
        if source["kind"] == "folder":
            layout = ("train/ and test/" if source.get("layout") == "split" else
                      f"one split, {data_cfg.test_fraction:g} of each class held out for test "
                      f"(seed {data_cfg.split_seed})")
            _say(f"  source: image folder, {layout}")
        else:
            _say(f"  source: {source['kind']} ({source.get('format', 'in memory')})")
        names = ", ".join(splits.train.classes[:20]) + (" ..." if splits.train.num_classes > 20 else "")
        _say(f"  classes: {splits.train.num_classes} ({names})")
        shape = splits.train.shape
        _say(f"  examples: float features of dimension {shape[0]}" if splits.train.is_features else
             f"  examples: {shape[0]}-channel images of {shape[1]}x{shape[2]} pixels (height x width)")
        if "cache" in source:
            status = source.get("cache_status") or ("reused" if source["cache_hit"] else "written now")
            _say(f"  cache: {source['cache']} ({status})")
        if source.get("ignored_count"):
            more = " ..." if source["ignored_count"] > len(source["ignored"]) else ""
            _say(f"  ignored (not images, or outside class folders): {source['ignored_count']}: "
                 f"{', '.join(source['ignored'])}{more}")
    for ds in (splits.train, splits.test):
        _say(f"  {ds.split}: {len(ds)} examples of shape {ds.shape}, {ds.num_classes} classes, "
             f"fingerprint {ds.fingerprint}")
    _say_class_balance(splits.train)
    _say(f"  augmentation (the default recipe's; a preset may turn it off): "
         f"{describe_augmentation(TrainConfig(), splits.train.shape, user_data=splits.user_data)}")
    if splits.train.is_features:
        _say(f"  normalization per dimension: mean in [{min(splits.mean):.4g}, {max(splits.mean):.4g}], "
             f"std in [{min(splits.std):.4g}, {max(splits.std):.4g}]")
    else:
        _say(f"  normalization mean {tuple(round(m, 4) for m in splits.mean)} "
             f"std {tuple(round(s, 4) for s in splits.std)}")
    return 0


def _say_class_balance(train_set, shown: int = 20) -> None:
    """Print the training split's examples per class (the first ``shown`` classes) and its imbalance ratio, largest
    class over smallest: what ``--class-quota``, ``+balanced`` / ``+equal`` and ``--class-weights`` are about."""
    from .manifest import class_names
    from .selection import class_counts

    counts, names = class_counts(train_set.labels.numpy(), train_set.num_classes), class_names(train_set)
    listed = ", ".join(f"{n} {c}" for n, c in zip(names[:shown], counts[:shown].tolist()))
    _say(f"  train examples per class: {listed}" + (f" ... ({len(counts)} classes)" if len(counts) > shown else ""))
    largest, smallest = int(counts.max()), int(counts.min())
    if smallest == 0:
        empty = [name for name, count in zip(names, counts) if count == 0]
        _say("  imbalance ratio (largest class / smallest): infinite, no training example of class "
             + ", ".join(map(repr, empty[:5])) + (" ..." if len(empty) > 5 else ""))
        return
    big, small = names[int(counts.argmax())], names[int(counts.argmin())]
    _say(f"  imbalance ratio (largest class / smallest): {largest / smallest:.3g} ({big!r} {largest} / {small!r} "
         f"{smallest})")


def cmd_download(args: argparse.Namespace) -> int:
    """Download a dataset with checksum verification (needs internet)."""
    from .data.download import download

    folder = download(args.name, args.data_root)
    _say(f"{args.name} is ready in {folder}")
    return 0


ANALYZE_DOC = """Run the analyses of both papers (one sub-command each; `all` runs every one that needs no input).

Every analysis writes tables, figures and a report section into one workspace (default results/analyses),
reuses score runs and evaluation runs already there, and resumes when re-run."""


def cmd_analyze(args: argparse.Namespace) -> int:
    """Run one analysis (or all) and rebuild the workspace report."""
    from .runs.workspace import Workspace
    from .studies import get_study

    ws = Workspace(Path(args.out), _execution(args), log=_say)
    names = list(_lazy("MODULES")) if args.analysis == "all" else [args.analysis]
    for name in names:
        study = get_study(name)
        config = _configured(study, args.preset, args)  # every study has every preset (runs.presets.study_presets)
        reason = study.missing_input(config) if study.missing_input else None
        if args.analysis == "all" and reason:
            _say(f"== {name} ({args.preset}): skipped, {reason} ==")
            continue
        _say(f"== {name} ({args.preset}) ==")
        summary = _lazy("run_study")(name, config, ws)
        for line in summary.get("findings", []):
            _say(f"  - {line.replace('**', '')}")
    _say(f"report: {ws.root / 'report.md'} and {ws.root / 'report.html'}")
    return 0


def _configured(study, preset: str, args: argparse.Namespace):
    """A study's preset config with the flags the user gave: its own fields, and its setting's data and recipe.
    ``studies.configured`` is the one place where changes are applied to a preset."""
    from .studies import configured

    setting = _setting_with(args, study.preset(preset).setting)
    return configured(study, preset, setting=setting, **given_arguments(study.config, args, skip=("setting",)))


# The setting's training seed has no flag: each study derives its runs' seeds from the setting's (score runs from 0,
# evaluation runs from eval_seed_base).
NO_SETTING_FLAG = ("seed",)


def _add_setting_overrides(p: argparse.ArgumentParser, taken: set[str], set_per_point: Sequence[str] = (),
                           shown=None) -> None:
    """Flags for the setting's data and recipe, except those the command already has (its flag wins: --data-root and
    --device say where runs execute, a study's own --label-noise is its own), those the study sets per point itself
    (``set_per_point``) and :data:`NO_SETTING_FLAG`.  ``shown``: the (preset name, setting) whose values the help
    shows."""
    skip = {*taken, *set_per_point, *NO_SETTING_FLAG}
    name, setting = shown or (None, None)
    data = add_arguments(p, DataConfig, skip=skip, preset=(name, setting.data) if shown else None,
                         title="data (default: the preset's; --dataset starts from the defaults: folder:PATH, "
                               "arrays:FILE)")
    train = add_arguments(p, TrainConfig, skip=skip, preset=(name, setting.train) if shown else None,
                          title="training recipe (default: the preset's)")
    p.set_defaults(setting_flags={"data": data, "train": train})


def _setting_with(args: argparse.Namespace, setting):
    """``setting`` with the data and recipe flags the user gave. A new ``--dataset`` starts from the data
    defaults: the preset's subset of Fashion-MNIST means nothing for other data."""
    flags = getattr(args, "setting_flags", None)
    if flags is None:
        return setting
    data_given = given_arguments(DataConfig, args, only=flags["data"])
    train_given = given_arguments(TrainConfig, args, only=flags["train"])
    if data_given or train_given:
        data = DataConfig(**data_given) if "dataset" in data_given else replace(setting.data, **data_given)
        title = (f"{data.dataset}, the {setting.name} preset's recipe" if "dataset" in data_given else setting.title) \
            + (" (recipe changed)" if train_given else "")
        train = _width_checked(replace(setting.train, **train_given), "width" in train_given)
        setting = replace(setting, data=data, train=train, title=title)
    # The flip decided for the final data: the saved config says which augmentation applies.
    return replace(setting, train=resolve_flip(setting.train, user_data=is_user_data(setting.data.dataset)))


def _width_checked(train: TrainConfig, width_given: bool) -> TrainConfig:
    """The recipe's width for your model factory (``package.module:factory``), when the factory takes no ``width``:
    a --width you give is refused (no layer would use it, yet every result would record it), and a preset's width
    is recorded as 1, the model that is built.  Checked here, in the command line, because the model builder keeps
    calling such factories from Python whatever width it is given."""
    if ":" not in train.model or train.width == 1.0:
        return train
    from .models import model_factory

    builder = model_factory(train.model)
    if "width" in builder.accepts:
        return train
    if width_given:
        raise ConfigError(f"--width {train.width:g} was given, but model factory {train.model} takes no width "
                          "parameter, so it would be ignored while every result records it. Drop --width, or give "
                          "the factory a width=1.0 parameter that scales its layers.")
    return replace(train, width=1.0)


def _execution(args: argparse.Namespace):
    from .runs.sweep import Execution

    return from_arguments(Execution, args)


# ----------------------------------------------------------------------------- the parser

def build_parser() -> argparse.ArgumentParser:
    """The whole command line: every command with all its flags (``main`` builds only the command it runs)."""
    return _parser()


ALL = None  # _parser(ALL): every command's flags
NONE = ""   # _parser(NONE): no command's flags (`datadiet --help`, `--version`, a mistyped command)
DEFAULT_PRESET = "quick"


class Wanted(NamedTuple):
    """What a command's flags are built for: the analysis run by `analyze`, and the preset whose values the help
    of `reproduce` and `analyze` shows."""

    analysis: str | None = None
    preset: str = DEFAULT_PRESET


def _parser(command: str | None = ALL, analysis: str | None = None,
            preset: str = DEFAULT_PRESET) -> argparse.ArgumentParser:
    """The command line with the flags of ``command`` (and of ``analysis``, for analyze) only, or of all of them.

    Every command is there with its one-line help, so ``datadiet --help`` and a mistyped command read the same
    either way; only the flags, whose help needs the heavy modules (score names, presets, study configs), are
    left out for the commands not run."""
    parser = argparse.ArgumentParser(prog="datadiet", description=__doc__.splitlines()[0],
                                     allow_abbrev=False)  # generated flags share prefixes: --epochs is not --epochs-per-size
    parser.add_argument("--version", action="version", version=f"datadiet {__version__}")
    parser.add_argument("--debug", action="store_true", help="show full tracebacks (also: DATADIET_DEBUG=1)")
    sub = parser.add_subparsers(dest="command", required=True)
    for name, (fn, add) in COMMANDS.items():
        p = _subcommand(sub, name, fn, ANALYZE_DOC if name == "analyze" else None)
        if command in (ALL, name):
            add(p, Wanted(analysis, preset))
    return parser


def _train_arguments(p: argparse.ArgumentParser, _: Wanted) -> None:
    add_arguments(p, DataConfig)
    add_arguments(p, TrainConfig)
    p.add_argument("--out", help="folder for config.json, result.json and checkpoints")
    p.add_argument("--checkpoint-steps", type=int, nargs="+", help="save checkpoints after these steps (0 = init)")
    p.add_argument("--subset-file", help="train only on the examples of this `datadiet prune` manifest")


def _score_arguments(p: argparse.ArgumentParser, _: Wanted) -> None:
    from .runs.scoring import ScoreConfig

    add_arguments(p, DataConfig)
    add_arguments(p, TrainConfig, skip=("seed",))  # run r uses ScoreConfig.seed + r
    add_arguments(p, ScoreConfig)
    _deprecated(p, "--score", "--scores", nargs="+")
    _deprecated(p, "--epoch", "--score-epochs", type=float, nargs="+")
    p.add_argument("--out", required=True, help="folder for the score files (.npz) and the run cache")


def _prune_arguments(p: argparse.ArgumentParser, _: Wanted) -> None:
    from .selection import RULES

    add_arguments(p, PruneConfig, title="prune", choices={"rule": RULES})
    _deprecated(p, "--scores", "--score-file")
    _renamed(p, "--seed", "--sample-seed", "the seed of CCS's sampling within bins; --seed is the training seed of "
             "`datadiet train` and `datadiet score`")
    # Checked by main, not by argparse: the deprecated --scores also fills score_file.
    p.set_defaults(required_flags=tuple(f.name for f in fields(PruneConfig) if f.default is MISSING))


def _reproduce_arguments(p: argparse.ArgumentParser, wanted: Wanted) -> None:
    from .runs.sweep import Execution
    from .studies import get_study

    reproduction = get_study("reproduce")
    p.add_argument("preset_positional", nargs="?", metavar="PRESET", help=argparse.SUPPRESS)
    p.add_argument("--preset", help=_preset_help(reproduction, "default quick: CPU, ~20 min"))
    p.add_argument("--out", help="results folder (default results/PRESET); re-running resumes it")
    shown = _shown_preset(reproduction.presets, wanted.preset)
    taken = {"preset", "out", *add_arguments(p, Execution, title="where runs execute")}
    taken.update(add_arguments(p, reproduction.config, skip=("setting",), preset=shown,
                               title=f"the grid (default: the {shown[0]} preset's)"))
    _add_setting_overrides(p, taken, shown=(shown[0], shown[1].setting))


def _preset_help(study, note: str) -> str:
    """``--preset``'s help: the names of the one preset table, and where this study (None: `analyze all`) runs one
    on another setting."""
    from .runs.presets import PRESETS, describe_setting

    if study is None:
        overrides = "; quick runs most analyses on the quick-scarce setting (see each analysis's --help)"
    else:
        overrides = "".join(f"; {preset}{describe_setting(preset, setting)}"
                            for preset, setting in study.settings.items())
    return f"one of {', '.join(PRESETS)} ({note}){overrides}"


def _shown_preset(presets: dict, name: str) -> tuple[str, object]:
    """The preset whose values the help shows: the one asked for, else quick (the default), else the first."""
    name = next(n for n in (name, DEFAULT_PRESET, *presets) if n in presets)
    return name, presets[name]


def _report_arguments(p: argparse.ArgumentParser, _: Wanted) -> None:
    p.add_argument("folder", help="the --out folder of `datadiet reproduce` or `datadiet analyze` (one layout)")
    p.add_argument("--extra-seeds", choices=("ignore", "include"), default="ignore",
                   help="runs of the same experiment with evaluation seeds beyond its plan (left by an earlier, "
                   "larger --eval-seeds): left out (default) or averaged in")


def _migrate_arguments(p: argparse.ArgumentParser, _: Wanted) -> None:
    p.add_argument("folder", help="a results folder of an earlier `datadiet reproduce` or `datadiet analyze`")


def _data_arguments(p: argparse.ArgumentParser, _: Wanted) -> None:
    add_arguments(p, DataConfig)


def _download_arguments(p: argparse.ArgumentParser, _: Wanted) -> None:
    from .data.download import SOURCES  # the downloads' registry: a dataset added there is offered here

    p.add_argument("name", help=", ".join(SOURCES))
    p.add_argument("--data-root", required=True, help="folder to download into")


# Old flags of single analyses, kept for one release: analysis → [(old flag, new flag, argparse options)].
DEPRECATED_ANALYSIS_FLAGS = {
    "kernel_velocity": [("--epochs", "--velocity-epochs", {"type": float, "nargs": "+"})],
    "mode_connectivity": [("--subset-size", "--eval-set-size", {"type": int})],
}


def _add_analyze_parsers(p: argparse.ArgumentParser, wanted: Wanted) -> None:
    """One sub-command per analysis; with ``wanted.analysis`` (an analysis name), the others without their flags."""
    from .studies import MODULES, get_study

    sub = p.add_subparsers(dest="analysis", required=True, metavar="ANALYSIS")
    full = wanted.analysis not in ("all", *MODULES)  # a name we do not know: every analysis, so argparse lists them
    for name in ("all", *MODULES):
        if not (full or name == wanted.analysis):
            sub.add_parser(name, allow_abbrev=False)  # not run: no flags to build, no module to import
            continue
        study = get_study(name) if name != "all" else None
        doc = study.doc if study else "Every analysis that needs no extra input, one after another."
        _add_analysis_flags(_subcommand(sub, name, cmd_analyze, doc), study, wanted.preset)


def _add_analysis_flags(q: argparse.ArgumentParser, study, preset: str) -> None:
    """The flags of ``analyze NAME``: preset, workspace, where runs execute, the analysis's own options and its
    setting's data and recipe (those its own options and the old spellings do not take)."""
    from .runs.sweep import Execution

    q.add_argument("--preset", default=DEFAULT_PRESET,
                   help=_preset_help(study, "smoke: seconds; quick: CPU, <= 15 min; paper: GPUs"))
    q.add_argument("--out", default="results/analyses", help="workspace folder (default results/analyses)")
    taken = {"preset", "out", *add_arguments(q, Execution, title="where runs execute")}
    if study is None:
        return
    shown = _shown_preset(study.presets, preset)
    taken.update(add_arguments(q, study.config, skip=("setting",), preset=shown,
                               title=f"{study.name} options (default: the {shown[0]} preset's)"))
    for old, new, options in DEPRECATED_ANALYSIS_FLAGS.get(study.name, []):
        _deprecated(q, old, new, **options)
        taken.add(_dest(old))  # the old spelling keeps its flag: a setting's flag of that name would shadow it
    _add_setting_overrides(q, taken, study.set_per_point, shown=(shown[0], shown[1].setting))


def _subcommand(sub, name: str, fn: Callable[[argparse.Namespace], int] | None, doc: str | None = None
                ) -> argparse.ArgumentParser:
    doc = doc or fn.__doc__
    p = sub.add_parser(name, help=doc.splitlines()[0], description=doc, allow_abbrev=False)
    p.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                   help="show full tracebacks (also: DATADIET_DEBUG=1)")
    if fn is not None:
        p.set_defaults(func=fn)
    return p


def _dest(flag: str) -> str:
    """The field a flag sets: ``--sample-seed`` → ``sample_seed``."""
    return flag.lstrip("-").replace("-", "_")


class _DeprecatedFlag(argparse.Action):
    """Stores into the new flag's destination and says once that the old spelling goes away."""

    def __init__(self, option_strings, dest, new_flag: str, **kwargs):
        self.new_flag = new_flag
        super().__init__(option_strings, dest, **kwargs)

    def __call__(self, parser, namespace, values, option_string=None):
        _deprecation(option_string, self.new_flag)
        setattr(namespace, self.dest, values)


def _deprecated(parser: argparse.ArgumentParser, old: str, new: str, **kwargs) -> None:
    parser.add_argument(old, dest=_dest(new), action=_DeprecatedFlag, new_flag=new, help=argparse.SUPPRESS, **kwargs)


class _RenamedFlag(argparse.Action):
    """A flag whose name now means something else elsewhere: refused with its new name, never read silently."""

    def __init__(self, option_strings, dest, new_flag: str, meaning: str, **kwargs):
        self.new_flag, self.meaning = new_flag, meaning
        super().__init__(option_strings, dest, **kwargs)

    def __call__(self, parser, namespace, values, option_string=None):
        parser.error(f"{option_string} is now {self.new_flag}: {self.meaning}.")


def _renamed(parser: argparse.ArgumentParser, old: str, new: str, meaning: str) -> None:
    parser.add_argument(old, dest=argparse.SUPPRESS, action=_RenamedFlag, new_flag=new, meaning=meaning, nargs="?",
                        help=argparse.SUPPRESS)


def _deprecation(old: str, new: str) -> None:
    print(f"datadiet: {old} is deprecated and goes away in 0.3; use {new}.", file=sys.stderr)


# command → (what it runs, what adds its flags)
COMMANDS: dict[str, tuple[Callable[[argparse.Namespace], int] | None, Callable]] = {
    "train": (cmd_train, _train_arguments), "score": (cmd_score, _score_arguments),
    "prune": (cmd_prune, _prune_arguments), "reproduce": (cmd_reproduce, _reproduce_arguments),
    "analyze": (None, _add_analyze_parsers), "report": (cmd_report, _report_arguments),
    "migrate": (cmd_migrate, _migrate_arguments), "data": (cmd_data, _data_arguments),
    "download": (cmd_download, _download_arguments),
}


@functools.lru_cache(maxsize=None)  # a parser is read-only once built: one per command and process is enough
def _parser_for(command: str, analysis: str | None, preset: str) -> argparse.ArgumentParser:
    return _parser(command, analysis, preset)


def _wanted(argv: Sequence[str]) -> tuple[str, str | None]:
    """The command (and analysis) that ``argv`` runs: its first words, since datadiet's own options (--debug,
    --version, --help) take no value; ``NONE`` when it names no command."""
    words = [a for a in argv if not a.startswith("-")]
    command = words[0] if words and words[0] in COMMANDS else NONE
    return command, (words[1] if command == "analyze" and len(words) > 1 else None)


def _preset_in(argv: Sequence[str]) -> str:
    """The preset ``argv`` asks for (``--preset NAME`` or ``--preset=NAME``), whose values the help shows."""
    for i, word in enumerate(argv):
        if word == "--preset" and i + 1 < len(argv):
            return argv[i + 1]
        if word.startswith("--preset="):
            return word.partition("=")[2]
    return DEFAULT_PRESET


def main(argv: Sequence[str] | None = None) -> int:
    argv = [str(a) for a in (sys.argv[1:] if argv is None else argv)]
    parser = _parser_for(*_wanted(argv), _preset_in(argv))
    args = parser.parse_args(argv)
    missing = [f"--{name.replace('_', '-')}" for name in getattr(args, "required_flags", ())
               if getattr(args, name, None) is None]
    if missing:
        parser.error(f"the following arguments are required: {', '.join(missing)}")
    try:
        return args.func(args)
    except KeyboardInterrupt as stop:  # a user model's interrupt says where it struck (models/user.py)
        where = f" {stop}" if str(stop) else ""
        print(f"datadiet: interrupted{where}; finished results are on disk and a re-run resumes.", file=sys.stderr)
        return 130
    except Exception as exc:  # noqa: BLE001 - turned into one paragraph; --debug shows the traceback
        if args.debug or os.environ.get("DATADIET_DEBUG", "") not in ("", "0"):
            raise
        message, status = explain(exc)
        print(textwrap.fill(f"datadiet: error: {message}", width=100, break_long_words=False,
                            break_on_hyphens=False), file=sys.stderr)
        return status


def console() -> NoReturn:
    """The ``datadiet`` program (the console script and ``python -m datadiet``): :func:`main`, then exit with its
    status even when user code (a model factory, a module it imports) left non-daemon threads running, which would
    otherwise keep the finished command alive forever. Those threads are named in one line, then the process
    leaves with ``os._exit``. Only the program does this: :func:`main` called from Python returns as ever."""
    try:
        code = main()
    except SystemExit as stop:  # argparse's usage errors and --help
        code = stop.code
    except KeyboardInterrupt:  # struck outside main's own handler (while parsing)
        code = 130
    except Exception:  # noqa: BLE001 - only --debug lets one through: show its traceback as Python would
        traceback.print_exc()
        code = 1
    _leave(code)


def _leave(code) -> NoReturn:
    status = code if isinstance(code, int) else (0 if code is None else 1)
    if not isinstance(code, (int, type(None))):
        print(code, file=sys.stderr)  # SystemExit("message"), as the interpreter would print it
    stray = [t for t in threading.enumerate() if t is not threading.main_thread() and t.is_alive() and not t.daemon]
    if not stray:
        sys.exit(status)  # the ordinary shutdown: atexit handlers run
    _flush(sys.stdout)  # what the command printed comes before the warning
    counts = {name: [t.name for t in stray].count(name) for name in dict.fromkeys(t.name for t in stray)}
    names = ", ".join(repr(name) + (f" ×{n}" if n > 1 else "") for name, n in counts.items())
    print(f"datadiet: warning: done, but {len(stray)} non-daemon thread{'s' if len(stray) > 1 else ''} started by "
          f"user code (a model factory or a module it imports) still run{'s' if len(stray) == 1 else ''} ({names}) "
          "and would keep the process alive forever; exiting without waiting for them (start such threads with "
          "daemon=True).", file=sys.stderr)
    _flush(sys.stderr)
    os._exit(status)  # skips the interpreter's shutdown, which would wait for those threads


def _flush(stream) -> None:
    try:
        stream.flush()
    except (OSError, ValueError):  # a closed pipe or stream: nothing more can be said there
        pass


# What an operating-system error means for a datadiet user, by errno.
OS_ADVICE = {
    errno.ENOSPC: "The disk is full: free some space and re-run the same command; finished results are kept and "
                  "it resumes where it stopped.",
    errno.EDQUOT: "The disk quota is exhausted: free some space and re-run; it resumes where it stopped.",
    errno.EACCES: "Permission denied: choose a folder you can write (--out) or fix its permissions.",
    errno.EPERM: "Permission denied: choose a folder you can write (--out) or fix its permissions.",
    errno.EROFS: "The file system is read-only: choose another --out folder.",
    errno.ENAMETOOLONG: "The path is too long: choose a shorter --out path.",
    errno.ENOTDIR: "A part of the path is a file where a folder is needed: choose another --out path or move the "
                   "file away.",
    errno.EISDIR: "The path is a folder where a file is needed: give a file path.",
    errno.EEXIST: "A file is in the way of a folder datadiet needs: move it away or choose another --out.",
    errno.ENOENT: "The file or folder does not exist: check the path.",
}


def explain(exc: BaseException) -> tuple[str, int]:
    """The paragraph and exit status for an exception that reached the command line."""
    if isinstance(exc, DataDietError):
        return str(exc), exc.exit_code
    if isinstance(exc, OSError):
        where = " -> ".join(str(f) for f in (exc.filename, exc.filename2) if f) or "a file"
        advice = OS_ADVICE.get(exc.errno, "Check the path and the disk, then re-run; finished results are kept.")
        return f"cannot use {where}: {exc.strerror or exc}. {advice}", 2
    if isinstance(exc, MemoryError) or "out of memory" in str(exc).lower():
        return out_of_memory_message(exc), 2
    return (f"unexpected {type(exc).__name__}: {exc}. This is a bug in datadiet: re-run with --debug for the "
            "traceback and report it."), 1


def _say(message: str) -> None:
    print(message, flush=True)
