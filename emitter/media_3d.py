"""3D data for `log()`: `Object3D`, a point cloud (W&B's `.pts.json`) or a 3D model file.

Point clouds are what PointNet-style training logs: N x 3 (x, y, z), N x 4 (x, y, z, category,
coloured by index) or N x 6 (x, y, z, r, g, b with 0..255) arrays, stored as W&B stores them, a
JSON list of points (pulse/media_schema.py). Floats are written exactly (shortest round-trip
form), so the points read back are the points logged.

Example:
    emitter.log({"cloud": emitter.Object3D(points)})  # points: N x 3, N x 4 or N x 6
"""

from __future__ import annotations

import json
import os
from typing import Any

from pulse.media_schema import EXTENSIONS, MIMES, POINTS_MIME, points_problem

from .media import Encoded, as_numpy, plain, read_media_file

FILE_TYPES = {ending.lstrip("."): mime for ending, mime in EXTENSIONS.items() if mime in MIMES["object3d"]}


class Object3D(Encoded):
    """A point cloud or a 3D model: a numpy array or tensor (N x 3, N x 4 or N x 6), W&B's scene dict
    (`{"type": "lidar/beta", "points": ..., "boxes": ..., "vectors": ...}`), the path of a .pts.json,
    .obj, .glb, .gltf or .stl file, or a file object with `file_type` naming its format.

    Example:
        emitter.log({"scan": emitter.Object3D(np.c_[xyz, labels])})
    """

    kind = "object3d"

    def __init__(self, data_or_path: Any, caption: str | None = None, file_type: str | None = None,
                 **_ignored: Any) -> None:
        self.caption = caption or ""
        check = True  # a point cloud from a file or a dict: its points are checked as the ingest will
        if isinstance(data_or_path, (str, os.PathLike)):
            path = os.fspath(data_or_path)
            data, mime = read_media_file(path, "object3d")
        elif hasattr(data_or_path, "read"):
            if file_type not in FILE_TYPES:
                raise ValueError(f"Object3D from a file object needs file_type, one of {', '.join(FILE_TYPES)}")
            if hasattr(data_or_path, "seek"):
                data_or_path.seek(0)
            data, mime = data_or_path.read(), FILE_TYPES[file_type]
            data = data.encode("utf-8") if isinstance(data, str) else data
        elif isinstance(data_or_path, dict):
            data, mime = _scene(data_or_path), POINTS_MIME
        else:
            data, mime, check = _points(data_or_path), POINTS_MIME, False  # checked as an array already
        if mime == POINTS_MIME and check and (problem := points_problem(json.loads(data))):
            raise ValueError(problem)
        self._set(data, mime, "a 3D object")

    @classmethod
    def from_numpy(cls, data: Any) -> Object3D:
        """W&B's spelling: a point cloud from an N x 3, N x 4 or N x 6 array."""
        return cls(data)

    @classmethod
    def from_file(cls, data_or_path: Any, file_type: str | None = None) -> Object3D:
        return cls(data_or_path, file_type=file_type)

    @classmethod
    def from_point_cloud(cls, points: Any, boxes: Any = (), vectors: Any = (),
                         point_cloud_type: str = "lidar/beta") -> Object3D:
        """W&B's scene: points plus boxes and vectors, as the dashboard may draw them."""
        return cls({"type": point_cloud_type, "points": points, "boxes": boxes, "vectors": vectors})

    def __repr__(self) -> str:
        return f"<Object3D {self.mime} {len(self._data):,} bytes>"


def _points(data: Any) -> bytes:
    import numpy as np

    a = as_numpy(data)
    if a.ndim != 2 or a.shape[1] not in (3, 4, 6) or a.dtype.kind not in "iuf":
        raise ValueError("a point cloud needs an N x 3 (x, y, z), N x 4 (x, y, z, category) or "
                         f"N x 6 (x, y, z, r, g, b) array of numbers; got shape {a.shape}, dtype {a.dtype}")
    if not np.isfinite(a).all():
        raise ValueError("point cloud coordinates must be finite (NaN or Inf found)")
    return json.dumps(a.tolist(), separators=(",", ":")).encode("utf-8")


def _scene(scene: dict) -> bytes:
    if scene.get("type") != "lidar/beta":
        raise ValueError(f"an Object3D scene must have type 'lidar/beta', not {scene.get('type')!r}")
    doc = {"type": "lidar/beta"}
    for part in ("points", "boxes", "vectors"):
        value = scene.get(part, [])
        doc[part] = plain(value)
    return json.dumps(doc, separators=(",", ":")).encode("utf-8")
