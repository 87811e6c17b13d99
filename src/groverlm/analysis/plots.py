"""Analyses, shared plotting: matplotlib (headless Agg) figures saved as PNG files or bytes.

Reads nothing; writes PNG files for the analyses and base64 PNG bytes for the HTML report. Every
figure of the project goes through `figure`, `save_png` and `png_bytes`, so sizes, fonts and the
off-screen backend are set in one place.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from groverlm import lazy
from groverlm.manifest import atomic_path

# matplotlib loads on first use, keeping the CLI and config loading light
matplotlib = lazy.module("matplotlib")
mcolors = lazy.module("matplotlib.colors")
plt = lazy.module("matplotlib.pyplot")

DPI = 110  # a 6.4 x 4 inch figure is about 700 x 440 px: readable in a report column
COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f"]
# every figure draws a model in COLORS[0] and the baselines beside it in grey: COLORS[7] for the
# strongest (the context table, a TF-IDF or k-mer model), this lighter one for a second (the unigram)
BASELINE_LIGHT = "#c7c7c7"
# (colour, line style) of the reference lines figures share: chance dotted and the most frequent
# class (k-mer) dashed, both black, wherever they are drawn
CHANCE_LINE = ("k", ":")
MOST_FREQUENT_LINE = ("k", "--")


def figure(ncols: int = 1, nrows: int = 1, width: float = 6.4, height: float = 4.0):
    """(fig, axes) on the Agg backend; axes is a flat array when there is more than one."""
    matplotlib.use("Agg")  # before pyplot's first use: off-screen, no display needed
    fig, axes = plt.subplots(nrows, ncols, figsize=(width * ncols, height * nrows), squeeze=False)
    return fig, (axes[0, 0] if ncols * nrows == 1 else axes.ravel())


def png_bytes(fig) -> bytes:
    """The figure as PNG bytes; the figure is closed."""
    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png", dpi=DPI)
    plt.close(fig)
    return buf.getvalue()


def save_png(fig, path: str | Path) -> Path:
    """Write the figure to `path` atomically; the figure is closed."""
    path = Path(path)
    data = png_bytes(fig)
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return path


def scatter_colored(ax, x: np.ndarray, y: np.ndarray, c: np.ndarray, label: str,
                    cmap: str = "viridis", size: float = 8, log: bool = False) -> None:
    """Scatter with a colour bar named `label` (log10 colour scale when `log`)."""
    c = np.asarray(c, dtype=np.float64)
    norm = None
    if log:
        positive = c[c > 0]
        if positive.size:
            norm = mcolors.LogNorm(vmin=positive.min(), vmax=max(positive.max(), positive.min() * 1.0001))
            c = np.where(c > 0, c, positive.min())
    sc = ax.scatter(x, y, c=c, cmap=cmap, s=size, norm=norm, linewidths=0)
    plt.colorbar(sc, ax=ax, label=label)


def bars(ax, labels: Sequence[str], values: Sequence[float], color: str = COLORS[0],
         reference: Sequence[float] | None = None, ref_label: str = "GROVER") -> None:
    """Bars with an optional second series (e.g. GROVER's published figure) beside them."""
    x = np.arange(len(labels))
    width = 0.4 if reference is not None else 0.8
    ax.bar(x - (width / 2 if reference is not None else 0), values, width, color=color,
           label="this run")
    if reference is not None:
        ax.bar(x + width / 2, reference, width, color=COLORS[7], label=ref_label)
        ax.legend(frameon=False)
    ax.set_xticks(x, labels)
