"""Settings dataclasses: built from plain data strictly, checked on construction, written back as data.

Every settings dataclass of fomm_kp (:class:`fomm_kp.config.Config` and its parts,
:class:`~fomm_kp.config.LocalizeConfig`, ``FeatureConfig``, ``StudentConfig``, ``DistillConfig``,
``ClassifierOptions``) is frozen and validates its values in ``__post_init__`` with :func:`check`,
so a config built in Python is checked as one read from YAML, a checkpoint or an exported file.
:func:`from_data` is the one loader: unknown keys and values of the wrong type are errors, and
every error is one line naming the key (dotted, ``train.batch_size``) and what it may be.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

from fomm_kp.errors import FommError

__all__ = [
    "InvalidSetting",
    "Rule",
    "integer",
    "number",
    "flag",
    "text",
    "one_of",
    "each",
    "SEED",
    "FRACTION",
    "check",
    "refuse",
    "from_data",
    "to_data",
]

T = TypeVar("T")


class InvalidSetting(FommError):
    """A setting outside what it may be; the message names the key and the allowed values."""

    def __init__(self, key: str, allowed: str, value: Any, owner: str = "") -> None:
        self.key, self.allowed, self.value, self.owner = key, allowed, value, owner
        super().__init__(f"{owner + '.' if owner else ''}{key} must be {allowed}, got {value!r}")


@dataclass(frozen=True)
class Rule:
    """What one value may be: a kind (``int``, ``float``, ``bool``, ``str``), optional bounds (numbers
    are finite) or choices; with ``items`` the value is a sequence of at least ``items`` such values."""

    kind: type
    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    choices: tuple[Any, ...] = ()
    items: int = 0

    def _one_allowed(self, value: Any) -> bool:
        if self.choices:
            return value in self.choices
        if self.kind is bool:
            return isinstance(value, bool)
        if self.kind is str:
            return isinstance(value, str)
        number_types = (int,) if self.kind is int else (int, float)
        if isinstance(value, bool) or not isinstance(value, number_types) or not math.isfinite(value):
            return False
        if self.low is not None and (value <= self.low if self.low_open else value < self.low):
            return False
        return self.high is None or (value < self.high if self.high_open else value <= self.high)

    def allows(self, value: Any) -> bool:
        if not self.items:
            return self._one_allowed(value)
        return (isinstance(value, (tuple, list)) and len(value) >= self.items
                and all(self._one_allowed(v) for v in value))

    def describe(self) -> str:
        if self.choices:
            one = "one of " + ", ".join(repr(c) for c in self.choices)
        elif self.kind is bool:
            one = "true or false"
        elif self.kind is str:
            one = "a string"
        else:
            one = ("an integer" if self.kind is int else "a finite number") + self._bounds()
        return f"a list of at least {self.items} values, each {one}" if self.items else one

    def _bounds(self) -> str:
        if self.low is not None and self.high is not None:
            return f" in {'(' if self.low_open else '['}{self.low:g}, {self.high:g}{')' if self.high_open else ']'}"
        if self.low is not None:
            return f" {'>' if self.low_open else '>='} {self.low:g}"
        if self.high is not None:
            return f" {'<' if self.high_open else '<='} {self.high:g}"
        return ""


def integer(low: int | None = None, high: int | None = None) -> Rule:
    """An integer (not a bool) in ``[low, high]``."""
    return Rule(int, low, high)


def number(low: float | None = None, high: float | None = None, above: float | None = None,
           below: float | None = None) -> Rule:
    """A finite number in ``[low, high]``; ``above``/``below`` give open bounds instead."""
    return Rule(float, above if above is not None else low, below if below is not None else high,
                low_open=above is not None, high_open=below is not None)


def flag() -> Rule:
    return Rule(bool)


def text() -> Rule:
    return Rule(str)


def one_of(*choices: Any) -> Rule:
    return Rule(object, choices=tuple(choices))


def each(rule: Rule, at_least: int = 1) -> Rule:
    """A sequence of at least ``at_least`` values that ``rule`` allows."""
    return dataclasses.replace(rule, items=at_least)


SEED = integer(0, 2**32 - 1)
FRACTION = number(0.0, 1.0)


def check(owner: Any, **rules: Rule) -> None:
    """Raise :class:`InvalidSetting` for the first named field of ``owner`` that its rule refuses."""
    for name, rule in rules.items():
        value = getattr(owner, name)
        if not rule.allows(value):
            raise InvalidSetting(name, rule.describe(), value, type(owner).__name__)


def refuse(owner: Any, key: str, allowed: str) -> None:
    """Raise :class:`InvalidSetting` for a field of ``owner`` that breaks a rule between fields."""
    raise InvalidSetting(key, allowed, getattr(owner, key), type(owner).__name__)


# --------------------------------------------------------------------------------------------
# Plain data -> dataclass, strictly


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def _convert_tuple(value: Any, args: tuple, where: str) -> tuple:
    if not isinstance(value, (list, tuple)):
        raise FommError(f"{where}: expected a list, got {type(value).__name__} {value!r}")
    if len(args) == 2 and args[1] is Ellipsis:
        return tuple(_convert(v, args[0], f"{where}[{i}]") for i, v in enumerate(value))
    if args and len(value) != len(args):
        raise FommError(f"{where}: expected a list of {len(args)} values, got {len(value)}")
    return tuple(_convert(v, t, f"{where}[{i}]") for i, (v, t) in enumerate(zip(value, args or (Any,) * len(value))))


def _convert_scalar(value: Any, tp: Any, where: str) -> Any:
    if tp is bool and not isinstance(value, bool):
        raise FommError(f"{where}: expected true/false, got {type(value).__name__} {value!r}")
    if tp is int and (isinstance(value, bool) or not isinstance(value, int)):
        raise FommError(f"{where}: expected an integer, got {type(value).__name__} {value!r}")
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise FommError(f"{where}: expected a number, got {type(value).__name__} {value!r}")
        return float(value)
    if tp is str and not isinstance(value, str):
        raise FommError(f"{where}: expected a string, got {type(value).__name__} {value!r}")
    if tp not in (bool, int, float, str, Any):
        raise FommError(f"{where}: unsupported settings type {tp}")
    return value


def _convert(value: Any, tp: Any, where: str) -> Any:
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if dataclasses.is_dataclass(tp):
        return _build(tp, value, where)
    if origin is Literal:
        if value not in args:
            raise FommError(f"{where}: expected one of {list(args)}, got {value!r}")
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        options = [a for a in args if a is not type(None)]
        for option in options:
            try:
                return _convert(value, option, where)
            except FommError:
                continue
        raise FommError(f"{where}: {value!r} matches none of {[_type_name(a) for a in args]}")
    if origin is tuple:
        return _convert_tuple(value, args, where)
    return _convert_scalar(value, tp, where)


def _build(cls: type[T], data: Any, where: str) -> T:
    if not isinstance(data, dict):
        raise FommError(f"{where or 'settings'}: expected a mapping for {cls.__name__}, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(data) - names)
    if unknown:
        key = f"{where}.{unknown[0]}" if where else unknown[0]
        raise FommError(f"unknown key '{key}' (known: {', '.join(sorted(names))})")
    kwargs = {key: _convert(value, hints[key], f"{where}.{key}" if where else key) for key, value in data.items()}
    try:
        return cls(**kwargs)
    except InvalidSetting as exc:
        raise InvalidSetting(exc.key, exc.allowed, exc.value, where) from None


def from_data(cls: type[T], data: Any, source: str = "") -> T:
    """Build the settings dataclass ``cls`` from plain data (``None``: all defaults).

    Any subset of keys may be given; nested dataclasses take mappings. An unknown key, a value of
    the wrong type or out of range is a :class:`FommError` of one line that names ``source`` and
    the dotted key.
    """
    try:
        return _build(cls, {} if data is None else data, "")
    except FommError as exc:
        message = str(exc).removeprefix(": ")
        raise FommError(f"{source}: {message}" if source else message) from None


def to_data(value: Any) -> Any:
    """Plain data (dicts, lists, numbers, strings) of a settings dataclass, for YAML, JSON or a checkpoint."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_data(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, (tuple, list)):
        return [to_data(v) for v in value]
    return value
