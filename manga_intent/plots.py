"""PNG figures for asset metadata and MLflow: confusion matrix and reliability diagram."""

from __future__ import annotations

import base64
import io
from collections.abc import Sequence

import matplotlib

matplotlib.use("Agg")  # headless: no display on training machines
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def _png(fig) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return buffer.getvalue()


def confusion_matrix_png(matrix: Sequence[Sequence[int]], labels: Sequence[str], title: str = "") -> bytes:
    cm = np.asarray(matrix, dtype=float)
    normalized = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1)
    fig, ax = plt.subplots(figsize=(1.0 + 0.6 * len(labels), 0.8 + 0.5 * len(labels)))
    ax.imshow(normalized, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(labels)), labels, rotation=60, ha="right", fontsize=8)
    ax.set_yticks(range(len(labels)), labels, fontsize=8)
    for i in range(len(labels)):
        for j in range(len(labels)):
            if cm[i, j]:
                ax.text(
                    j,
                    i,
                    int(cm[i, j]),
                    ha="center",
                    va="center",
                    fontsize=7,
                    color="white" if normalized[i, j] > 0.5 else "black",
                )
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title or "confusion matrix (row-normalised colour, counts)")
    return _png(fig)


def reliability_diagram_png(curves: dict[str, list[dict]], title: str = "reliability diagram") -> bytes:
    """`curves` maps a name ("before", "after") to metrics.reliability_bins output."""
    fig, ax = plt.subplots(figsize=(4.5, 4.5))
    ax.plot([0, 1], [0, 1], linestyle="--", color="grey", linewidth=1, label="perfect calibration")
    for name, bins in curves.items():
        xs = [b["confidence"] for b in bins if b["count"]]
        ys = [b["accuracy"] for b in bins if b["count"]]
        ax.plot(xs, ys, marker="o", label=name)
    ax.set_xlabel("confidence")
    ax.set_ylabel("accuracy")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.legend(loc="upper left", fontsize=8)
    ax.set_title(title)
    return _png(fig)


def markdown_image(png: bytes, alt: str) -> str:
    """Inline PNG as Markdown, which the Dagster UI renders in metadata."""
    return f"![{alt}](data:image/png;base64,{base64.b64encode(png).decode('ascii')})"


def methods_comparison_png(
    summary: dict, title: str = "methods vs recipe v2 (test split, mean ± 95% CI)"
) -> bytes:
    """Forest plot of accuracy, rare-intent accuracy and calibrated ECE per method (compare.summarize output)."""
    rows = summary["methods"]
    names = [r["method"] for r in rows]
    panels = (
        ("accuracy", "accuracy"),
        ("rare_class_accuracy", "rare-intent accuracy"),
        ("ece_calibrated", "ECE (calibrated)"),
    )
    fig, axes = plt.subplots(1, len(panels), figsize=(11, 0.5 + 0.45 * len(rows)), sharey=True)
    tests = summary.get("tests_vs_recipe_v2", {})
    for ax, (key, label) in zip(axes, panels):
        for y, row in enumerate(rows):
            mean, half = row[key]
            if mean is None or np.isnan(mean):
                continue
            separated = tests.get(row["method"], {}).get("separated")
            colour = (
                "black"
                if row["method"] == summary.get("reference")
                else ("tab:red" if separated else "tab:blue")
            )
            ax.errorbar(mean, y, xerr=half, fmt="o", color=colour, capsize=3)
        ax.set_title(label, fontsize=9)
        ax.grid(axis="x", alpha=0.3)
    axes[0].set_yticks(range(len(names)), names, fontsize=8)
    axes[0].invert_yaxis()
    fig.suptitle(title + " — red: separated from recipe v2 (Holm, both tests)", fontsize=9)
    return _png(fig)
