"""What `log()` takes besides scalars: media (`Image` here; `Audio`, `Video`, `Html`, `Object3D`,
`Table`, `plot.*` in the `media_*` modules) and `Histogram`.

Example:
    emitter.log({"samples": [emitter.Image(x, caption="epoch 3")],
                 "logits": emitter.Histogram(logits)})

`log()` only moves these objects to the queue; the PNG encoding and the
protobuf happen on the sender thread. Constructing an `Image` copies the
pixels (the training loop may reuse its buffers) but encodes nothing, except
for a matplotlib figure, which must be rendered on the thread that owns it.
numpy, torch and PIL are imported only when an object needs them. Kinds, mimes
and the documents of tables and plots are defined once, in pulse/media_schema.py.
"""

from __future__ import annotations

import hashlib
import io
import os
import threading
from typing import Any

from pulse.media_schema import MAX_MEDIA_BYTES, media_problem, media_ref, mime_for_path
from pulse.v1 import telemetry_pb2 as pb

from .values import is_tensor

MAX_BINS = 512
# A queued media item weighs this many bytes per "value" in the sender's batch budget, so
# the media of one batch stay under about 4 MB plus one item, within the ingest's 32 MB limit.
BYTES_PER_VALUE = 200
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
__all__ = ["MAX_MEDIA_BYTES", "Audio", "File", "Histogram", "Html", "Image", "Logged", "Media", "Object3D", "Plotly",
           "Table", "Video", "plot", "split_media"]


class Media:
    """A value `log()` sends as its own record rather than as a scalar."""

    weight = 1  # in the batcher's "values"

    def _logged(self) -> Media:
        """What `log()` queues: the object itself, or a frozen copy of one the caller may change (Table)."""
        return self

    def _records(self, key: str, step: int, ts_us: int, index: int) -> list[Logged]:
        """The queued records of this value: itself; a table's cells first, then the table."""
        return [Logged(key, step, ts_us, self, index)]

    def _write(self, batch: pb.Batch, key: str, step: int, ts_us: int, index: int) -> None:
        raise NotImplementedError


class File(Media):
    """A medium stored as one blob: its bytes, `kind` and `mime` (pulse/media_schema.py)."""

    kind = ""
    mime = ""
    caption = ""
    width = 0
    height = 0
    listable = True  # may be logged in a list under one key (`idx` = position); tables and plots not

    def _bytes(self) -> bytes:
        raise NotImplementedError

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self._bytes()).hexdigest()

    def _ref(self) -> dict:
        """This medium as a table cell references it."""
        data = self._bytes()
        if len(data) > MAX_MEDIA_BYTES:
            raise ValueError(f"a {self.kind} of {len(data):,} bytes; the limit is {MAX_MEDIA_BYTES:,}")
        return media_ref(self.kind, self.sha256, self.mime, self.width, self.height, self.caption)

    def _write(self, batch: pb.Batch, key: str, step: int, ts_us: int, index: int) -> None:
        if problem := media_problem(self.kind, self.mime, b""):  # the bytes are ours; their kind and mime
            raise ValueError(problem)
        data = self._bytes()
        if len(data) > MAX_MEDIA_BYTES:
            raise ValueError(f"{self.kind} {index} is {len(data):,} bytes as {self.mime}; "
                             f"the limit is {MAX_MEDIA_BYTES:,}")
        batch.media.append(pb.Media(key=key, step=step, index=index, kind=self.kind, sha256=self.sha256,
                                    mime=self.mime, width=self.width, height=self.height,
                                    caption=self.caption, data=data))


class Encoded(File):
    """A medium encoded when it is made (audio, video, HTML, 3D): its bytes are ready, their size known."""

    def _set(self, data: bytes, mime: str, what: str) -> None:
        if len(data) > MAX_MEDIA_BYTES:
            raise ValueError(f"{what} is {len(data):,} bytes as {mime}; the limit is {MAX_MEDIA_BYTES:,} per medium")
        self._data, self.mime = data, mime
        self._sha256 = hashlib.sha256(data).hexdigest()
        self.weight = 1 + len(data) // BYTES_PER_VALUE

    def _bytes(self) -> bytes:
        return self._data

    @property
    def sha256(self) -> str:
        return self._sha256


def as_numpy(data: Any):
    """A numpy array of `data` (a tensor is moved to the CPU first); always a copy, since the caller
    may change its buffer after logging."""
    import numpy as np

    if is_tensor(data):
        data = data.detach().cpu().numpy()
    return np.array(data)


def plain(value: Any) -> Any:
    """`value` with numpy arrays, numpy scalars and tensors turned into Python lists and numbers."""
    if is_tensor(value):
        value = value.detach().cpu().numpy()
    if hasattr(value, "tolist") and type(value).__module__.startswith("numpy"):
        return value.tolist()
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    return value


def read_file(path: str | os.PathLike) -> bytes:
    with open(path, "rb") as f:
        return f.read()


def read_media_file(path: str, kind: str) -> tuple[bytes, str]:
    """(bytes, mime) of a media file, refused by its name or size before it is read."""
    mime = mime_for_path(path, kind)
    size = os.path.getsize(path)
    if size > MAX_MEDIA_BYTES:
        raise ValueError(f"{kind} file {path} is {size:,} bytes as {mime}; the limit is {MAX_MEDIA_BYTES:,} per medium")
    return read_file(path), mime


class Image(File):
    """An image, stored as PNG: from a numpy array (HxW, HxWxC or CxHxW; uint8, or float in [0, 1]),
    a torch tensor (CxHxW or HxW), a PIL image, a matplotlib figure, or a file path.

    Floats are scaled as W&B does (negative data is first min-max normalised into [0, 1]; data whose
    maximum is at most 1 is multiplied by 255), then rounded; integers are clipped to 0..255.
    Pillow encodes the PNG (a required dependency of the emitter: small, wheels everywhere).

    Example:
        emitter.log({"input": emitter.Image(batch[0], caption="first sample")})
    """

    kind = "image"
    mime = "image/png"

    def __init__(self, data_or_path: Any, mode: str | None = None, caption: str | None = None,
                 **_ignored: Any) -> None:
        self.caption = caption or ""
        self._pixels = None  # uint8 HxW, HxWx3 or HxWx4 until encoded
        self._png: bytes | None = None
        self._sha256 = ""
        self._lock = threading.Lock()
        if isinstance(data_or_path, (str, os.PathLike)):
            self._from_file(os.fspath(data_or_path), mode)
        elif _is_matplotlib(data_or_path):
            self._set_png(_render_figure(data_or_path))
        elif type(data_or_path).__module__.startswith("PIL."):
            self._pixels = _pil_pixels(data_or_path, mode)
        else:
            self._pixels = _array_pixels(data_or_path)
        if self._pixels is not None:
            self.height, self.width = self._pixels.shape[:2]
            self.weight = 1 + (self._pixels.nbytes + self.height + 1024) // BYTES_PER_VALUE

    def png(self) -> bytes:
        """The PNG bytes (encoded on first use)."""
        with self._lock:
            if self._png is None:
                self._set_png(encode_png(self._pixels))
                self._pixels = None
            return self._png

    _bytes = png

    @property
    def sha256(self) -> str:
        self.png()
        return self._sha256

    def _set_png(self, data: bytes) -> None:
        self._png = data
        self._sha256 = hashlib.sha256(data).hexdigest()
        self.width, self.height = png_size(data)
        self.weight = 1 + len(data) // BYTES_PER_VALUE

    def _from_file(self, path: str, mode: str | None) -> None:
        data = read_file(path)
        if data.startswith(PNG_SIGNATURE) and mode is None:
            self._set_png(data)
            return
        from PIL import Image as PILImage  # other formats are converted to PNG

        with PILImage.open(io.BytesIO(data)) as img:
            self._pixels = _pil_pixels(img, mode)

    def __repr__(self) -> str:
        return f"<Image {self.width}x{self.height}{' ' + repr(self.caption) if self.caption else ''}>"


class Histogram(Media):
    """A histogram: of a sequence (list, numpy array, tensor; NaN and Inf are counted apart),
    or from `np_histogram=(counts, edges)` as `numpy.histogram` returns it.

    Example:
        emitter.log({"activations": emitter.Histogram(acts, num_bins=32)})
    """

    def __init__(self, sequence: Any = None, np_histogram: tuple | None = None, num_bins: int = 64) -> None:
        import numpy as np

        if not 1 <= num_bins <= MAX_BINS:
            raise ValueError(f"num_bins must be 1..{MAX_BINS}, not {num_bins}")
        if np_histogram is not None:
            counts, edges = (np.asarray(part, dtype=np.float64).ravel() for part in np_histogram)
            if len(edges) != len(counts) + 1 or not len(counts):
                raise ValueError(f"np_histogram needs n counts and n + 1 edges, not {len(counts)} and {len(edges)}")
            if not np.isfinite(edges).all() or (counts < 0).any():
                raise ValueError("np_histogram edges must be finite and counts non-negative")
            self.count = int(counts.sum())
            self.nonfinite = 0
            self.min, self.max = float(edges[0]), float(edges[-1])
            # numpy.histogram does not keep the sum; the bucket midpoints estimate it
            self.sum = float((counts * (edges[:-1] + edges[1:]) / 2).sum())
        else:
            if sequence is None:
                raise ValueError("Histogram needs a sequence or np_histogram")
            if is_tensor(sequence):
                sequence = sequence.detach().float().cpu().numpy()
            values = np.asarray(sequence, dtype=np.float64).ravel()
            finite = np.isfinite(values)
            self.count = int(values.size)
            self.nonfinite = int(values.size - finite.sum())
            values = values[finite]
            counts, edges = np.histogram(values, bins=num_bins) if values.size else \
                (np.zeros(num_bins), np.linspace(0.0, 1.0, num_bins + 1))
            self.sum = float(values.sum())
            self.min = float(values.min()) if values.size else 0.0
            self.max = float(values.max()) if values.size else 0.0
        self.bucket_counts = [int(c) for c in counts]
        self.bucket_edges = [float(e) for e in edges]

    def _write(self, batch: pb.Batch, key: str, step: int, ts_us: int, index: int) -> None:
        batch.histograms.append(pb.Histogram(
            key=key, step=step, ts_us=ts_us, count=self.count, sum=self.sum, min=self.min, max=self.max,
            nonfinite=self.nonfinite, bucket_edges=self.bucket_edges, bucket_counts=self.bucket_counts))

    def __repr__(self) -> str:
        return f"<Histogram {len(self.bucket_counts)} bins, {self.count} values>"


class Logged:
    """A media value from `log()`, queued as `("deferred", item)` and encoded on the sender thread."""

    __slots__ = ("key", "step", "ts_us", "value", "index", "weight")

    def __init__(self, key: str, step: int, ts_us: int, value: Media, index: int = 0) -> None:
        self.key, self.step, self.ts_us, self.value, self.index = key, step, ts_us, value, index
        self.weight = value.weight

    def encode(self, batch: pb.Batch) -> None:
        self.value._write(batch, self.key, self.step, self.ts_us, self.index)


def split_media(values: dict, step: int, ts_us: int) -> list[Logged]:
    """Take media values (and lists of media) out of `values`, in place; return them as records.

    A matplotlib figure is logged as an `Image` and a Plotly figure as `Plotly`, as W&B does.
    """
    found, keys = [], []
    for key, value in values.items():
        if not isinstance(key, str):
            continue
        value = as_media(value)
        if isinstance(value, Media):
            found += value._logged()._records(key, step, ts_us, 0)
        elif type(value) in (list, tuple) and value and all(isinstance(v, File) and v.listable for v in value):
            found += [Logged(key, step, ts_us, v, i) for i, v in enumerate(value)]
        else:
            continue
        keys.append(key)
    for key in keys:
        del values[key]
    return found


def as_media(value: Any) -> Any:
    """`value`, or the medium W&B logs for it: an Image of a matplotlib figure, Plotly of a plotly figure."""
    module = getattr(type(value), "__module__", "") or ""
    if module.startswith("matplotlib.figure") or getattr(value, "__name__", "") == "matplotlib.pyplot":
        return Image(value)
    if module.startswith("plotly.") and hasattr(value, "to_plotly_json"):
        from .media_html import Plotly

        return Plotly(value)
    return value


# -- pixels ----------------------------------------------------------------------


def _array_pixels(data: Any):
    """numpy array or torch tensor -> uint8 HxW, HxWx3 or HxWx4 (a copy)."""
    import numpy as np

    tensor = is_tensor(data)
    if tensor:
        data = data.detach()
        if data.dtype.is_floating_point and data.dtype.itemsize < 4:
            data = data.float()
        data = data.cpu().numpy()
    a = np.array(data)  # a copy: the caller may change its buffer after log()
    if a.ndim == 3 and a.shape[0] in (1, 3, 4) and (tensor or a.shape[-1] not in (1, 3, 4)):
        a = a.transpose(1, 2, 0)  # CxHxW (torch's layout) -> HxWxC
    if a.ndim == 3 and a.shape[-1] == 1:
        a = a[..., 0]
    if not (a.ndim == 2 or (a.ndim == 3 and a.shape[-1] in (3, 4))) or 0 in a.shape:
        raise ValueError(f"an image needs shape HxW, HxWxC or CxHxW with C in 1, 3, 4; got {tuple(np.shape(data))}")
    return np.ascontiguousarray(_to_uint8(a))


def _to_uint8(a):
    import numpy as np

    if a.dtype == np.uint8:
        return a
    if a.dtype == np.bool_:
        return a.astype(np.uint8) * 255
    if a.dtype.kind in "iu":
        return a.clip(0, 255).astype(np.uint8)
    if a.dtype.kind != "f":
        raise ValueError(f"image data of dtype {a.dtype} is not a number")
    a = np.nan_to_num(a.astype(np.float64), nan=0.0, posinf=0.0, neginf=0.0)
    low, high = a.min(), a.max()
    if low < 0:
        a = (a - low) / (high - low) if high > low else np.zeros_like(a)
    if a.max() <= 1.0:
        a = a * 255
    return np.rint(a).clip(0, 255).astype(np.uint8)


def _pil_pixels(img: Any, mode: str | None):
    import numpy as np

    if mode and img.mode != mode:
        img = img.convert(mode)
    if img.mode not in ("L", "RGB", "RGBA"):
        has_alpha = "A" in img.mode or "transparency" in img.info
        img = img.convert("RGBA" if has_alpha else "RGB" if img.mode not in ("1", "I", "I;16", "F") else "L")
    return np.array(img)


def _is_matplotlib(data: Any) -> bool:
    module = getattr(type(data), "__module__", "") or ""
    return module.startswith("matplotlib") or getattr(data, "__name__", "") == "matplotlib.pyplot"


def _render_figure(figure: Any) -> bytes:
    if getattr(figure, "__name__", "") == "matplotlib.pyplot":
        figure = figure.gcf()
    figure = getattr(figure, "figure", figure)  # an Axes knows its figure
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()


# -- PNG --------------------------------------------------------------------------


def encode_png(pixels) -> bytes:
    """uint8 HxW (gray), HxWx3 (RGB) or HxWx4 (RGBA) -> PNG, by Pillow (zlib level 6, adaptive filters)."""
    from PIL import Image as PILImage

    buffer = io.BytesIO()
    PILImage.fromarray(pixels).save(buffer, format="PNG", compress_level=6)
    return buffer.getvalue()


def png_size(data: bytes) -> tuple[int, int]:
    """(width, height) of a PNG, from its header (Pillow reads no pixels for this)."""
    from PIL import Image as PILImage

    if not data.startswith(PNG_SIGNATURE):
        raise ValueError("not a PNG file")
    with PILImage.open(io.BytesIO(data)) as img:
        return img.size


# The other media, re-exported here so `emitter` imports them all from one place; they need the
# classes above first.
from . import plot  # noqa: E402  (wandb.plot.*)
from .media_3d import Object3D  # noqa: E402
from .media_av import Audio, Video  # noqa: E402
from .media_html import Html, Plotly  # noqa: E402
from .media_table import Table  # noqa: E402
