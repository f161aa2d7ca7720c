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
from dataclasses import fields, replace
from pathlib import Path
from typing import Callable, Sequence

from .version import __version__
from .config import (DataConfig, TrainConfig, add_arguments, from_arguments, from_dict, given_arguments, is_user_data,
                     resolve_flip, to_dict)
from .errors import ConfigError, DataDietError, NonFiniteLossError, out_of_memory_message, unknown_name
from .io import folder_lock, write_json_atomic

# Everything heavier (torch, scipy, the data loaders, the studies: about two seconds of imports) is imported by the
# command that uses it, so that `datadiet --help`, `--version` and a refused flag answer at once.  cli is the top
# layer, so these imports point down the stack like any other (tests/test_layers.py checks them, in functions too).
# The module-level names that tests replace are looked up through `_lazy`.
_LAZY = {"MODULES": ("studies", "MODULES"), "run_analysis": ("studies", "run_analysis")}


def _lazy(name: str):
    """The heavy module-level ``name``, imported on first use; a replacement set on this module wins."""
    if name not in globals():
        module, attribute = _LAZY[name]
        globals()[name] = getattr(importlib.import_module(f".{module}", __package__), attribute)
    return globals()[name]


def __getattr__(name: str):  # `datadiet.cli.MODULES` from outside (tests replace it)
    if name in _LAZY:
        return _lazy(name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def cmd_train(args: argparse.Namespace) -> int:
    """Train one model and report its final-step test accuracy."""
    data_cfg = from_arguments(DataConfig, args)  # a refused flag answers before the heavy imports below
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
    out = Path(args.out) if args.out else None
    record = {"version": __version__, "data": to_dict(data_cfg), "train": to_dict(train_cfg),
              "dataset": splits.train.describe(), "test_dataset": splits.test.describe()}
    check_recipe(train_cfg, splits.train)  # a model that is unknown or does not fit the data: refused here
    check_fits(train_cfg, splits.train)
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
    steps = (steps_in_words(train_cfg, result.steps, n_run, len(splits.train)) if train_cfg.dynamic == "none" else
             f"{result.steps} steps ({result.epochs_seen:g} epochs of {train_cfg.dynamic} pruning over {n_run:,} examples)")
    _say(f"done: {steps} in {result.wall_seconds:.1f}s; final test accuracy {result.test_accuracy:.4f}"
         + (f"; results in {out}" if out else ""))
    _say(cost_in_words(train_cfg, result.cost, len(splits.train)))
    return 0


def cost_in_words(train_cfg: TrainConfig, cost, n_full: int) -> str:
    """What training cost, against the same recipe on all ``n_full`` examples without pruning: "cost: 848 sample
    passes (0.83 of the 1,024 of full training), 2.89e+08 FLOPs, 2.8 s of training"."""
    full = train_cfg.total_steps(train_size=n_full, full_size=n_full) * min(train_cfg.batch_size, n_full)
    flops = "FLOPs unknown" if cost.flops is None else f"{cost.flops:.3g} FLOPs"
    return (f"cost: {cost.sample_passes:,} sample passes ({cost.sample_passes / max(full, 1):.3g} of the {full:,} of "
            f"full training), {flops}, {cost.wall_seconds:.1f} s of training")


def _train_config(args: argparse.Namespace, data_cfg: DataConfig) -> TrainConfig:
    """The recipe of the flags given, with its flip decided for the data (so every saved config says it)."""
    train = _width_checked(from_arguments(TrainConfig, args), getattr(args, "width", None) is not None)
    return resolve_flip(train, user_data=is_user_data(data_cfg.dataset))


def steps_in_words(train_cfg: TrainConfig, steps: int, n_run: int, n_full: int) -> str:
    """``steps`` of a run on ``n_run`` of ``n_full`` examples, said so that a subset's budget is not read as epochs
    of the subset: "150 steps (the full data's 8 epochs; 90.1 passes over this 213-example subset)"."""
    plan = train_cfg.plan(train_size=n_run, full_size=n_full)
    if n_run == n_full:
        return f"{steps} steps ({steps / plan.per_epoch:.3g} epochs of the {n_full:,} training examples)"
    budget = ("" if train_cfg.steps is not None or train_cfg.budget != "matched" else
              f"the full data's {train_cfg.epochs:g} epochs; ")
    return f"{steps} steps ({budget}{steps * plan.batch / n_run:.3g} passes over this {n_run:,}-example subset)"


def check_fits(train_cfg: TrainConfig, train_set) -> None:
    """Refuse a built-in model that cannot run on this data, before anything is written: a conv net on feature
    vectors, or images smaller than its pooling allows (a 2x2 image through the small CNN's two 2x2 max-pools).
    User models are run on one example by models.check_model instead."""
    import torch

    from .models import build_model, model_factory

    if model_factory(train_cfg.model).user:
        return
    with torch.random.fork_rng(devices=[]):  # building draws weights: leave the global RNG as it was
        model = build_model(train_cfg.model, num_classes=train_set.num_classes, in_channels=train_set.shape[0],
                            width=train_cfg.width, input_shape=tuple(train_set.shape))
    if train_set.is_features or _runs_on(model, train_set.shape):
        return
    c, h, w = train_set.shape
    side = next((s for s in range(max(h, w) + 1, 513) if _runs_on(model, (c, s, s))), None)
    need = f"images of at least {side}x{side} pixels" if side else "larger images"
    raise ConfigError(f"Model {train_cfg.model!r} needs {need}, but this data holds {h}x{w} images: its pooling "
                      f"shrinks them to nothing. Give --resize {side or 32} {side or 32} (image folders), larger "
                      "images, or a model that takes them (--model mlp, or your own package.module:factory).")


def _runs_on(model, shape) -> bool:
    """Whether ``model`` (in eval mode) maps one all-zero example of ``shape`` to outputs."""
    import torch

    model.eval()
    try:
        with torch.no_grad():
            model(torch.zeros(1, *shape))
    except RuntimeError:
        return False
    return True


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
    check_fits(train_cfg, splits.train)
    _say(f"scoring {len(splits.train)} examples of {splits.name} with {score_cfg.runs} runs of {train_cfg.model}: "
         f"{', '.join(score_cfg.scores)} at epochs {', '.join(f'{e:g}' for e in score_cfg.score_epochs)}")
    for path in run_scores(score_cfg, train_cfg, data_cfg, splits, args.out, log=_say):
        _say(f"wrote {path}")
    return 0


def cmd_prune(args: argparse.Namespace) -> int:
    """Select a subset from a score file and write a subset manifest.

    Rules: ``window`` (Data Diet B.3: the highest scores, or an offset window), ``ccs`` (coverage-centric
    stratified sampling, Zheng et al. 2023) and ``moderate`` (the scores nearest the median, Xia et al. 2023)."""
    from .data import load_data
    from .manifest import save_subset
    from .scores import load_scores
    from .selection import select, selection_parameters

    table = load_scores(args.score_file)
    train_set = load_data(_scored_data(table, args)).train
    table.check_dataset(train_set)  # a score file of other data is refused here, not later at `train`
    options = dict(rule=args.rule, class_balanced=args.class_balanced, **_rule_options(args))
    parameters = selection_parameters(keep=args.keep, **options)  # every parameter used, defaults resolved
    balance = dict(labels=train_set.labels.numpy(), num_classes=train_set.num_classes) if args.class_balanced else {}
    ids = select(table, keep=args.keep, **options, **balance)
    selection = {"scores": str(args.score_file), "score": table.label, **parameters,
                 "scores_fingerprint": table.meta.get("dataset", {}).get("fingerprint")}
    save_subset(args.out, ids, train_set, selection)
    shown = {k: v for k, v in parameters.items() if k not in ("rule", "keep", "class_balanced")}
    _say(f"kept {len(ids)} of {len(table.ids)} examples by {table.label} ({args.rule} rule, keep {args.keep:g}"
         + "".join(f", {k} {v:g}" if isinstance(v, float) else f", {k} {v}" for k, v in shown.items())
         + (", class-balanced" if args.class_balanced else "") + f"); wrote {args.out}")
    _say_class_counts(train_set, ids, args.keep)
    return 0


def _say_class_counts(train_set, ids, keep: float) -> None:
    """Print the kept count of every class, and a warning for each class kept at under half its share."""
    from .manifest import class_names
    from .selection import class_counts, short_classes

    labels = train_set.labels.numpy()
    counts = class_counts(labels[train_set.positions_of(ids).numpy()], train_set.num_classes)
    sizes = class_counts(labels, train_set.num_classes)
    names = class_names(train_set)
    _say("kept per class: " + ", ".join(f"{n} {c}/{s}" for n, c, s in zip(names, counts, sizes)))
    for c in short_classes(counts, sizes, keep):
        _say(f"warning: class {names[c]!r} keeps {counts[c]} of its {sizes[c]} examples, under half of its "
             f"proportional share ({keep:g} x {sizes[c]} = {keep * sizes[c]:g}); --class-balanced keeps every "
             "class's share")


def _rule_options(args: argparse.Namespace) -> dict:
    """The options of the chosen rule that the user gave (select() refuses those that mean nothing to it)."""
    given = {"offset": args.offset, "order": args.order, "beta": args.beta, "bins": args.bins, "seed": args.seed,
             "tie_seed": args.tie_seed}
    return {k: v for k, v in given.items() if v is not None}


def _scored_data(table, args: argparse.Namespace) -> DataConfig:
    """The data a score file was computed on: its recorded config, with the data found again from any folder.

    ``--dataset`` re-points it (your folder or arrays moved, or were named relative to another folder), and
    ``--data-root`` says where a built-in dataset lies.  Without them, data you brought is looked for at the path
    recorded, then at the absolute path the file also records.  The fingerprint is checked once it is loaded."""
    try:
        data = from_dict(DataConfig, table.meta.get("data", {}))
    except (DataDietError, TypeError, ValueError) as exc:
        raise ConfigError(f"Score file {table.source}: its recorded data config cannot be used ({exc}). Recompute the "
                          "scores with `datadiet score`.") from None
    recorded = data.data_root if data.data_root and Path(data.data_root).is_dir() else None  # scored elsewhere?
    data = replace(data, data_root=args.data_root or recorded)
    if args.dataset:
        return replace(data, dataset=args.dataset)
    if not is_user_data(data.dataset):
        return data
    kind, _, path = data.dataset.partition(":")
    absolute = table.meta.get("data_path")
    if Path(path).expanduser().exists() or not absolute:
        return data
    if Path(absolute).exists():
        return replace(data, dataset=f"{kind}:{absolute}")
    raise ConfigError(f"Score file {table.source} was computed on {data.dataset} (at {absolute}), which is in neither "
                      f"place now. Give its new location: --dataset {kind}:PATH; the fingerprint is checked.")


def cmd_reproduce(args: argparse.Namespace) -> int:
    """Reproduce Kirsch (2023) Figs. 1-3 / Data Diet Fig. 1: score, prune, retrain, test against random, report."""
    from .studies import reproduce as reproduction

    preset = _preset_name(args)
    if preset not in reproduction.PRESETS:
        raise unknown_name("preset", preset, tuple(reproduction.PRESETS))
    config = _configured(reproduction.PRESETS[preset], reproduction.Config, args)
    out = Path(args.out or f"results/{preset}")
    _check_own_data_fits(config.setting, _execution(args).data_root)
    summary = reproduction.reproduce(config, out, **_execution(args).where(), log=_say)
    _say_summary(summary, out)
    return 0


def _check_own_data_fits(setting, data_root: str | None) -> None:
    """For data you brought, refuse a built-in model that cannot take it (see :func:`check_fits`) before a results
    folder is made; built-in datasets (28 and 32 px) fit every built-in model."""
    if not is_user_data(setting.data.dataset):
        return
    from .data import load_data

    data = replace(setting.data, data_root=data_root) if data_root else setting.data
    check_fits(setting.train, load_data(data).train)  # folders load from their cache: milliseconds


def _preset_name(args: argparse.Namespace) -> str:
    if args.preset_positional:
        _deprecation("`datadiet reproduce NAME`", f"`datadiet reproduce --preset {args.preset_positional}`")
        if args.preset and args.preset != args.preset_positional:
            raise DataDietError(f"Two presets given ({args.preset_positional!r} and --preset {args.preset!r}); "
                                "give one, as --preset NAME.")
        return args.preset_positional
    return args.preset or "quick"


def cmd_report(args: argparse.Namespace) -> int:
    """Rebuild the tables, figures and report of a results folder (or the report of an analyses workspace)."""
    from .studies import build_workspace_report
    from .studies import reproduce as reproduction

    folder = Path(args.folder)
    if (folder / "workspace.json").is_file():
        markdown = build_workspace_report(folder)
        _say(f"report: {markdown} and {markdown.with_suffix('.html')}")
        return 0
    _say_summary(reproduction.build_report(folder, extra_seeds=args.extra_seeds, log=_say), folder)
    return 0


def _say_summary(summary: dict, out: Path) -> None:
    for line in summary.get("headline", []):
        _say(line.replace("**", ""))
    if summary.get("spearman_grand_init_input_norm") is not None:
        _say(f"Spearman(GraNd@init, input norm) = {summary['spearman_grand_init_input_norm']:.3f}")
    _say(f"report: {out / 'report.md'} and {out / 'report.html'}")


def cmd_migrate(args: argparse.Namespace) -> int:
    """Carry the finished runs of a datadiet 0.1 results folder or workspace over to 0.2's run identity."""
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
    _say(f"  augmentation (the default recipe's; a preset may turn it off): "
         f"{describe_augmentation(TrainConfig(), splits.train.shape, user_data=splits.user_data)}")
    if splits.train.is_features:
        _say(f"  normalization per dimension: mean in [{min(splits.mean):.4g}, {max(splits.mean):.4g}], "
             f"std in [{min(splits.std):.4g}, {max(splits.std):.4g}]")
    else:
        _say(f"  normalization mean {tuple(round(m, 4) for m in splits.mean)} "
             f"std {tuple(round(s, 4) for s in splits.std)}")
    return 0


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
    from .studies import get_analysis, get_preset

    ws = Workspace(Path(args.out), **_execution(args).where(), log=_say)
    names = list(_lazy("MODULES")) if args.analysis == "all" else [args.analysis]
    for name in names:
        module = get_analysis(name)
        if args.analysis == "all" and args.preset not in module.PRESETS:
            _say(f"== {name} ({args.preset}): skipped, it has no {args.preset!r} preset "
                 f"(it has {', '.join(module.PRESETS)}) ==")
            continue
        config = _configured(get_preset(module, args.preset), module.Config, args)
        reason = module.missing_input(config) if hasattr(module, "missing_input") else None
        if args.analysis == "all" and reason:
            _say(f"== {name} ({args.preset}): skipped, {reason} ==")
            continue
        _say(f"== {name} ({args.preset}) ==")
        _check_own_data_fits(config.setting, ws.data_root)
        summary = _lazy("run_analysis")(name, config=config, workspace=ws)
        for line in summary.get("findings", []):
            _say(f"  - {line.replace('**', '')}")
    _say(f"report: {ws.root / 'report.md'} and {ws.root / 'report.html'}")
    return 0


def _configured(preset_config, cls: type, args: argparse.Namespace):
    """A study's preset config with the fields the user gave as flags, its setting's data and recipe included."""
    config = replace(preset_config, **given_arguments(cls, args, skip=("setting",)))
    return replace(config, setting=_setting_with(args, config.setting))


# Set by the command line, not per setting: where the data lies and which device (Execution), and the seed (each
# study derives its runs' seeds from the setting's).
SETTING_SKIP = {DataConfig: ("data_root",), TrainConfig: ("device", "seed")}


def _add_setting_overrides(p: argparse.ArgumentParser, set_per_point: tuple[str, ...] = ()) -> None:
    """Flags for the setting's data and recipe, except those a study's own config already has (its flag wins) and
    those the study sets per point itself (``set_per_point``)."""
    # argparse offers no public list of a parser's options; _actions is stable since Python 3.2.
    taken = {a.dest for a in p._actions} | {o for a in p._actions for o in a.option_strings}
    skips = {cls: tuple(f.name for f in fields(cls)
                        if f.name in skip or f.name in taken or f.name in set_per_point
                        or "--" + f.name.replace("_", "-") in taken)
             for cls, skip in SETTING_SKIP.items()}
    add_arguments(p, DataConfig, skip=skips[DataConfig],
                  title="data (default: the preset's; --dataset starts from the defaults: folder:PATH, arrays:FILE)")
    add_arguments(p, TrainConfig, skip=skips[TrainConfig], title="training recipe (default: the preset's)")
    p.set_defaults(setting_skips=skips)


def _setting_with(args: argparse.Namespace, setting):
    """``setting`` with the data and recipe flags the user gave. A new ``--dataset`` starts from the data
    defaults: the preset's subset of Fashion-MNIST means nothing for other data."""
    skips = getattr(args, "setting_skips", None)
    if skips is None:
        return setting
    data_given = given_arguments(DataConfig, args, skip=skips[DataConfig])
    train_given = given_arguments(TrainConfig, args, skip=skips[TrainConfig])
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
    from .runs.workspace import Execution

    return from_arguments(Execution, args)


# ----------------------------------------------------------------------------- the parser

def build_parser() -> argparse.ArgumentParser:
    """The whole command line: every command with all its flags (``main`` builds only the command it runs)."""
    return _parser()


ALL = None  # _parser(ALL): every command's flags
NONE = ""   # _parser(NONE): no command's flags (`datadiet --help`, `--version`, a mistyped command)


def _parser(command: str | None = ALL, analysis: str | None = None) -> argparse.ArgumentParser:
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
            add(p, analysis) if name == "analyze" else add(p)
    return parser


def _train_arguments(p: argparse.ArgumentParser) -> None:
    add_arguments(p, DataConfig)
    add_arguments(p, TrainConfig)
    p.add_argument("--out", help="folder for config.json, result.json and checkpoints")
    p.add_argument("--checkpoint-steps", type=int, nargs="+", help="save checkpoints after these steps (0 = init)")
    p.add_argument("--subset-file", help="train only on the examples of this `datadiet prune` manifest")


def _score_arguments(p: argparse.ArgumentParser) -> None:
    from .runs.scoring import ScoreConfig

    add_arguments(p, DataConfig)
    add_arguments(p, TrainConfig, skip=("seed",))  # run r uses ScoreConfig.seed + r
    add_arguments(p, ScoreConfig)
    _deprecated(p, "--score", "--scores", nargs="+")
    _deprecated(p, "--epoch", "--score-epochs", type=float, nargs="+")
    p.add_argument("--out", required=True, help="folder for the score files (.npz) and the run cache")


def _prune_arguments(p: argparse.ArgumentParser) -> None:
    from . import selection

    p.add_argument("--score-file", help="a score file (.npz) from `datadiet score`")
    _deprecated(p, "--scores", "--score-file")
    p.add_argument("--keep", type=float, required=True, help="fraction of examples kept, in (0, 1]")
    p.add_argument("--rule", choices=selection.RULES, default="window",
                   help="window (default: Data Diet's offset window), ccs (coverage-centric sampling) or moderate "
                   "(nearest the median)")
    p.add_argument("--offset", type=float, help="window: fraction of lowest scores dropped first (default: 1 - keep)")
    p.add_argument("--order", choices=("highest", "lowest"), help="window: keep the highest (default) or lowest")
    p.add_argument("--beta", type=float, help="ccs: fraction of the hardest examples dropped first (default: by "
                   "kept fraction, see selection.default_ccs_beta)")
    p.add_argument("--bins", type=int, help="ccs: equal-width score bins (default 50)")
    p.add_argument("--seed", type=int, help="ccs: seed of the sampling within bins (default 0)")
    p.add_argument("--tie-seed", type=int, help="every rule: seed of the order among equal scores (default 0; ties "
                   "are ordered by a seeded hash of the example id, never by id, so no class is favoured)")
    p.add_argument("--class-balanced", action="store_true", help="apply the rule within every class, each keeping "
                   "its share")
    p.add_argument("--dataset", help="where the scored data lies now, when it moved: folder:PATH or arrays:PATH "
                   "(default: the path the score file records, then its absolute path); checked by fingerprint")
    p.add_argument("--data-root", help="where the scored built-in dataset lies (default: $DATADIET_DATA, then system "
                   "locations); prune checks the score file against it")
    p.add_argument("--out", required=True, help="subset manifest to write (.json)")
    p.set_defaults(required_flags=("score_file",))


def _reproduce_arguments(p: argparse.ArgumentParser) -> None:
    from .runs.workspace import Execution
    from .studies import reproduce as reproduction

    p.add_argument("preset_positional", nargs="?", metavar="PRESET", help=argparse.SUPPRESS)
    p.add_argument("--preset", help=f"one of {', '.join(reproduction.PRESETS)} (default quick: CPU, ~20 min)")
    p.add_argument("--out", help="results folder (default results/PRESET); re-running resumes it")
    add_arguments(p, Execution, title="where runs execute")
    add_arguments(p, reproduction.Config, skip=("setting",), title="the grid (default: the preset's)")
    _add_setting_overrides(p)


def _report_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("folder", help="a results folder of `datadiet reproduce` or a workspace of `datadiet analyze`")
    p.add_argument("--extra-seeds", choices=("ignore", "include"), default="ignore",
                   help="runs of the same experiment with evaluation seeds beyond its plan (left by an earlier, "
                   "larger --eval-seeds): left out (default) or averaged in")


def _migrate_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("folder", help="a results folder of `datadiet reproduce` or a workspace of `datadiet analyze`")


def _data_arguments(p: argparse.ArgumentParser) -> None:
    add_arguments(p, DataConfig)


def _download_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("name", help="fashion-mnist, mnist, cifar10, cifar100 or cinic10")
    p.add_argument("--data-root", required=True, help="folder to download into")


# Old flags of single analyses, kept for one release: analysis → [(old flag, new flag, argparse options)].
DEPRECATED_ANALYSIS_FLAGS = {
    "kernel_velocity": [("--epochs", "--velocity-epochs", {"type": float, "nargs": "+"})],
    "mode_connectivity": [("--subset-size", "--eval-set-size", {"type": int})],
}


def _add_analyze_parsers(p: argparse.ArgumentParser, only: str | None = None) -> None:
    """One sub-command per analysis; with ``only`` (an analysis name), the others without their flags."""
    from .runs.presets import PRESETS as SETTINGS
    from .runs.workspace import Execution
    from .studies import MODULES, get_analysis

    sub = p.add_subparsers(dest="analysis", required=True, metavar="ANALYSIS")
    full = only not in ("all", *MODULES)  # a name we do not know: every analysis, so argparse can list them
    for name in ("all", *MODULES):
        if not (full or name == only):
            sub.add_parser(name, allow_abbrev=False)  # not run: no flags to build, no module to import
            continue
        module = get_analysis(name) if name != "all" else None
        doc = module.__doc__ if module else "Every analysis that needs no extra input, one after another."
        q = _subcommand(sub, name, cmd_analyze, doc)
        q.add_argument("--preset", default="quick", help=f"one of {', '.join(SETTINGS)} where the analysis has it "
                       "(smoke: seconds; quick: CPU, <= 15 min; paper: GPUs)")
        q.add_argument("--out", default="results/analyses", help="workspace folder (default results/analyses)")
        add_arguments(q, Execution, title="where runs execute")
        if module is not None:
            add_arguments(q, module.Config, skip=("setting",), title=f"{name} options (default: the preset's)")
            for old, new, options in DEPRECATED_ANALYSIS_FLAGS.get(name, []):
                _deprecated(q, old, new, **options)
            _add_setting_overrides(q, getattr(module, "SET_PER_POINT", ()))


def _subcommand(sub, name: str, fn: Callable[[argparse.Namespace], int] | None, doc: str | None = None
                ) -> argparse.ArgumentParser:
    doc = doc or fn.__doc__
    p = sub.add_parser(name, help=doc.splitlines()[0], description=doc, allow_abbrev=False)
    p.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                   help="show full tracebacks (also: DATADIET_DEBUG=1)")
    if fn is not None:
        p.set_defaults(func=fn)
    return p


class _DeprecatedFlag(argparse.Action):
    """Stores into the new flag's destination and says once that the old spelling goes away."""

    def __init__(self, option_strings, dest, new_flag: str, **kwargs):
        self.new_flag = new_flag
        super().__init__(option_strings, dest, **kwargs)

    def __call__(self, parser, namespace, values, option_string=None):
        _deprecation(option_string, self.new_flag)
        setattr(namespace, self.dest, values)


def _deprecated(parser: argparse.ArgumentParser, old: str, new: str, **kwargs) -> None:
    parser.add_argument(old, dest=new.lstrip("-").replace("-", "_"), action=_DeprecatedFlag, new_flag=new,
                        help=argparse.SUPPRESS, **kwargs)


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
def _parser_for(command: str, analysis: str | None) -> argparse.ArgumentParser:
    return _parser(command, analysis)


def _wanted(argv: Sequence[str]) -> tuple[str, str | None]:
    """The command (and analysis) that ``argv`` runs: its first words, since datadiet's own options (--debug,
    --version, --help) take no value; ``NONE`` when it names no command."""
    words = [a for a in argv if not a.startswith("-")]
    command = words[0] if words and words[0] in COMMANDS else NONE
    return command, (words[1] if command == "analyze" and len(words) > 1 else None)


def main(argv: Sequence[str] | None = None) -> int:
    argv = [str(a) for a in (sys.argv[1:] if argv is None else argv)]
    parser = _parser_for(*_wanted(argv))
    args = parser.parse_args(argv)
    for name in getattr(args, "required_flags", ()):
        if getattr(args, name, None) is None:
            parser.error(f"the following arguments are required: --{name.replace('_', '-')}")
    try:
        return args.func(args)
    except KeyboardInterrupt:
        print("datadiet: interrupted; finished results are on disk and a re-run resumes.", file=sys.stderr)
        return 130
    except Exception as exc:  # noqa: BLE001 - turned into one paragraph; --debug shows the traceback
        if args.debug or os.environ.get("DATADIET_DEBUG", "") not in ("", "0"):
            raise
        message, status = explain(exc)
        print(textwrap.fill(f"datadiet: error: {message}", width=100, break_long_words=False,
                            break_on_hyphens=False), file=sys.stderr)
        return status


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
