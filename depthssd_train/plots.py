"""PNG plots of an evaluation (matplotlib, Agg backend: no display needed).

- ``pr_curves.png``: precision-recall at IoU 0.5 per class.
- ``depth_error_vs_distance.png``: mean absolute relative depth error per true-depth bin.
- ``object_distance.png``: predicted vs true distance of matched objects, by class (the node's
  detections and tracks at its operating point).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # after matplotlib.use: the backend must come first

PLOT_FILES = ("pr_curves.png", "depth_error_vs_distance.png", "object_distance.png")


def plot_pr_curves(pr50: dict[str, tuple[list[float], list[float]]], path: Path) -> None:
    """Precision-recall curves at IoU 0.5, one line per class."""
    fig, ax = plt.subplots(figsize=(6, 4.5))
    for name, (recall, precision) in sorted(pr50.items()):
        ax.plot(recall, precision, label=name)
    ax.set(xlabel="recall", ylabel="precision", xlim=(0, 1), ylim=(0, 1.02),
           title="Precision-recall at IoU 0.5")
    if pr50:
        ax.legend(fontsize=8)
    else:
        ax.text(0.5, 0.5, "no detections", ha="center", va="center")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_depth_error(bins: dict[str, list[float]], path: Path) -> None:
    """Mean absolute relative depth error against true depth."""
    fig, ax = plt.subplots(figsize=(6, 4))
    xs = [x for x, y in zip(bins["bin_centre_m"], bins["abs_rel"], strict=True)
          if math.isfinite(y)]
    ys = [y for y in bins["abs_rel"] if math.isfinite(y)]
    ax.plot(xs, ys, marker="o")
    ax.set(xlabel="true depth (m)", ylabel="mean |pred - true| / true",
           title="Depth error vs distance")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_object_distance(records: list[Any], path: Path,
                         score_threshold: float | None = None) -> None:
    """Scatter of predicted vs true object distance with the identity line."""
    fig, ax = plt.subplots(figsize=(5.5, 5))
    by_class: dict[str, tuple[list[float], list[float]]] = {}
    for r in records:
        if math.isfinite(r.pred_m):
            xs, ys = by_class.setdefault(r.class_name, ([], []))
            xs.append(r.true_m)
            ys.append(r.pred_m)
    top = 10.0
    for name, (xs, ys) in sorted(by_class.items()):
        ax.scatter(xs, ys, s=6, alpha=0.6, label=name)
        top = max(top, *xs, *ys)
    ax.plot([0, top], [0, top], color="black", linewidth=0.8)
    title = "Object distance" + (f" (score >= {score_threshold:g})"
                                 if score_threshold is not None else "")
    ax.set(xlabel="true distance (m)", ylabel="predicted distance (m)", xlim=(0, top),
           ylim=(0, top), title=title)
    if by_class:
        ax.legend(fontsize=8, markerscale=2)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def write_all(out_dir: Path, metrics: dict[str, Any]) -> list[Path]:
    """Write every plot of a :func:`depthssd_train.evaluate.run_pass` result; return paths."""
    out_dir = Path(out_dir)
    paths = [out_dir / name for name in PLOT_FILES]
    plot_pr_curves(metrics["_pr50"], paths[0])
    plot_depth_error(metrics["_depth_bins"], paths[1])
    plot_object_distance(metrics["_records"], paths[2],
                         metrics.get("distance", {}).get("score_threshold"))
    return paths
