"""Sound and moving pictures for `log()`: `Audio` (WAV or FLAC) and `Video` (GIF, MP4 or WebM).

Both encode when they are made, as W&B's do, so a clip past the ingest's 25 MB per medium fails at
the call that made it, with its size. Libraries, imported only when used: the standard library's
`wave` writes WAV; soundfile (libsndfile, wheels with the library inside) writes FLAC; Pillow writes
GIF; PyAV (FFmpeg's libraries in its wheels, no ffmpeg binary or subprocess) writes MP4 (H.264) and
WebM (VP9). `pip install "pulse-tracker[media]"` brings soundfile and PyAV.

Example:
    emitter.log({"speech": emitter.Audio(wave, sample_rate=16000, caption="epoch 3"),
                 "rollout": emitter.Video(frames, fps=8, format="mp4")})  # frames: T x C x H x W
"""

from __future__ import annotations

import io
import os
import tempfile
import wave
from fractions import Fraction
from typing import Any

from .media import Encoded, _to_uint8, as_numpy, read_file, read_media_file

AUDIO_FORMATS = {"wav": "audio/wav", "flac": "audio/flac"}
VIDEO_FORMATS = {"gif": "image/gif", "mp4": "video/mp4", "webm": "video/webm"}
VIDEO_CODECS = {"mp4": ("libx264", "mp4"), "webm": ("libvpx-vp9", "webm")}


def require(module: str, package: str, what: str) -> Any:
    """Import `module` or say which pip install brings it."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        raise ImportError(f"{what} needs the {package} package: pip install {package} "
                          "(or pip install \"pulse-tracker[media]\")") from None


class Audio(Encoded):
    """Sound: from a numpy array or tensor (samples, or samples x channels) with its `sample_rate`,
    or from a .wav, .flac, .mp3 or .ogg file (stored as it is).

    Floats are taken in [-1, 1] (clipped) and stored as 16-bit PCM, as W&B stores them; int16 and
    int32 samples are stored exactly, at their width. `format` is "wav" (the standard library) or
    "flac" (lossless and smaller; needs soundfile).

    Example:
        emitter.log({"sample": emitter.Audio(np.sin(np.linspace(0, 880 * np.pi, 16000)), sample_rate=16000)})
    """

    kind = "audio"

    def __init__(self, data_or_path: Any, sample_rate: int | None = None, caption: str | None = None,
                 format: str = "wav") -> None:
        self.caption = caption or ""
        if isinstance(data_or_path, (str, os.PathLike)):
            path = os.fspath(data_or_path)
            self._set(*read_media_file(path, "audio"), f"audio file {path}")
            self.sample_rate = sample_rate or 0
            return
        if format not in AUDIO_FORMATS:
            raise ValueError(f"Audio format must be one of {', '.join(AUDIO_FORMATS)}, not {format!r}")
        if not sample_rate or int(sample_rate) != sample_rate or not 1 <= sample_rate <= 1_000_000:
            raise ValueError("Audio from an array needs sample_rate, a whole number of samples per second")
        self.sample_rate = int(sample_rate)
        samples = _pcm(as_numpy(data_or_path))
        data = _wav(samples, self.sample_rate) if format == "wav" else _flac(samples, self.sample_rate)
        self._set(data, AUDIO_FORMATS[format], f"audio of {len(samples):,} samples")
        self.duration = len(samples) / self.sample_rate

    def __repr__(self) -> str:
        return f"<Audio {self.mime} {len(self._data):,} bytes>"


def _pcm(a):
    """samples (N or N x C) -> int16 or int32 N x C, as stored."""
    import numpy as np

    if a.ndim == 1:
        a = a[:, None]
    if a.ndim != 2 or not a.size or a.shape[1] > 32:
        raise ValueError(f"audio needs shape (samples,) or (samples, channels); got {a.shape}")
    if a.dtype in (np.int16, np.int32):
        return np.ascontiguousarray(a)
    if a.dtype.kind not in "fiub":
        raise ValueError(f"audio samples of dtype {a.dtype} are not numbers")
    if a.dtype.kind in "iub":
        raise ValueError(f"integer audio must be int16 or int32 (got {a.dtype}); floats are taken in [-1, 1]")
    if not np.isfinite(a).all():
        raise ValueError("audio samples must be finite (NaN or Inf found)")
    return np.rint(np.clip(a, -1.0, 1.0) * 32767).astype(np.int16)


def _wav(samples, rate: int) -> bytes:
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as w:
        w.setnchannels(samples.shape[1])
        w.setsampwidth(samples.dtype.itemsize)
        w.setframerate(rate)
        w.writeframes(samples.astype(samples.dtype.newbyteorder("<")).tobytes())
    return buffer.getvalue()


def _flac(samples, rate: int) -> bytes:
    soundfile = require("soundfile", "soundfile", "Audio(format='flac')")
    if samples.dtype.itemsize > 3:
        raise ValueError("FLAC holds at most 24-bit samples; log int32 audio as format='wav'")
    buffer = io.BytesIO()
    soundfile.write(buffer, samples, rate, format="FLAC", subtype="PCM_16")
    return buffer.getvalue()


class Video(Encoded):
    """A clip: from a numpy array or tensor of frames, T x C x H x W (or B x T x C x H x W, tiled in a
    grid as W&B does; C is 1, 3 or 4, alpha dropped), or from a .mp4, .webm, .gif or .ogv file.

    Pixel values as for `Image` (uint8, or floats scaled to 0..255). `format` "gif" (the default,
    as in W&B; exact for frames of at most 256 colours, its delay rounded to 10 ms), "mp4" (H.264,
    yuv420p so every browser plays it; lossy, odd sizes padded by one edge pixel) or "webm" (VP9).
    `fps` defaults to 4.

    Example:
        emitter.log({"episode": emitter.Video(frames, fps=30, format="mp4")})
    """

    kind = "video"

    def __init__(self, data_or_path: Any, caption: str | None = None, fps: float | None = None,
                 format: str | None = None) -> None:
        self.caption = caption or ""
        if isinstance(data_or_path, (str, os.PathLike)):
            path = os.fspath(data_or_path)
            self._set(*read_media_file(path, "video"), f"video file {path}")
            self.fps = fps or 0
            return
        format = format or "gif"
        if format not in VIDEO_FORMATS:
            raise ValueError(f"Video format must be one of {', '.join(VIDEO_FORMATS)}, not {format!r}")
        self.fps = fps or 4
        if not 0 < self.fps <= 1000:
            raise ValueError(f"fps must be in (0, 1000], not {fps}")
        frames = _frames(as_numpy(data_or_path), even=format != "gif")
        self.height, self.width = frames.shape[1:3]
        data = _gif(frames, self.fps) if format == "gif" else _encode_av(frames, self.fps, format)
        self._set(data, VIDEO_FORMATS[format], f"a video of {len(frames)} frames of {self.width}x{self.height}")

    def __repr__(self) -> str:
        return f"<Video {self.width}x{self.height} {self.mime} {len(self._data):,} bytes>"


def _frames(a, even: bool):
    """T x C x H x W or B x T x C x H x W -> uint8 T x H x W x 3 (padded to even sizes if `even`)."""
    import numpy as np

    if a.ndim == 5:  # a batch of clips, tiled as W&B tiles them: rows of a power-of-two grid
        b, t, c, h, w = a.shape
        n = 1 << (b - 1).bit_length()
        a = np.concatenate([a, np.zeros((n - b, t, c, h, w), a.dtype)]) if n > b else a
        rows = 1 << ((n.bit_length() - 1) // 2)
        a = a.reshape(rows, n // rows, t, c, h, w).transpose(2, 3, 0, 4, 1, 5).reshape(t, c, rows * h, -1)
    if a.ndim != 4 or a.shape[1] not in (1, 3, 4) or 0 in a.shape:
        raise ValueError(f"a video needs frames T x C x H x W (C in 1, 3, 4) or B x T x C x H x W; got {a.shape}")
    a = _to_uint8(a.transpose(0, 2, 3, 1))
    if a.shape[-1] == 1:
        a = np.repeat(a, 3, axis=-1)
    a = a[..., :3]
    if even and (a.shape[1] % 2 or a.shape[2] % 2):  # yuv420p halves the chroma planes
        a = np.pad(a, ((0, 0), (0, a.shape[1] % 2), (0, a.shape[2] % 2), (0, 0)), mode="edge")
    return np.ascontiguousarray(a)


def _gif(frames, fps: float) -> bytes:
    from PIL import Image as PILImage

    # An adaptive palette per frame: exact when a frame has at most 256 colours.
    images = [PILImage.fromarray(f).quantize(colors=256, method=PILImage.Quantize.MEDIANCUT, dither=0)
              for f in frames]
    buffer = io.BytesIO()
    images[0].save(buffer, format="GIF", save_all=True, append_images=images[1:], loop=0,
                   duration=max(10, int(round(1000 / fps, -1))), optimize=False, disposal=1)
    return buffer.getvalue()


def _encode_av(frames, fps: float, format: str) -> bytes:
    av = require("av", "av", f"Video(format={format!r})")
    codec, container_format = VIDEO_CODECS[format]
    # A file, not memory: MP4's faststart (the index first, so a browser plays before the end arrives)
    # rewrites the file once it is complete.
    with tempfile.TemporaryDirectory(prefix="pulse-video-") as folder:
        path = os.path.join(folder, f"clip.{format}")
        with av.open(path, mode="w", format=container_format,
                     options={"movflags": "+faststart"} if format == "mp4" else {}) as container:
            stream = container.add_stream(codec, rate=Fraction(fps).limit_denominator(1001))
            stream.width, stream.height = frames.shape[2], frames.shape[1]
            stream.pix_fmt = "yuv420p"
            stream.options = {"crf": "18"} if format == "mp4" else {"crf": "24", "b": "0"}
            for frame in frames:
                container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
            container.mux(stream.encode())
        return read_file(path)
