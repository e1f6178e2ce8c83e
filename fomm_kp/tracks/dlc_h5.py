"""DeepLabCut ``.h5`` tables read as numbers and text only: nothing in the file is ever unpickled.

pandas (through PyTables) unpickles two things when it reads an HDF5 table: object columns (stored
as pickles) and the table's metadata attributes (column names, index layout), which PyTables
stores as pickles too. A file from a collaborator can therefore run code on ``pandas.read_hdf``.
This module reads the same files with h5py, which never unpickles: numeric blocks as arrays,
fixed-width strings as text, and the metadata pickles through :func:`literal_pickle`, a decoder
that understands only the opcodes that build strings, numbers, lists, tuples and dicts and
refuses everything else (no imports, no calls, no object construction).

Both pandas layouts that DeepLabCut writes are read: ``table`` (``format="table"``, the
``df_with_missing`` files of DeepLabCut 2.0–2.1) and ``fixed`` (pandas' default, DeepLabCut 2.2+
labelled data with a three-level image index).
"""

from __future__ import annotations

import os
import pickletools
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from fomm_kp.errors import FommError

__all__ = ["DlcTable", "read_dlc_h5", "literal_pickle"]

# Opcodes that only push literals or build containers from what is already on the stack.
_LITERALS = {
    "INT", "BININT", "BININT1", "BININT2", "LONG", "LONG1", "LONG4", "FLOAT", "BINFLOAT",
    "STRING", "BINSTRING", "SHORT_BINSTRING", "UNICODE", "BINUNICODE", "SHORT_BINUNICODE",
    "BINUNICODE8", "BINBYTES", "SHORT_BINBYTES", "BINBYTES8",
}
_CONSTANTS = {"NONE": None, "NEWTRUE": True, "NEWFALSE": False}
_MEMO_PUT = {"PUT", "BINPUT", "LONG_BINPUT"}
_MEMO_GET = {"GET", "BINGET", "LONG_BINGET"}


class _Mark:
    """The MARK opcode's place on the stack."""


def _pop_to_mark(stack: list) -> list:
    for i in range(len(stack) - 1, -1, -1):
        if stack[i] is _Mark:
            items = stack[i + 1:]
            del stack[i:]
            return items
    raise ValueError("no MARK on the stack")


_EMPTY = {"EMPTY_LIST": list, "EMPTY_TUPLE": tuple, "EMPTY_DICT": dict}


def _build(name: str, stack: list) -> bool:
    """Apply a container opcode to the stack; False when ``name`` is not one."""
    if name == "LIST":
        stack.append(_pop_to_mark(stack))
    elif name == "TUPLE":
        stack.append(tuple(_pop_to_mark(stack)))
    elif name in ("TUPLE1", "TUPLE2", "TUPLE3"):
        n = int(name[-1])
        items = tuple(stack[-n:])
        del stack[-n:]
        stack.append(items)
    elif name == "DICT":
        items = _pop_to_mark(stack)
        stack.append(dict(zip(items[::2], items[1::2])))
    elif name == "APPEND":
        value = stack.pop()
        _container(stack, list).append(value)
    elif name == "APPENDS":
        items = _pop_to_mark(stack)
        _container(stack, list).extend(items)
    elif name == "SETITEM":
        value, key = stack.pop(), stack.pop()
        _container(stack, dict)[key] = value
    elif name == "SETITEMS":
        items = _pop_to_mark(stack)
        _container(stack, dict).update(zip(items[::2], items[1::2]))
    else:
        return False
    return True


def literal_pickle(data: bytes) -> Any:
    """Decode a pickle that holds only literals and containers, without unpickling it.

    Raises :class:`ValueError` on any opcode that would import, call or build an object.
    """
    stack: list = []
    memo: dict[int, Any] = {}
    for opcode, arg, _ in pickletools.genops(data):
        name = opcode.name
        if name in ("PROTO", "FRAME"):
            continue
        if name == "STOP":
            if len(stack) != 1:
                raise ValueError("malformed pickle")
            return stack[0]
        if name in _LITERALS:
            stack.append(arg)
        elif name in _CONSTANTS:
            stack.append(_CONSTANTS[name])
        elif name == "MARK":
            stack.append(_Mark)
        elif name in _EMPTY:
            stack.append(_EMPTY[name]())
        elif name in _MEMO_PUT:
            memo[arg] = stack[-1]
        elif name == "MEMOIZE":
            memo[len(memo)] = stack[-1]
        elif name in _MEMO_GET:
            stack.append(memo[arg])
        elif name == "POP":
            stack.pop()
        elif name == "DUP":
            stack.append(stack[-1])
        elif not _build(name, stack):
            raise ValueError(f"pickle opcode {name} is not plain data")
    raise ValueError("pickle has no STOP")


def _container(stack: list, kind: type) -> Any:
    if not stack or not isinstance(stack[-1], kind):
        raise ValueError("malformed pickle")
    return stack[-1]


@dataclass(frozen=True)
class DlcTable:
    """A DeepLabCut table: ``values`` float64 ``(rows, columns)``, one tuple of level values per
    column (``column_names`` names the levels: scorer, [individuals,] bodyparts, coords), and one
    text (or integer) label per row (image path, or frame number)."""

    values: np.ndarray
    columns: list[tuple[str, ...]]
    column_names: list[str]
    index: list[Any]


def _text(value: Any) -> str:
    if isinstance(value, (bytes, np.bytes_)):
        return bytes(value).decode("utf-8", errors="replace")
    return str(value)


def _attr(node: Any, name: str, default: Any = None) -> Any:
    return node.attrs[name] if name in node.attrs else default


def _meta(node: Any, name: str, path: Path) -> Any:
    raw = _attr(node, name)
    if raw is None:
        raise FommError(f"{path}: the table has no '{name}' attribute")
    if isinstance(raw, np.ndarray):
        raw = raw.tobytes()
    try:
        return literal_pickle(bytes(raw))
    except ValueError as exc:
        raise FommError(f"{path}: refusing to read its '{name}' metadata ({exc}); "
                        "only plain text and numbers are read from DeepLabCut files") from None


def _numeric(array: np.ndarray, path: Path, what: str) -> np.ndarray:
    if array.dtype.kind not in "fiub":
        raise FommError(f"{path}: {what} is not numeric (dtype {array.dtype}); refusing object or pickled "
                        "columns (export the table as CSV instead)")
    return array.astype(np.float64)


def _axis_labels(group: Any, prefix: str, path: Path) -> tuple[list[Any], list[str]]:
    """Labels of one axis of a pandas ``fixed`` frame: a plain index or a MultiIndex."""
    variety = _text(_attr(group, f"{prefix}_variety", b"regular"))
    if variety == "regular":
        node = group[prefix]
        data = node[()]
        if data.dtype.kind == "S":
            return [_text(v) for v in data], [_text(_attr(node, "name", b""))]
        return [v.item() for v in _numeric(data, path, f"index '{prefix}'").astype(np.int64)], [""]
    if variety != "multi":
        raise FommError(f"{path}: unsupported pandas index layout '{variety}'")
    levels = int(_attr(group, f"{prefix}_nlevels", 0))
    columns, names = [], []
    for i in range(levels):
        node = group[f"{prefix}_level{i}"]
        values = node[()]
        if values.dtype.kind not in "Sfiu":
            raise FommError(f"{path}: index level {i} of '{prefix}' holds objects; refusing to read it")
        labels = group[f"{prefix}_label{i}"][()].astype(np.int64)
        texts = [_text(v) if values.dtype.kind == "S" else values[j].item() for j, v in enumerate(values)]
        columns.append([texts[j] if j >= 0 else "" for j in labels])
        raw_name = _text(_attr(node, "name", b""))
        names.append("" if raw_name == "N." else raw_name)
    return [tuple(row) for row in zip(*columns)], names


def _read_fixed(group: Any, path: Path) -> DlcTable:
    blocks = int(_attr(group, "nblocks", 0))
    if blocks < 1:
        raise FommError(f"{path}: the table has no data blocks")
    columns, _ = _axis_labels(group, "axis0", path)
    index, _ = _axis_labels(group, "axis1", path)
    position = {col: i for i, col in enumerate(columns)}
    values = np.full((len(index), len(columns)), np.nan)
    names: list[str] = []
    for b in range(blocks):
        data = group[f"block{b}_values"]
        if data.dtype.kind == "O" or data.dtype.metadata:
            raise FommError(f"{path}: data block {b} holds objects (pickled); refusing to read it")
        block = _numeric(data[()], path, f"data block {b}")
        items, names = _axis_labels(group, f"block{b}_items", path)
        if block.shape != (len(index), len(items)):
            raise FommError(f"{path}: data block {b} has shape {block.shape}, expected {(len(index), len(items))}")
        for j, item in enumerate(items):
            if item not in position:
                raise FommError(f"{path}: data block {b} names a column that is not in the table")
            values[:, position[item]] = block[:, j]
    return DlcTable(values, [tuple(_text(v) for v in c) for c in columns], names, index)


def _read_table(group: Any, path: Path) -> DlcTable:
    table = group["table"]
    data = table[()]
    fields = data.dtype.names or ()
    if "index" not in fields:
        raise FommError(f"{path}: the table has no index column")
    info = _meta(group, "info", path)
    names = []
    if isinstance(info, dict):
        column_info = info.get(1, {})
        names = [str(n) for n in column_info.get("names", [])] if isinstance(column_info, dict) else []
    blocks = _meta(group, "values_cols", path)
    index_data = data["index"]
    index = [_text(v) for v in index_data] if index_data.dtype.kind == "S" else [
        v.item() for v in _numeric(index_data, path, "the index").astype(np.int64)]
    columns: list[tuple[str, ...]] = []
    parts: list[np.ndarray] = []
    for block in blocks:
        block = str(block)
        if block not in fields:
            raise FommError(f"{path}: the table has no column block '{block}'")
        kinds = _meta(table, f"{block}_kind", path)
        values = _numeric(data[block], path, f"column block '{block}'")
        values = values.reshape(len(index), -1)
        if len(kinds) != values.shape[1]:
            raise FommError(f"{path}: column block '{block}' names {len(kinds)} columns but holds {values.shape[1]}")
        columns += [tuple(str(v) for v in (k if isinstance(k, tuple) else (k,))) for k in kinds]
        parts.append(values)
    if not parts:
        raise FommError(f"{path}: the table has no data columns")
    return DlcTable(np.concatenate(parts, axis=1), columns, names, index)


def read_dlc_h5(path: str | os.PathLike) -> DlcTable:
    """Read a DeepLabCut ``.h5`` (pandas ``table`` or ``fixed`` layout) without unpickling anything."""
    import h5py

    path = Path(path)
    try:
        handle = h5py.File(path, "r")
    except OSError as exc:
        raise FommError(f"cannot read {path} as HDF5: {exc}") from None
    with handle:
        groups = [k for k in handle.keys() if isinstance(handle[k], h5py.Group)]
        key = next((k for k in ("df_with_missing", "keypoints", "df") if k in groups), None)
        if key is None:
            if len(groups) != 1:
                raise FommError(f"{path}: expected one pandas table in the file, found groups {groups}")
            key = groups[0]
        group = handle[key]
        kind = _text(_attr(group, "pandas_type", b""))
        try:
            if kind == "frame":
                return _read_fixed(group, path)
            if kind == "frame_table":
                return _read_table(group, path)
        except KeyError as exc:
            raise FommError(f"{path}: incomplete pandas table ({exc})") from None
        raise FommError(f"{path}: not a pandas DataFrame table (pandas_type '{kind}')")
