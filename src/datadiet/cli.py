"""The ``datadiet`` command.  Flags are generated from the config dataclasses.

Every :class:`~datadiet.errors.DataDietError` is printed as one paragraph and
exits with status 2; a traceback means a bug in datadiet.
"""
from __future__ import annotations

import argparse
import sys
import textwrap
from dataclasses import replace
from pathlib import Path
from typing import Callable, Sequence

from . import __version__
from .config import DataConfig, ScoreConfig, TrainConfig, add_arguments, from_arguments, to_dict
from .errors import DataDietError
from .io import write_json_atomic


def cmd_train(args: argparse.Namespace) -> int:
    """Train one model and report its final-step test accuracy."""
    import torch

    from .data import load_data
    from .training import train

    data_cfg = from_arguments(DataConfig, args)
    train_cfg = from_arguments(TrainConfig, args)
    splits = load_data(data_cfg)
    _say(f"{splits.name}: {len(splits.train)} train / {len(splits.test)} test examples, "
         f"fingerprint {splits.train.fingerprint}; model {train_cfg.model} (width {train_cfg.width}), "
         f"{torch.get_num_threads()} threads")
    out = Path(args.out) if args.out else None
    record = {"version": __version__, "data": to_dict(data_cfg), "train": to_dict(train_cfg),
              "dataset": splits.train.describe(), "test_dataset": splits.test.describe()}
    if out:
        write_json_atomic(out / "config.json", record)
    positions = None
    if args.subset_file:
        from .manifest import load_subset

        positions = load_subset(args.subset_file, splits.train)
        record["subset_file"] = str(args.subset_file)
        _say(f"training on {len(positions)} of {len(splits.train)} examples from {args.subset_file}")
    result = train(train_cfg, splits, positions=positions, checkpoint_dir=out / "checkpoints" if out else None,
                   checkpoint_steps=args.checkpoint_steps or ())
    summary = result.summary()
    if out:
        write_json_atomic(out / "result.json", {**record, "result": summary})
    _say(f"done: {result.steps} steps ({result.epochs_seen:.2f} epochs) in {result.wall_seconds:.1f}s; "
         f"final test accuracy {result.test_accuracy:.4f}" + (f"; results in {out}" if out else ""))
    return 0


def cmd_score(args: argparse.Namespace) -> int:
    """Score every training example, averaged over independently seeded runs."""
    from .data import load_data
    from .scores.runs import run_scores

    data_cfg = from_arguments(DataConfig, args)
    train_cfg = from_arguments(TrainConfig, args)
    score_cfg = from_arguments(ScoreConfig, args)
    splits = load_data(data_cfg)
    _say(f"scoring {len(splits.train)} examples of {splits.name} with {score_cfg.runs} runs of {train_cfg.model}: "
         f"{', '.join(score_cfg.score)} at epochs {', '.join(f'{e:g}' for e in score_cfg.epoch)}")
    for path in run_scores(score_cfg, train_cfg, data_cfg, splits, args.out, log=_say):
        _say(f"wrote {path}")
    return 0


def cmd_prune(args: argparse.Namespace) -> int:
    """Select a subset from a score file (Data Diet B.3 offset window) and write a subset manifest."""
    from .config import from_dict
    from .manifest import save_subset
    from .scores import load_scores
    from .selection import select

    table = load_scores(args.scores)
    labels = None
    if args.class_balanced:
        from .data import load_data

        train_set = load_data(from_dict(DataConfig, table.meta.get("data", {}))).train
        table.check_dataset(train_set)
        labels = train_set.labels.numpy()
    ids = select(table, keep=args.keep, offset=args.offset, order=args.order, labels=labels,
                 class_balanced=args.class_balanced)
    selection = {"scores": str(args.scores), "score": table.label, "keep": args.keep, "offset": args.offset,
                 "order": args.order, "class_balanced": args.class_balanced,
                 "scores_fingerprint": table.meta.get("dataset", {}).get("fingerprint")}
    save_subset(args.out, ids, table.meta["dataset"], selection)
    _say(f"kept {len(ids)} of {len(table.ids)} examples by {table.label} (keep {args.keep}, "
         f"offset {args.offset if args.offset is not None else 1 - args.keep if args.order == 'highest' else 0:g}); "
         f"wrote {args.out}")
    return 0


def cmd_reproduce(args: argparse.Namespace) -> int:
    """Reproduce Kirsch (2023) Figs. 1-3 / Data Diet Fig. 1: score, prune, retrain, test against random, report."""
    from .experiments.reproduce import get_preset, reproduce

    preset = _with_overrides(get_preset(args.preset), args)
    out = Path(args.out or f"results/{preset.name}")
    summary = reproduce(preset, out, data_root=args.data_root, device=args.device, executor=args.executor,
                        address=args.address, cpus=args.cpus_per_run, gpus=args.gpus_per_run, log=_say)
    _say_summary(summary, out)
    return 0


def _with_overrides(preset, args: argparse.Namespace):
    """The preset with the grid options the user gave (kept fractions, offsets, seeds, score runs)."""
    changes = {"keeps": args.keeps and tuple(args.keeps), "offsets": args.offsets and tuple(args.offsets),
               "eval_seeds": args.eval_seeds, "score_runs": args.score_runs}
    changes = {k: v for k, v in changes.items() if v is not None}
    if any(not 0 < k <= 1 for k in changes.get("keeps", ())):
        raise DataDietError(f"--keeps takes fractions in (0, 1]; got {list(changes['keeps'])}.")
    if any(not 0 <= o < 1 for o in changes.get("offsets", ())):
        raise DataDietError(f"--offsets takes fractions in [0, 1); got {list(changes['offsets'])}.")
    for name in ("eval_seeds", "score_runs"):
        if changes.get(name, 1) < 1:
            raise DataDietError(f"--{name.replace('_', '-')} must be at least 1; got {changes[name]}.")
    return replace(preset, **changes)


def cmd_report(args: argparse.Namespace) -> int:
    """Rebuild the tables, figures and report of a results folder (or the report of an analyses workspace)."""
    from .analysis.report import build_analyses_report, build_report

    folder = Path(args.folder)
    if (folder / "workspace.json").is_file():
        _say(f"report: {build_analyses_report(folder)}")
        return 0
    _say_summary(build_report(folder), folder)
    return 0


def _say_summary(summary: dict, out: Path) -> None:
    beat = summary["beat_random"]
    _say(f"beat random (95% CI above zero at some fraction, never worse): {', '.join(beat) if beat else 'none'}")
    if summary.get("spearman_grand_init_input_norm") is not None:
        _say(f"Spearman(GraNd@init, input norm) = {summary['spearman_grand_init_input_norm']:.3f}")
    _say(f"report: {out / 'report.md'} and {out / 'report.html'}")


def cmd_data(args: argparse.Namespace) -> int:
    """Show where a dataset was found, its sizes and fingerprints."""
    from .data import load_data
    from .data.registry import locate

    data_cfg = from_arguments(DataConfig, args)
    folder = locate(data_cfg.dataset, data_cfg.data_root)
    splits = load_data(data_cfg)
    _say(f"{data_cfg.dataset} in {folder}")
    for ds in (splits.train, splits.test):
        _say(f"  {ds.split}: {len(ds)} examples of shape {ds.shape}, {ds.num_classes} classes, "
             f"fingerprint {ds.fingerprint}")
    _say(f"  normalization mean {tuple(round(m, 4) for m in splits.mean)} std {tuple(round(s, 4) for s in splits.std)}")
    return 0


def cmd_download(args: argparse.Namespace) -> int:
    """Download a dataset with checksum verification (needs internet)."""
    from .data.download import download

    folder = download(args.name, args.data_root)
    _say(f"{args.name} is ready in {folder}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="datadiet", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"datadiet {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    p = _subcommand(sub, "train", cmd_train)
    add_arguments(p, DataConfig)
    add_arguments(p, TrainConfig)
    p.add_argument("--out", help="folder for config.json, result.json and checkpoints")
    p.add_argument("--checkpoint-steps", type=int, nargs="*", help="save checkpoints after these steps (0 = init)")
    p.add_argument("--subset-file", help="train only on the examples of this `datadiet prune` manifest")

    p = _subcommand(sub, "score", cmd_score)
    add_arguments(p, DataConfig)
    add_arguments(p, TrainConfig, skip=("seed",))  # run r uses ScoreConfig.seed + r
    add_arguments(p, ScoreConfig)
    p.add_argument("--out", required=True, help="folder for the score files (.npz) and the run cache")

    p = _subcommand(sub, "prune", cmd_prune)
    p.add_argument("--scores", required=True, help="a score file (.npz) from `datadiet score`")
    p.add_argument("--keep", type=float, required=True, help="fraction of examples kept, in (0, 1]")
    p.add_argument("--offset", type=float, help="fraction of lowest scores dropped first (default: 1 - keep)")
    p.add_argument("--order", choices=("highest", "lowest"), default="highest", help="keep the highest (default) or lowest")
    p.add_argument("--class-balanced", action="store_true", help="apply the window within every class")
    p.add_argument("--out", required=True, help="subset manifest to write (.json)")

    p = _subcommand(sub, "reproduce", cmd_reproduce)
    p.add_argument("preset", help="smoke, quick (CPU, ~15 min), gpu (one GPU) or paper (CIFAR-10, GPUs)")
    p.add_argument("--out", help="results folder (default results/PRESET); re-running resumes it")
    _add_where_options(p)
    p.add_argument("--keeps", type=float, nargs="+", help="kept fractions (default: the preset's)")
    p.add_argument("--offsets", type=float, nargs="+",
                   help="also sweep these B.3 offsets at every kept fraction (drop the lowest OFFSET first)")
    p.add_argument("--eval-seeds", type=int, help="evaluation runs per point (default: the preset's)")
    p.add_argument("--score-runs", type=int, help="independent scoring runs averaged (default: the preset's)")

    _add_analyze_parsers(_subcommand(sub, "analyze", None))

    p = _subcommand(sub, "report", cmd_report)
    p.add_argument("folder", help="a results folder of `datadiet reproduce` or a workspace of `datadiet analyze`")

    p = _subcommand(sub, "data", cmd_data)
    add_arguments(p, DataConfig)

    p = _subcommand(sub, "download", cmd_download)
    p.add_argument("name", help="fashion-mnist, mnist, cifar10, cifar100 or cinic10")
    p.add_argument("--data-root", required=True, help="folder to download into")
    return parser


def _subcommand(sub, name: str, fn: Callable[[argparse.Namespace], int] | None, doc: str | None = None
                ) -> argparse.ArgumentParser:
    doc = doc or (fn.__doc__ if fn else ANALYZE_DOC)
    p = sub.add_parser(name, help=doc.splitlines()[0], description=doc)
    if fn is not None:
        p.set_defaults(func=fn)
    return p


def _add_where_options(p: argparse.ArgumentParser) -> None:
    """Where the data lies and where runs execute: shared by reproduce and analyze."""
    p.add_argument("--data-root", help="dataset folder (default: $DATADIET_DATA, then system locations)")
    p.add_argument("--device", help="cpu, cuda, cuda:1 ... (default: auto)")
    p.add_argument("--executor", choices=("local", "ray"), default="local", help="where evaluation runs execute")
    p.add_argument("--address", help="Ray cluster address (default: start a local Ray instance)")
    p.add_argument("--cpus-per-run", type=float, default=1, help="Ray: CPUs requested per run")
    p.add_argument("--gpus-per-run", type=float, default=0, help="Ray: GPUs requested per run (e.g. 0.25)")


ANALYZE_DOC = """Run the analyses of both papers (one sub-command each; `all` runs every one that needs no input).

Every analysis writes tables, figures and a report section into one workspace (default results/analyses),
reuses score runs and evaluation runs already there, and resumes when re-run."""


def _add_analyze_parsers(p: argparse.ArgumentParser) -> None:
    from .experiments.analyses import available

    sub = p.add_subparsers(dest="analysis", required=True, metavar="ANALYSIS")
    modules = available()
    for name, module in [("all", None), *modules.items()]:
        doc = module.__doc__ if module else "Every analysis that needs no extra input, one after another."
        q = _subcommand(sub, name, cmd_analyze, doc)
        q.add_argument("--preset", default="quick", help="smoke (seconds), quick (CPU, <= 15 min) or paper")
        q.add_argument("--out", default="results/analyses", help="workspace folder (default results/analyses)")
        _add_where_options(q)
        if module is not None and hasattr(module, "add_options"):
            module.add_options(q)


def cmd_analyze(args: argparse.Namespace) -> int:
    """Run one analysis (or all) and rebuild the workspace report."""
    from .experiments.analyses import Workspace, available, get_preset, run_analysis

    ws = Workspace(Path(args.out), data_root=args.data_root, device=args.device, executor=args.executor,
                   address=args.address, cpus=args.cpus_per_run, gpus=args.gpus_per_run, log=_say)
    modules = available()
    names = list(modules) if args.analysis == "all" else [args.analysis]
    for name in names:
        module = modules[name]
        config = get_preset(module, args.preset)
        if hasattr(module, "configure"):
            config = module.configure(config, args)
        if args.analysis == "all" and hasattr(module, "missing_input") and module.missing_input(config):
            _say(f"== {name} ({args.preset}): skipped, {module.missing_input(config)} ==")
            continue
        _say(f"== {name} ({args.preset}) ==")
        summary = run_analysis(name, config=config, workspace=ws)
        for line in summary.get("findings", []):
            _say(f"  - {line.replace('**', '')}")
    _say(f"report: {ws.root / 'report.md'} and {ws.root / 'report.html'}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except DataDietError as exc:
        print(textwrap.fill(f"datadiet: error: {exc}", width=100, break_long_words=False,
                            break_on_hyphens=False), file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("datadiet: interrupted; finished results are on disk and a re-run resumes.", file=sys.stderr)
        return 130


def _say(message: str) -> None:
    print(message, flush=True)
