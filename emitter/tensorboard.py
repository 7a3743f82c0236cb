"""TensorBoard sync: what a `SummaryWriter` writes also goes to the active run, at the writer's global step.

Example:
    import emitter, emitter.tensorboard
    from torch.utils.tensorboard import SummaryWriter

    emitter.init(project="mnist")
    emitter.tensorboard.patch()
    writer = SummaryWriter("runs/mnist")
    writer.add_scalar("train/loss", 0.25, global_step=100)   # also stored as train/loss at step 100

Like W&B's `sync_tensorboard`, this wraps the event writer every TensorBoard front end ends in
(`tensorboard`'s `EventFileWriter`, behind `torch.utils.tensorboard`, and `tensorboardX`'s), so
Lightning's TensorBoardLogger, Keras and hand-written loops are all covered. Unlike W&B it reads
each event as it is added instead of tailing the files: nothing is parsed twice and nothing is
late. Scalars, histograms and PNG images are kept; other plugins (text, hparams, graphs) are not.

Keys are the event's tag, prefixed with the writer's directory relative to the root log
directory when a run has several writers (`add_scalars`, or `runs/train` and `runs/val`
writers give `val/loss`). The root is `patch(root_logdir=...)`, or else the first writer's
directory (its parent when that is named `train` or `validation`, as W&B does).
Steps follow the run's rule: a point below the run's current step is dropped and counted.
"""

from __future__ import annotations

import importlib
import logging
import os
import sys
import threading
from typing import Any

log = logging.getLogger("pulse")

# The classes every writer front end hands its events to, by the package that provides them.
WRITER_CLASSES = {
    "pytorch": ("tensorboard.summary.writer.event_file_writer", "EventFileWriter"),
    "tensorboard_x": ("tensorboardX.event_file_writer", "EventFileWriter"),
}
MAX_BUCKETS = 512  # the most a Pulse histogram holds; finer TensorBoard histograms are merged down
_PNG = b"\x89PNG\r\n\x1a\n"
# TensorFlow DataType numbers of the scalar tensors a new-style `add_scalar` writes.
_TENSOR_FIELDS = {1: "float_val", 2: "double_val", 3: "int_val", 9: "int64_val", 19: "half_val"}
_TENSOR_DTYPES = {1: "<f4", 2: "<f8", 3: "<i4", 9: "<i8", 19: "<f2"}

_lock = threading.Lock()
_originals: dict[type, Any] = {}
_root: str | None = None
_unrouted = 0


def patch(root_logdir: str | None = None, pytorch: bool | None = None, tensorboard_x: bool | None = None,
          save: bool = True) -> None:
    """Send what TensorBoard writers write to the active run (`emitter.run`) as well as to their files.

    `pytorch` / `tensorboard_x` choose the front ends (default: every one installed); `root_logdir`
    is the directory keys are named relative to. Calling it again only updates `root_logdir`.
    `save` is W&B's (it uploads the event files); Pulse stores the values themselves, so it has no
    effect. Raises ImportError when neither tensorboard nor tensorboardX is installed.
    """
    global _root
    del save
    wanted = {"pytorch": pytorch, "tensorboard_x": tensorboard_x}
    if not any(wanted.values()):
        wanted = {name: chosen is not False for name, chosen in wanted.items()}
    with _lock:
        if root_logdir is not None:
            _root = os.path.abspath(root_logdir)
        missing = []
        for name, (module_name, class_name) in WRITER_CLASSES.items():
            if not wanted[name]:
                continue
            try:
                writer = getattr(importlib.import_module(module_name), class_name)
            except ImportError:
                missing.append(module_name.split(".")[0])
                continue
            if writer not in _originals:
                _originals[writer] = writer.add_event
                writer.add_event = _capturing(writer.add_event)
        if not _originals:
            raise ImportError(f"TensorBoard sync needs {' or '.join(missing)}: pip install tensorboard")


def unpatch() -> None:
    """Stop sending TensorBoard events to the run; the writers keep writing their files."""
    global _root
    with _lock:
        for writer, original in _originals.items():
            writer.add_event = original
        _originals.clear()
        _root = None


def is_patched() -> bool:
    return bool(_originals)


def _capturing(add_event):
    def add_event_and_log(self, event) -> Any:
        try:
            _log_event(self, event)
        except Exception as error:  # the user's TensorBoard file must still be written
            log.warning("pulse: a TensorBoard event could not be read (%s: %s); its file still has it",
                        type(error).__name__, error)
        return add_event(self, event)

    add_event_and_log.__wrapped__ = add_event
    return add_event_and_log


def _log_event(writer: Any, event: Any) -> None:
    global _unrouted
    if not event.HasField("summary") or not event.summary.value:
        return  # file version, graph, session log: nothing to plot
    values = {}
    prefix = _namespace(writer)
    for value in event.summary.value:
        logged = _value(value)
        if logged is not None:
            values[f"{prefix}/{value.tag}" if prefix else value.tag] = logged
    if not values:
        return
    run = getattr(sys.modules.get("emitter"), "run", None)
    if run is None:
        _unrouted += 1
        if _unrouted == 1:
            log.warning("pulse: TensorBoard wrote %s at step %d but no run is active (call emitter.init() "
                        "first); such events stay in the event files only", ", ".join(values), event.step)
        return
    run.log(values, step=int(event.step))


def _namespace(writer: Any) -> str:
    global _root
    logdir = os.path.abspath(str(writer.get_logdir()))
    with _lock:
        if _root is None:
            _root = logdir
            if os.path.basename(logdir) in ("train", "validation"):  # Keras' layout: runs/train, runs/validation
                _root = os.path.dirname(logdir)
        root = _root
    base = root if os.path.commonpath([root, logdir]) == root else os.path.commonpath([root, logdir])
    name = os.path.relpath(logdir, base)
    return "" if name == "." else name.replace(os.sep, "/")


def _value(value: Any) -> Any:
    """A float, Histogram or Image for one summary value; None for what Pulse does not keep."""
    kind = value.WhichOneof("value")
    if kind == "simple_value":
        return float(value.simple_value)
    if kind == "histo":
        return _histogram(value.histo)
    if kind == "image":
        return _image(value.image.encoded_image_string)
    if kind == "tensor" and value.metadata.plugin_data.plugin_name == "scalars":
        return _scalar_tensor(value.tensor)
    return None


def _scalar_tensor(tensor: Any) -> float | None:
    field = _TENSOR_FIELDS.get(tensor.dtype)
    if field is None:
        return None
    listed = getattr(tensor, field)
    if len(listed) == 1:
        return float(listed[0])
    if tensor.tensor_content:
        import numpy as np

        content = np.frombuffer(tensor.tensor_content, dtype=_TENSOR_DTYPES[tensor.dtype])
        return float(content[0]) if content.size == 1 else None
    return None


def _histogram(histo: Any):
    """TensorBoard's buckets are right edges (the first bucket is open on the left); Pulse's are n + 1 edges."""
    import numpy as np

    from .media import Histogram

    counts = np.asarray(histo.bucket, dtype=np.float64)
    limits = np.asarray(histo.bucket_limit, dtype=np.float64)
    if not counts.size or counts.size != limits.size:
        return None
    edges = np.concatenate([[min(histo.min, limits[0])], limits])
    # TensorFlow-style buckets run out to +-DBL_MAX: the data lie within [min, max], so clip there.
    edges = np.clip(edges, histo.min, histo.max)
    if counts.size > MAX_BUCKETS:
        group = -(-counts.size // MAX_BUCKETS)
        counts = np.add.reduceat(counts, np.arange(0, counts.size, group))
        edges = np.append(edges[:-1:group], edges[-1])
    return Histogram(np_histogram=(counts, edges))


def _image(data: bytes):
    if not data.startswith(_PNG):
        return None  # GIFs (add_video) and other formats are not kept
    try:
        from PIL import Image as PILImage
    except ImportError:
        return None
    import io

    from .media import Image

    with PILImage.open(io.BytesIO(data)) as img:
        return Image(img)
