"""`Table`: rows and columns for `log()`, whose cells may hold media, with W&B's API.

Logged as one `table` medium (the document of pulse/media_schema.py) plus one medium per distinct
media cell, under the key `_cells/<key>` at the same step; the document references each by its
sha256. `log()` takes a snapshot: rows added afterwards belong to the next `log()`.

Example:
    table = emitter.Table(columns=["id", "image", "label", "score"])
    for i, (x, y, p) in enumerate(samples):
        table.add_data(i, emitter.Image(x), y, p)
    emitter.log({"predictions": table})
"""

from __future__ import annotations

import datetime
from typing import Any

from pulse.limits import MAX_KEY_BYTES
from pulse.media_schema import CELL_KINDS, TABLE_MIME, cell_key, dumps, table_problem

from .media import BYTES_PER_VALUE, File, Logged
from .values import is_tensor

DEFAULT_COLUMNS = ["Input", "Output", "Expected"]  # W&B's, when none are given
_PYTHON_TYPES = {int: "number", float: "number", str: "string", bool: "bool", list: "json", dict: "json"}


class Table(File):
    """A table: `Table(columns, data)` (a list of rows), `Table(dataframe=df)`, or `add_data` row by row.

    Cells are numbers, strings, bools, None, lists and dicts of those, numpy and 0-dim torch
    values, dates (stored as ISO text), or media (`Image`, `Audio`, `Video`, `Html`, `Object3D`).
    Each column keeps one type unless `allow_mixed_types`; `dtype` (one type, or one per column)
    fixes them ahead; `optional=False` (or a list of bools) refuses None. A cell that breaks this
    raises TypeError at `add_data`, naming the column.

    Example:
        table = emitter.Table(columns=["x", "y"], data=[[0, 0.5], [1, 0.25]])
        table.add_column("ok", [True, False])
    """

    kind = "table"
    mime = TABLE_MIME
    listable = False  # its cells' rows are numbered per table

    def __init__(self, columns: list[str] | None = None, data: list | None = None, rows: list | None = None,
                 dataframe: Any = None, dtype: Any = None, optional: bool | list[bool] = True,
                 allow_mixed_types: bool = False, log_mode: str | None = None) -> None:
        data = data if data is not None else rows
        if dataframe is not None:
            columns = [str(c) for c in dataframe.columns] if columns is None else columns
            data = _frame_rows(dataframe)
        elif hasattr(data, "tolist") and hasattr(data, "ndim"):  # a 2-D numpy array
            data = data.tolist()
        self.columns: list[str] = [str(c) for c in (DEFAULT_COLUMNS if columns is None else columns)]
        if len(set(self.columns)) != len(self.columns):
            raise ValueError(f"Table columns must be unique: {self.columns}")
        self.allow_mixed_types = allow_mixed_types
        self._types = [_dtype(d) for d in _per_column(dtype, self.columns, "dtype")]
        self._optional = [bool(o) for o in _per_column(optional, self.columns, "optional")]
        self.data: list[list] = []
        self._doc: bytes | None = None
        for row in data or ():
            self.add_data(*row)

    def add_data(self, *data: Any) -> None:
        """Add one row, a cell per column. Example: `table.add_data(3, emitter.Image(x), "cat")`."""
        if len(data) != len(self.columns):
            raise ValueError(f"a row of this table has {len(self.columns)} cells ({', '.join(self.columns)}), "
                             f"not {len(data)}")
        row = [self._checked(i, value) for i, value in enumerate(data)]
        self.data.append(row)

    add_row = add_data

    def add_column(self, name: str, data: list, optional: bool = False) -> None:
        """Add a column of `data`, one value per row."""
        name = str(name)
        if name in self.columns:
            raise ValueError(f"column {name!r} is already in the table")
        data = data.tolist() if hasattr(data, "tolist") else list(data)
        if self.data and len(data) != len(self.data):
            raise ValueError(f"column {name!r} has {len(data)} values for {len(self.data)} rows")
        self.columns.append(name)
        self._types.append("")
        self._optional.append(optional)
        try:
            cells = [self._checked(len(self.columns) - 1, value) for value in data]
        except Exception:
            self.columns.pop(), self._types.pop(), self._optional.pop()
            raise
        if not self.data:
            self.data = [[] for _ in cells]
        for row, cell in zip(self.data, cells):
            row.append(cell)

    def get_column(self, name: str, convert_to: str | None = None) -> Any:
        """The values of one column; `convert_to="numpy"` gives a numpy array."""
        if name not in self.columns:
            raise KeyError(f"no column {name!r}; the columns are {self.columns}")
        i = self.columns.index(name)
        values = [row[i] for row in self.data]
        if convert_to == "numpy":
            import numpy as np

            return np.array(values)
        return values

    def get_index(self) -> list[int]:
        return list(range(len(self.data)))

    def get_dataframe(self) -> Any:
        """The table as a pandas DataFrame (media cells as their objects)."""
        import pandas as pd

        return pd.DataFrame(self.data, columns=self.columns)

    def __len__(self) -> int:
        return len(self.data)

    def __repr__(self) -> str:
        return f"<Table {len(self.data)} rows x {len(self.columns)} columns>"

    # -- checks ---------------------------------------------------------------------------------

    def _checked(self, column: int, value: Any) -> Any:
        name = self.columns[column]
        try:
            cell = _cell(value)
        except TypeError as exc:
            raise TypeError(f"column {name!r}: {exc}") from None
        kind = _type_of(cell)
        if not kind:
            if not self._optional[column]:
                raise TypeError(f"column {name!r} is not optional: None is refused")
            return cell
        expected = self._types[column]
        if expected and kind != expected and not self.allow_mixed_types:
            raise TypeError(f"column {name!r} holds {expected} values, not {kind} ({value!r:.80}); "
                            "pass allow_mixed_types=True to mix them")
        if not expected:
            self._types[column] = kind
        return cell

    # -- what log() sends -----------------------------------------------------------------------

    def _logged(self) -> Table:
        frozen = object.__new__(type(self))
        frozen.__dict__.update(self.__dict__)
        frozen.columns, frozen._types = list(self.columns), list(self._types)
        frozen.data = [list(row) for row in self.data]
        frozen._doc = None
        cells = frozen._media_cells()
        scalars = len(self.data) * len(self.columns) - len(cells)
        frozen.weight = 1 + (16 * scalars + 256 * len(cells)) // BYTES_PER_VALUE
        return frozen

    def _media_cells(self) -> list[File]:
        """Each distinct media object among the cells, in row order."""
        seen: dict[int, File] = {}
        for row in self.data:
            for cell in row:
                if isinstance(cell, File):
                    seen.setdefault(id(cell), cell)
        return list(seen.values())

    def _records(self, key: str, step: int, ts_us: int, index: int) -> list[Logged]:
        cells = cell_key(key)
        return [Logged(cells, step, ts_us, m, i) for i, m in enumerate(self._media_cells())] + \
            [Logged(key, step, ts_us, self, index)]

    def _document(self) -> dict:
        """The table document (pulse/media_schema.py); media cells become references."""
        refs: dict[int, dict] = {}
        data = []
        for r, row in enumerate(self.data):
            out = []
            for column, cell in zip(self.columns, row):
                if isinstance(cell, File):
                    if id(cell) not in refs:
                        try:
                            refs[id(cell)] = cell._ref()
                        except ValueError as exc:
                            raise ValueError(f"row {r}, column {column!r}: {exc}") from None
                    cell = refs[id(cell)]
                out.append(cell)
            data.append(out)
        doc = {"_type": "table", "columns": self.columns, "column_types": self._types, "data": data}
        if problem := table_problem(doc):
            raise ValueError(problem)
        return doc

    def _bytes(self) -> bytes:
        if self._doc is None:
            self._doc = dumps(self._document())
        return self._doc

    def _write(self, batch: Any, key: str, step: int, ts_us: int, index: int) -> None:
        if len(cell_key(key).encode("utf-8")) > MAX_KEY_BYTES and self._media_cells():
            raise ValueError(f"a table with media cells needs a key under {MAX_KEY_BYTES - 7} bytes "
                             f"(its cells go under {cell_key('')!r} + key)")
        super()._write(batch, key, step, ts_us, index)


def _frame_rows(frame: Any) -> list[tuple]:
    """A DataFrame's rows as Python values; a missing value of a column that is not numeric is None
    (pandas writes it NaN there)."""
    import pandas as pd

    columns = []
    for i in range(frame.shape[1]):
        series = frame.iloc[:, i]
        values = series.tolist()
        if not pd.api.types.is_numeric_dtype(series.dtype):
            values = [None if missing else v for v, missing in zip(values, series.isna().tolist())]
        columns.append(values)
    return list(zip(*columns))


def _per_column(value: Any, columns: list[str], what: str) -> list:
    if isinstance(value, (list, tuple)):
        if len(value) != len(columns):
            raise ValueError(f"{what} has {len(value)} entries for {len(columns)} columns")
        return list(value)
    return [value] * len(columns)


def _dtype(dtype: Any) -> str:
    """A column type of pulse/media_schema.COLUMN_TYPES from a W&B-style dtype ("" = none given)."""
    if dtype is None:
        return ""
    if dtype in _PYTHON_TYPES:
        return _PYTHON_TYPES[dtype]
    if isinstance(dtype, type) and issubclass(dtype, File) and dtype.kind in CELL_KINDS:
        return dtype.kind
    raise TypeError(f"dtype {dtype!r} is not a type a table column may have (int, float, str, bool, list, dict, "
                    "Image, Audio, Video, Html, Object3D)")


def _type_of(cell: Any) -> str:
    if cell is None:
        return ""
    if isinstance(cell, File):
        return cell.kind
    if type(cell) is bool:
        return "bool"
    if type(cell) in (int, float):
        return "number"
    return "string" if type(cell) is str else "json"


def _cell(value: Any) -> Any:
    """A cell as stored: plain JSON or a media object; TypeError for anything else."""
    if value is None or type(value) in (bool, int, float, str):
        return value
    if isinstance(value, File):
        if value.kind not in CELL_KINDS:
            raise TypeError(f"a {value.kind} cannot be a table cell (cells may hold {', '.join(CELL_KINDS)})")
        return value
    return _json(value)


def _json(value: Any) -> Any:
    if value is None or type(value) in (bool, int, float, str):
        return value
    if is_tensor(value):
        value = value.detach().cpu().numpy()
    module = type(value).__module__
    if module == "numpy" or module.startswith("numpy."):
        value = value.tolist()  # numpy scalars and arrays: Python numbers and lists
        return _json(value) if isinstance(value, (list, dict)) else value
    if isinstance(value, (datetime.date, datetime.time)):
        return value.isoformat()
    if isinstance(value, (list, tuple)):
        return [_json(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _json(v) for k, v in value.items()}
    if isinstance(value, float) or (hasattr(value, "__float__") and module.startswith("decimal")):
        return float(value)
    if module.startswith("pandas") and _is_missing(value):
        return None
    if isinstance(value, File):
        raise TypeError("media may be a cell, not inside a list or dict in a cell")
    raise TypeError(f"a cell of type {type(value).__name__} is not JSON or media")


def _is_missing(value: Any) -> bool:
    try:
        import pandas as pd

        return bool(pd.isna(value))
    except (TypeError, ValueError):
        return False

