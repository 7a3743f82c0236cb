"""`emitter.plot`: W&B's preset charts (`wandb.plot.*`, same signatures), each a table plus a chart spec.

A chart is logged as one `plot` medium: its table and a small declarative spec (chart, x, y,
color, value, title, axis labels; pulse/media_schema.py) that the dashboard draws. pr_curve and
roc_curve compute their curves with scikit-learn, as W&B's do.

Example:
    emitter.log({"cm": emitter.plot.confusion_matrix(y_true=labels, preds=predictions,
                                                     class_names=["cat", "dog"])})
    table = emitter.Table(columns=["epoch", "loss"], data=[[0, 1.2], [1, 0.7]])
    emitter.log({"loss_curve": emitter.plot.line(table, "epoch", "loss", title="Loss")})
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from pulse.media_schema import PLOT_MIME, dumps, spec_problem

from .media import File, Logged, plain
from .media_table import Table

__all__ = ["CustomChart", "bar", "confusion_matrix", "histogram", "line", "line_series", "pr_curve",
           "roc_curve", "scatter"]


class CustomChart(File):
    """A table drawn as a chart by `spec`; what every `emitter.plot` function returns."""

    kind = "plot"
    mime = PLOT_MIME
    listable = False

    def __init__(self, table: Table, spec: dict) -> None:
        self.table = table
        self.spec = {name: value for name, value in spec.items() if value not in (None, "")}
        if problem := spec_problem(self.spec, table.columns):
            raise ValueError(problem)
        self._doc: bytes | None = None

    def _logged(self) -> CustomChart:
        frozen = CustomChart(self.table._logged(), self.spec)
        frozen.weight = frozen.table.weight
        return frozen

    def _records(self, key: str, step: int, ts_us: int, index: int) -> list[Logged]:
        return self.table._records(key, step, ts_us, index)[:-1] + [Logged(key, step, ts_us, self, index)]

    def _bytes(self) -> bytes:
        if self._doc is None:
            self._doc = dumps({"_type": "plot", "spec": self.spec, "table": self.table._document()})
        return self._doc

    def __repr__(self) -> str:
        return f"<CustomChart {self.spec['chart']} of {len(self.table)} rows>"


def line(table: Table, x: str, y: str, stroke: str | None = None, title: str = "",
         split_table: bool = False) -> CustomChart:
    """A line chart of column `y` over `x`, one line per value of `stroke` if given."""
    return CustomChart(table, {"chart": "line", "x": x, "y": y, "color": stroke, "title": title})


def scatter(table: Table, x: str, y: str, title: str = "", split_table: bool = False) -> CustomChart:
    """A scatter plot of column `y` against `x`."""
    return CustomChart(table, {"chart": "scatter", "x": x, "y": y, "title": title})


def bar(table: Table, label: str, value: str, title: str = "", split_table: bool = False) -> CustomChart:
    """A bar per row: its `label` column against its `value` column."""
    return CustomChart(table, {"chart": "bar", "x": label, "y": value, "title": title})


def histogram(table: Table, value: str, title: str = "", split_table: bool = False) -> CustomChart:
    """A histogram of the `value` column (the dashboard bins it)."""
    return CustomChart(table, {"chart": "histogram", "x": value, "title": title})


def line_series(xs: Iterable[Any], ys: Iterable[Iterable[Any]], keys: Iterable[str] | None = None,
                title: str = "", xname: str = "x", split_table: bool = False) -> CustomChart:
    """Several lines in one chart: `ys[i]` over `xs` (or over `xs[i]` when xs holds one list per line)."""
    ys = [list(plain(y)) for y in ys]
    xs = list(plain(xs))
    per_line = bool(xs) and isinstance(xs[0], (list, tuple))
    keys = list(keys) if keys is not None else [f"key_{i}" for i in range(len(ys))]
    if len(keys) != len(ys):
        raise ValueError(f"line_series has {len(ys)} lines and {len(keys)} keys")
    data = []
    for i, (key, y) in enumerate(zip(keys, ys)):
        x = xs[i] if per_line else xs
        if len(x) != len(y):
            raise ValueError(f"line {key!r} has {len(y)} y values for {len(x)} x values")
        data += [[xv, key, yv] for xv, yv in zip(x, y)]
    table = Table(columns=[xname, "lineKey", "lineVal"], data=data)
    return CustomChart(table, {"chart": "line", "x": xname, "y": "lineVal", "color": "lineKey", "title": title,
                               "preset": "line_series"})


def confusion_matrix(probs: Sequence[Sequence[float]] | None = None, y_true: Sequence[Any] | None = None,
                     preds: Sequence[Any] | None = None, class_names: Sequence[str] | None = None,
                     title: str = "Confusion Matrix Curve", split_table: bool = False) -> CustomChart:
    """A confusion matrix from predicted labels (`preds`) or probabilities (`probs`, N x K), as W&B
    counts it: a row per (Actual, Predicted) pair with its nPredictions."""
    import numpy as np

    if probs is not None and preds is not None:
        raise ValueError("Only one of `probs` or `preds` should be provided, not both.")
    if y_true is None or (probs is None and preds is None):
        raise ValueError("confusion_matrix needs y_true and one of preds or probs")
    y_true = list(plain(y_true))
    preds = np.argmax(np.asarray(probs), axis=1).tolist() if probs is not None else list(plain(preds))
    if len(preds) != len(y_true):
        raise ValueError("The number of predictions and true labels must be equal.")
    if class_names is not None:
        class_idx = list(range(len(class_names)))
        if not set(preds) | set(y_true) <= set(class_idx):
            raise ValueError(f"labels must be class indices 0..{len(class_names) - 1} when class_names is given")
    else:
        class_idx = sorted(set(preds) | set(y_true))
        class_names = [f"Class_{i + 1}" for i in range(len(class_idx))]
    position = {value: i for i, value in enumerate(sorted(class_idx))}
    counts = np.zeros((len(class_idx), len(class_idx)), dtype=np.int64)
    np.add.at(counts, ([position[t] for t in y_true], [position[p] for p in preds]), 1)
    data = [[class_names[i], class_names[j], int(counts[i, j])]
            for i in range(len(class_idx)) for j in range(len(class_idx))]
    table = Table(columns=["Actual", "Predicted", "nPredictions"], data=data)
    return CustomChart(table, {"chart": "heatmap", "x": "Predicted", "y": "Actual", "value": "nPredictions",
                               "title": title, "preset": "confusion_matrix"})


def pr_curve(y_true: Iterable[Any] | None = None, y_probas: Iterable[Any] | None = None,
             labels: list[str] | None = None, classes_to_plot: list[Any] | None = None, interp_size: int = 21,
             title: str = "Precision-Recall Curve", split_table: bool = False) -> CustomChart:
    """Precision against recall per class, at `interp_size` recall levels (W&B's interpolation:
    the precision at each recall level is the best precision at that recall or above)."""
    import numpy as np
    from sklearn.metrics import precision_recall_curve

    y_true, y_probas, plotted = _curve_inputs(y_true, y_probas, labels, classes_to_plot)
    recall_levels = np.linspace(0, 1, interp_size)[::-1]
    data = []
    for i, label, positive in plotted:
        precision, recall, _ = precision_recall_curve(y_true, y_probas[:, i], pos_label=positive)
        precision = np.maximum.accumulate(precision)[::-1]  # monotone, then in ascending recall
        recall = recall[::-1]
        at = np.minimum(np.searchsorted(recall, recall_levels, side="left"), len(precision) - 1)
        data += [[label, round(float(p), 3), round(float(r), 3)] for p, r in zip(precision[at], recall_levels)]
    table = Table(columns=["class", "precision", "recall"], data=data)
    return CustomChart(table, {"chart": "line", "x": "recall", "y": "precision", "color": "class", "title": title,
                               "x_label": "Recall", "y_label": "Precision", "preset": "pr_curve"})


def roc_curve(y_true: Sequence[Any], y_probas: Sequence[Sequence[float]] | None = None,
              labels: list[str] | None = None, classes_to_plot: list[Any] | None = None,
              title: str = "ROC Curve", split_table: bool = False) -> CustomChart:
    """True positive rate against false positive rate per class (scikit-learn's roc_curve)."""
    from sklearn.metrics import roc_curve as sklearn_roc

    y_true, y_probas, plotted = _curve_inputs(y_true, y_probas, labels, classes_to_plot)
    data = []
    for i, label, positive in plotted:
        fpr, tpr, _ = sklearn_roc(y_true, y_probas[..., i], pos_label=positive)
        data += [[label, round(float(f), 3), round(float(t), 3)] for f, t in zip(fpr, tpr)]
    table = Table(columns=["class", "fpr", "tpr"], data=data)
    return CustomChart(table, {"chart": "line", "x": "fpr", "y": "tpr", "color": "class", "title": title,
                               "x_label": "False positive rate", "y_label": "True positive rate",
                               "preset": "roc_curve"})


def _curve_inputs(y_true: Any, y_probas: Any, labels: list[str] | None, classes_to_plot: Any):
    """(y_true, y_probas as N x K, [(column, label, class value)]) as W&B picks the classes."""
    import numpy as np

    if y_true is None or y_probas is None:
        raise ValueError("y_true and y_probas are both needed")
    y_true, y_probas = np.asarray(plain(y_true)), np.asarray(plain(y_probas), dtype=np.float64)
    if y_probas.ndim != 2 or len(y_probas) != len(y_true):
        raise ValueError(f"y_probas must be N x K for N = {len(y_true)} labels; got shape {y_probas.shape}")
    classes = np.unique(y_true)
    if len(classes) > y_probas.shape[1]:
        raise ValueError(f"y_true has {len(classes)} classes but y_probas only {y_probas.shape[1]} columns")
    wanted = classes if classes_to_plot is None else np.asarray(classes_to_plot)
    plotted = []
    for i in np.where(np.isin(classes, wanted))[0]:
        value = classes[i]
        label = labels[int(value)] if labels is not None and np.issubdtype(classes.dtype, np.integer) else value
        plotted.append((int(i), label.item() if hasattr(label, "item") else label, value))
    return y_true, y_probas, plotted
