"""Figures, drawn only from the tidy tables of :mod:`datadiet.report.tables`.

Differences with intervals (:func:`difference_points`) draw an interval only where the comparison has one worth
showing; a comparison of fewer than 3 runs a side is a hollow point without a bar, and the axis follows the means
and the informative intervals (:func:`difference_limits`), never the ±400 points of a two-seed Welch interval.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from ..io import atomic_path


def pyplot():
    import matplotlib

    matplotlib.use("Agg")  # files only; never needs a display
    import matplotlib.pyplot as plt

    return plt


def save(fig, path: str | Path) -> Path:
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=130, bbox_inches="tight", format=path.suffix.lstrip(".") or "png")
    pyplot().close(fig)
    return path


def pruning_curve(curve: Sequence[dict], path: str | Path, *, title: str = "") -> Path:
    """Final test accuracy against fraction kept: mean line, 16th–84th percentile band per method,
    and the full-data result as a dashed line with its band."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.5))
    curve = [r for r in curve if r.get("offset") is None]  # explicit offset windows: see offset_curve
    methods = sorted({r["method"] for r in curve if r["method"] != "full"}, key=lambda m: (m != "random", m))
    colors = plt.get_cmap("tab10")
    for i, method in enumerate(methods):
        rows = sorted((r for r in curve if r["method"] == method), key=lambda r: r["keep"])
        x = [r["keep"] for r in rows]
        style = dict(color="black", linestyle="--") if method == "random" else dict(color=colors(i % 10))
        ax.plot(x, [r["mean"] for r in rows], marker="o", markersize=3, label=method, **style)
        ax.fill_between(x, [r["p16"] for r in rows], [r["p84"] for r in rows], alpha=0.15, color=style["color"])
    for r in (r for r in curve if r["method"] == "full"):
        ax.axhline(r["mean"], color="purple", linestyle=":", label="full data")
        ax.axhspan(r["p16"], r["p84"], color="purple", alpha=0.08)
    ax.set_xlabel("fraction of training data kept")
    ax.set_ylabel("final test accuracy")
    ax.set_title(title or "Pruning curves (mean, 16th–84th percentile)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    return save(fig, path)


def offset_curve(curve: Sequence[dict], path: str | Path, *, title: str = "") -> Path:
    """Accuracy against the offset (fraction of lowest scores dropped first) at each fixed kept fraction,
    as in Data Diet Fig. 3: one panel per kept fraction, random and full data as horizontal lines."""
    plt = pyplot()
    keeps = sorted({r["keep"] for r in curve if r.get("offset") is not None})
    fig, axes = plt.subplots(1, len(keeps), figsize=(5 * len(keeps), 4), squeeze=False)
    for ax, keep in zip(axes[0], keeps):
        offset_panel(ax, curve, keep)
    axes[0][0].set_ylabel("final test accuracy")
    axes[0][-1].legend(fontsize=8)
    if title:
        fig.suptitle(title)
    return save(fig, path)


def offset_panel(ax, curve: Sequence[dict], keep: float, *, methods: Sequence[str] | None = None,
                 random_band: bool = False) -> None:
    """One kept fraction of :func:`offset_curve` on ``ax``: each method's mean line and 16th–84th percentile band
    against the offset (``methods``: all swept ones), random (with its band if ``random_band``) and full data."""
    colors = pyplot().get_cmap("tab10")
    methods = methods or sorted({r["method"] for r in curve if r.get("offset") is not None})
    for i, method in enumerate(methods):
        # the keep-highest window is the offset-(1 − keep) point of the same sweep
        rows = sorted(({**r, "offset": 1 - keep if r.get("offset") is None else r["offset"]}
                       for r in curve if r["method"] == method and r["keep"] == keep),
                      key=lambda r: r["offset"])
        x = [r["offset"] for r in rows]
        ax.plot(x, [r["mean"] for r in rows], marker="o", markersize=3, color=colors(i % 10), label=method)
        ax.fill_between(x, [r["p16"] for r in rows], [r["p84"] for r in rows], alpha=0.15, color=colors(i % 10))
    for r in curve:
        if r["method"] == "random" and r["keep"] == keep:
            ax.axhline(r["mean"], color="black", linestyle="--", label="random")
            if random_band:
                ax.axhspan(r["p16"], r["p84"], color="black", alpha=0.06)
        if r["method"] == "full":
            ax.axhline(r["mean"], color="purple", linestyle=":", label="full data")
    ax.set_xlabel("offset (fraction of lowest scores dropped)")
    ax.set_title(f"keep {keep:g}")
    ax.grid(alpha=0.3)


def correlation_heatmap(names: Sequence[str], rho: np.ndarray, path: str | Path, *, title: str = "") -> Path:
    """Spearman rank-correlation matrix with the values written in the cells."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(1.0 + 0.75 * len(names), 0.8 + 0.65 * len(names)))
    image = ax.imshow(rho, vmin=-1, vmax=1, cmap="RdBu_r")
    ax.set_xticks(range(len(names)), names, rotation=45, ha="right", fontsize=8)
    ax.set_yticks(range(len(names)), names, fontsize=8)
    for i in range(len(names)):
        for j in range(len(names)):
            ax.text(j, i, f"{rho[i, j]:.2f}", ha="center", va="center", fontsize=7,
                    color="white" if abs(rho[i, j]) > 0.6 else "black")
    fig.colorbar(image, ax=ax, shrink=0.8, label="Spearman ρ")
    ax.set_title(title or "Rank correlations of the scores")
    return save(fig, path)


def score_scatter(x: np.ndarray, y: np.ndarray, path: str | Path, *, xlabel: str, ylabel: str, rho: float,
                  max_points: int = 20000) -> Path:
    """Scatter of two scores over examples, annotated with their Spearman correlation."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(5, 4.5))
    if len(x) > max_points:  # a subsample keeps the file small; rho is computed on all points
        pick = np.random.default_rng(0).choice(len(x), max_points, replace=False)
        x, y = x[pick], y[pick]
    ax.scatter(x, y, s=2, alpha=0.3, linewidths=0)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(f"{ylabel} vs {xlabel}: Spearman ρ = {rho:.3f}")
    ax.grid(alpha=0.3)
    return save(fig, path)


def pair_scatter(values: dict[str, np.ndarray], path: str | Path, *, max_points: int = 2000, seed: int = 0,
                 title: str = "") -> Path:
    """Pairwise scatter plots of score values (lower triangle), histograms on the diagonal. At most
    ``max_points`` examples, a seeded random sample, so large datasets stay readable."""
    plt = pyplot()
    names = list(values)
    n = len(next(iter(values.values())))
    keep = np.random.default_rng(seed).permutation(n)[:max_points]
    size = 1.8 * len(names)
    fig, axes = plt.subplots(len(names), len(names), figsize=(size, size), squeeze=False)
    for i, yname in enumerate(names):
        for j, xname in enumerate(names):
            ax = axes[i][j]
            if j > i:
                ax.axis("off")
                continue
            if i == j:
                ax.hist(values[xname][keep], bins=40, color="gray")
            else:
                ax.scatter(values[xname][keep], values[yname][keep], s=2, alpha=0.3, linewidths=0)
            ax.tick_params(labelsize=6)
            if i == len(names) - 1:
                ax.set_xlabel(xname, fontsize=7)
            if j == 0:
                ax.set_ylabel(yname, fontsize=7)
    if title:
        fig.suptitle(title)
    return save(fig, path)


def accuracy_points(curve: list[dict], panels: dict, path):
    """Accuracy against kept fraction, one panel per title in ``panels`` (title → [(method, legend name,
    marker)]): points with 16th–84th percentile bars, readable with a single kept fraction too, methods side by
    side; the full-data mean as a dotted line."""
    plt = pyplot()
    fig, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 4), squeeze=False)
    keeps = sorted({r["keep"] for r in curve if r["method"] != "full"})
    shift = 0.12 * (min(np.diff(keeps)) if len(keeps) > 1 else 0.1)
    for ax, (title, methods) in zip(axes[0], panels.items()):
        for i, (method, name, marker) in enumerate(methods):
            pts = sorted((r for r in curve if r["method"] == method and r["offset"] is None), key=lambda r: r["keep"])
            x = np.array([r["keep"] for r in pts]) + (i - (len(methods) - 1) / 2) * shift
            y = np.array([r["mean"] for r in pts])
            bars = [y - [r["p16"] for r in pts], [r["p84"] for r in pts] - y]
            ax.errorbar(x, y, yerr=bars, marker=marker, linestyle="-" if len(pts) > 1 else "none", capsize=3,
                        label=name, color="black" if method == "random" else None)
        for r in curve:
            if r["method"] == "full":
                ax.axhline(r["mean"], color="purple", linestyle=":", label="full data")
        ax.set_title(title)
        ax.set_xlabel("fraction kept")
        ax.set_xticks(keeps)
        ax.set_xlim(keeps[0] - 3 * shift, keeps[-1] + 3 * shift)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    axes[0][0].set_ylabel("final test accuracy")
    return save(fig, path)


def difference_points(ax, x, rows: Sequence[dict], *, scale: float = 100, label: str | None = None) -> list[float]:
    """Mean differences (``diff``, × ``scale``) against ``x``, one series: filled points with their interval bars
    where ``ci_low``/``ci_high`` are finite (an informative interval), hollow points without a bar where they are NaN
    (too few runs: see :func:`datadiet.stats.compare_groups`). The points are joined by a solid line when every
    one has an interval, a dotted one otherwise, so an up-and-down of unresolved means does not read as a trend.
    Returns the values the axis must show (:func:`difference_limits`)."""
    x = np.asarray(x, dtype=np.float64)
    y = np.array([r["diff"] for r in rows], dtype=np.float64) * scale
    low = np.array([r["ci_low"] for r in rows], dtype=np.float64) * scale
    high = np.array([r["ci_high"] for r in rows], dtype=np.float64) * scale
    shown = np.isfinite(low) & np.isfinite(high)
    (line,) = ax.plot(x, y, linestyle="-" if shown.all() else ":", label=label)
    color = line.get_color()
    if shown.any():
        ax.errorbar(x[shown], y[shown], yerr=[y[shown] - low[shown], high[shown] - y[shown]], fmt="o", color=color,
                    capsize=3)
    if (~shown).any():
        ax.plot(x[~shown], y[~shown], "o", markerfacecolor="none", color=color)
    return [*y[np.isfinite(y)], *low[shown], *high[shown]]


def difference_limits(ax, values: Sequence[float], *, margin: float = 0.08) -> None:
    """Set the y axis to ``values`` (means and informative interval ends) and zero, with a margin: autoscaling would
    also count anything else drawn on the axis."""
    values = [v for v in values if np.isfinite(v)] + [0.0]
    low, high = min(values), max(values)
    pad = margin * (high - low) or 1.0
    ax.set_ylim(low - pad, high + pad)


def cost_curves(series: Sequence[dict], panels: Sequence[tuple[str, str]], path: str | Path, *,
                title: str = "") -> Path:
    """Final test accuracy against what it cost, one panel per ``(key, x label)`` of ``panels`` (sample passes,
    FLOPs, seconds ...): each series a line of its points' means with the 16th–84th percentile band (a single
    point gets a bar instead).

    ``series``: ``{"label", "group", "dashed", "points": [{key: x, "mean", "p16", "p84"}]}``; series of one
    ``group`` share a colour (a method drawn twice, training only solid and including scoring dashed), the group
    ``"full"`` is black. Points whose x is unknown (None) are left out of that panel."""
    plt = pyplot()
    fig, axes = plt.subplots(1, len(panels), figsize=(6 * len(panels), 4.5), squeeze=False)
    groups = list(dict.fromkeys(s["group"] for s in series if s["group"] != "full"))
    colors = plt.get_cmap("tab10")
    for ax, (key, xlabel) in zip(axes[0], panels):
        for s in series:
            color = "black" if s["group"] == "full" else colors(groups.index(s["group"]) % 10)
            pts = sorted((p for p in s["points"] if p.get(key) is not None), key=lambda p: p[key])
            if not pts:
                continue
            x, y = np.array([p[key] for p in pts], dtype=np.float64), np.array([p["mean"] for p in pts])
            low, high = np.array([p["p16"] for p in pts]), np.array([p["p84"] for p in pts])
            style = "--" if s.get("dashed") else "-"
            if len(pts) == 1:
                ax.errorbar(x, y, yerr=[y - low, high - y], fmt="o", capsize=3, color=color, label=s["label"],
                            markerfacecolor="none" if s.get("dashed") else color)
                continue
            ax.plot(x, y, linestyle=style, marker="o", markersize=3, color=color, label=s["label"])
            ax.fill_between(x, low, high, alpha=0.08 if s.get("dashed") else 0.15, color=color)
        ax.set_xlabel(xlabel)
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("final test accuracy")
    axes[0][0].legend(fontsize=7, loc="lower right")  # the first panel: its x (sample passes) is always known
    if title:
        fig.suptitle(title)
    return save(fig, path)
