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
import os
import sys
import textwrap
from dataclasses import fields, replace
from pathlib import Path
from typing import Callable, Sequence

import torch

from .version import __version__
from .config import DataConfig, TrainConfig, add_arguments, from_arguments, from_dict, given_arguments, to_dict
from .data import load_data
from .data.download import download
from .data.registry import locate
from .errors import DataDietError, NonFiniteLossError, unknown_name
from .io import folder_lock, write_json_atomic
from .manifest import load_subset, save_subset
from .models import model_factory
from .runs.migrate import migrate
from .runs.presets import PRESETS as SETTINGS
from .runs.scoring import ScoreConfig, run_scores
from .runs.workspace import Execution, Workspace
from .scores import load_scores
from .selection import RULES, select
from .studies import MODULES, available, build_workspace_report, get_analysis, get_preset, run_analysis
from .studies import reproduce as reproduction
from .training import train


def cmd_train(args: argparse.Namespace) -> int:
    """Train one model and report its final-step test accuracy."""
    data_cfg = from_arguments(DataConfig, args)
    train_cfg = from_arguments(TrainConfig, args)
    splits = load_data(data_cfg)
    _say(f"{splits.name}: {len(splits.train)} train / {len(splits.test)} test examples, "
         f"fingerprint {splits.train.fingerprint}; model {train_cfg.model} (width {train_cfg.width}), "
         f"{torch.get_num_threads()} threads")
    out = Path(args.out) if args.out else None
    record = {"version": __version__, "data": to_dict(data_cfg), "train": to_dict(train_cfg),
              "dataset": splits.train.describe(), "test_dataset": splits.test.describe()}
    model_factory(train_cfg.model)  # an unknown model is refused before anything is written
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
    _say(f"done: {result.steps} steps ({result.epochs_seen:.2f} epochs) in {result.wall_seconds:.1f}s; "
         f"final test accuracy {result.test_accuracy:.4f}" + (f"; results in {out}" if out else ""))
    return 0


def _train_into(out: Path, train_cfg: TrainConfig, splits, positions, checkpoint_steps):
    """Train with checkpoints in ``out``; if training diverges, say what the folder keeps."""
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
    data_cfg = from_arguments(DataConfig, args)
    train_cfg = from_arguments(TrainConfig, args)
    score_cfg = from_arguments(ScoreConfig, args)
    splits = load_data(data_cfg)
    _say(f"scoring {len(splits.train)} examples of {splits.name} with {score_cfg.runs} runs of {train_cfg.model}: "
         f"{', '.join(score_cfg.scores)} at epochs {', '.join(f'{e:g}' for e in score_cfg.score_epochs)}")
    for path in run_scores(score_cfg, train_cfg, data_cfg, splits, args.out, log=_say):
        _say(f"wrote {path}")
    return 0


def cmd_prune(args: argparse.Namespace) -> int:
    """Select a subset from a score file and write a subset manifest.

    Rules: ``window`` (Data Diet B.3: the highest scores, or an offset window), ``ccs`` (coverage-centric
    stratified sampling, Zheng et al. 2023) and ``moderate`` (the scores nearest the median, Xia et al. 2023)."""
    table = load_scores(args.score_file)
    train_set = load_data(_scored_data(table, args)).train
    table.check_dataset(train_set)  # a score file of other data is refused here, not later at `train`
    labels = train_set.labels.numpy() if args.class_balanced else None
    options = _rule_options(args)
    ids = select(table, keep=args.keep, labels=labels, class_balanced=args.class_balanced, rule=args.rule, **options)
    selection = {"scores": str(args.score_file), "score": table.label, "keep": args.keep, "rule": args.rule,
                 **options, "class_balanced": args.class_balanced,
                 "scores_fingerprint": table.meta.get("dataset", {}).get("fingerprint")}
    save_subset(args.out, ids, table.meta["dataset"], selection)
    _say(f"kept {len(ids)} of {len(table.ids)} examples by {table.label} ({args.rule} rule, keep {args.keep:g}"
         + "".join(f", {k} {v:g}" if isinstance(v, float) else f", {k} {v}" for k, v in options.items())
         + f"); wrote {args.out}")
    return 0


def _rule_options(args: argparse.Namespace) -> dict:
    """The options of the chosen rule that the user gave (select() refuses those that mean nothing to it)."""
    given = {"offset": args.offset, "order": args.order, "beta": args.beta, "bins": args.bins, "seed": args.seed}
    return {k: v for k, v in given.items() if v is not None}


def _scored_data(table, args: argparse.Namespace) -> DataConfig:
    """The data a score file was computed on (its recorded config), found under ``--data-root`` if given."""
    data = from_dict(DataConfig, table.meta.get("data", {}))
    recorded = data.data_root if data.data_root and Path(data.data_root).is_dir() else None  # scored elsewhere?
    return replace(data, data_root=args.data_root or recorded)


def cmd_reproduce(args: argparse.Namespace) -> int:
    """Reproduce Kirsch (2023) Figs. 1-3 / Data Diet Fig. 1: score, prune, retrain, test against random, report."""
    preset = _preset_name(args)
    if preset not in reproduction.PRESETS:
        raise unknown_name("preset", preset, tuple(reproduction.PRESETS))
    config = _configured(reproduction.PRESETS[preset], reproduction.Config, args)
    out = Path(args.out or f"results/{preset}")
    summary = reproduction.reproduce(config, out, **_execution(args).where(), log=_say)
    _say_summary(summary, out)
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
    """Rebuild the tables, figures and report of a results folder (or the report of an analyses workspace)."""
    folder = Path(args.folder)
    if (folder / "workspace.json").is_file():
        _say(f"report: {build_workspace_report(folder)}")
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
    migrate(args.folder, log=_say)
    return 0


def cmd_data(args: argparse.Namespace) -> int:
    """Show where a dataset was found, its sizes and fingerprints."""
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
            _say(f"  cache: {source['cache']} ({'reused' if source['cache_hit'] else 'written now'})")
        if source.get("ignored_count"):
            more = " ..." if source["ignored_count"] > len(source["ignored"]) else ""
            _say(f"  ignored (not images, or outside class folders): {source['ignored_count']}: "
                 f"{', '.join(source['ignored'])}{more}")
    for ds in (splits.train, splits.test):
        _say(f"  {ds.split}: {len(ds)} examples of shape {ds.shape}, {ds.num_classes} classes, "
             f"fingerprint {ds.fingerprint}")
    if splits.train.is_features:
        _say(f"  normalization per dimension: mean in [{min(splits.mean):.4g}, {max(splits.mean):.4g}], "
             f"std in [{min(splits.std):.4g}, {max(splits.std):.4g}]")
    else:
        _say(f"  normalization mean {tuple(round(m, 4) for m in splits.mean)} "
             f"std {tuple(round(s, 4) for s in splits.std)}")
    return 0


def cmd_download(args: argparse.Namespace) -> int:
    """Download a dataset with checksum verification (needs internet)."""
    folder = download(args.name, args.data_root)
    _say(f"{args.name} is ready in {folder}")
    return 0


ANALYZE_DOC = """Run the analyses of both papers (one sub-command each; `all` runs every one that needs no input).

Every analysis writes tables, figures and a report section into one workspace (default results/analyses),
reuses score runs and evaluation runs already there, and resumes when re-run."""


def cmd_analyze(args: argparse.Namespace) -> int:
    """Run one analysis (or all) and rebuild the workspace report."""
    ws = Workspace(Path(args.out), **_execution(args).where(), log=_say)
    names = list(MODULES) if args.analysis == "all" else [args.analysis]
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
        summary = run_analysis(name, config=config, workspace=ws)
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
    if not data_given and not train_given:
        return setting
    data = DataConfig(**data_given) if "dataset" in data_given else replace(setting.data, **data_given)
    title = (f"{data.dataset}, the {setting.name} preset's recipe" if "dataset" in data_given else setting.title) \
        + (" (recipe changed)" if train_given else "")
    return replace(setting, data=data, train=replace(setting.train, **train_given), title=title)


def _execution(args: argparse.Namespace) -> Execution:
    return from_arguments(Execution, args)


# ----------------------------------------------------------------------------- the parser

def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="datadiet", description=__doc__.splitlines()[0],
                                     allow_abbrev=False)  # generated flags share prefixes: --epochs is not --epochs-per-size
    parser.add_argument("--version", action="version", version=f"datadiet {__version__}")
    parser.add_argument("--debug", action="store_true", help="show full tracebacks (also: DATADIET_DEBUG=1)")
    sub = parser.add_subparsers(dest="command", required=True)

    p = _subcommand(sub, "train", cmd_train)
    add_arguments(p, DataConfig)
    add_arguments(p, TrainConfig)
    p.add_argument("--out", help="folder for config.json, result.json and checkpoints")
    p.add_argument("--checkpoint-steps", type=int, nargs="+", help="save checkpoints after these steps (0 = init)")
    p.add_argument("--subset-file", help="train only on the examples of this `datadiet prune` manifest")

    p = _subcommand(sub, "score", cmd_score)
    add_arguments(p, DataConfig)
    add_arguments(p, TrainConfig, skip=("seed",))  # run r uses ScoreConfig.seed + r
    add_arguments(p, ScoreConfig)
    _deprecated(p, "--score", "--scores", nargs="+")
    _deprecated(p, "--epoch", "--score-epochs", type=float, nargs="+")
    p.add_argument("--out", required=True, help="folder for the score files (.npz) and the run cache")

    p = _subcommand(sub, "prune", cmd_prune)
    p.add_argument("--score-file", help="a score file (.npz) from `datadiet score`")
    _deprecated(p, "--scores", "--score-file")
    p.add_argument("--keep", type=float, required=True, help="fraction of examples kept, in (0, 1]")
    p.add_argument("--rule", choices=RULES, default="window",
                   help="window (default: Data Diet's offset window), ccs (coverage-centric sampling) or moderate "
                   "(nearest the median)")
    p.add_argument("--offset", type=float, help="window: fraction of lowest scores dropped first (default: 1 - keep)")
    p.add_argument("--order", choices=("highest", "lowest"), help="window: keep the highest (default) or lowest")
    p.add_argument("--beta", type=float, help="ccs: fraction of the hardest examples dropped first (default: by "
                   "kept fraction, see selection.default_ccs_beta)")
    p.add_argument("--bins", type=int, help="ccs: equal-width score bins (default 50)")
    p.add_argument("--seed", type=int, help="ccs: seed of the sampling within bins (default 0)")
    p.add_argument("--class-balanced", action="store_true", help="apply the window within every class")
    p.add_argument("--data-root", help="where the scored dataset lies (default: $DATADIET_DATA, then system "
                   "locations); prune checks the score file against it")
    p.add_argument("--out", required=True, help="subset manifest to write (.json)")
    p.set_defaults(required_flags=("score_file",))

    p = _subcommand(sub, "reproduce", cmd_reproduce)
    p.add_argument("preset_positional", nargs="?", metavar="PRESET", help=argparse.SUPPRESS)
    p.add_argument("--preset", help=f"one of {', '.join(reproduction.PRESETS)} (default quick: CPU, ~12 min)")
    p.add_argument("--out", help="results folder (default results/PRESET); re-running resumes it")
    add_arguments(p, Execution, title="where runs execute")
    add_arguments(p, reproduction.Config, skip=("setting",), title="the grid (default: the preset's)")
    _add_setting_overrides(p)

    _add_analyze_parsers(_subcommand(sub, "analyze", None, ANALYZE_DOC))

    p = _subcommand(sub, "report", cmd_report)
    p.add_argument("folder", help="a results folder of `datadiet reproduce` or a workspace of `datadiet analyze`")
    p.add_argument("--extra-seeds", choices=("ignore", "include"), default="ignore",
                   help="runs of the same experiment with evaluation seeds beyond its plan (left by an earlier, "
                   "larger --eval-seeds): left out (default) or averaged in")

    p = _subcommand(sub, "migrate", cmd_migrate)
    p.add_argument("folder", help="a results folder of `datadiet reproduce` or a workspace of `datadiet analyze`")

    p = _subcommand(sub, "data", cmd_data)
    add_arguments(p, DataConfig)

    p = _subcommand(sub, "download", cmd_download)
    p.add_argument("name", help="fashion-mnist, mnist, cifar10, cifar100 or cinic10")
    p.add_argument("--data-root", required=True, help="folder to download into")
    return parser


# Old flags of single analyses, kept for one release: analysis → [(old flag, new flag, argparse options)].
DEPRECATED_ANALYSIS_FLAGS = {
    "kernel_velocity": [("--epochs", "--velocity-epochs", {"type": float, "nargs": "+"})],
    "mode_connectivity": [("--subset-size", "--eval-set-size", {"type": int})],
}


def _add_analyze_parsers(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="analysis", required=True, metavar="ANALYSIS")
    for name, module in [("all", None), *available().items()]:
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


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
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
        return ("out of memory. Use a smaller --batch-size or --score-batch-size, a smaller model (--width), or "
                "fewer --workers."), 2
    return (f"unexpected {type(exc).__name__}: {exc}. This is a bug in datadiet: re-run with --debug for the "
            "traceback and report it."), 1


def _say(message: str) -> None:
    print(message, flush=True)
