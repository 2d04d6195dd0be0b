"""Dataclasses <-> JSON-able dicts, driven by their type hints.

The ticket aggregate is stored as one JSON snapshot next to the columns that queries need; this
module turns the aggregate (enums, aware datetimes, nested dataclasses, lists and tuples) into
plain JSON values and back, without a schema written twice.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import types
import typing
from collections.abc import Mapping
from functools import cache
from typing import Any, TypeVar

T = TypeVar("T")


def to_json(value: Any) -> Any:
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, dt.datetime):
        return value.isoformat()
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_json(getattr(value, f.name)) for f in _fields(type(value))}
    if isinstance(value, list | tuple):
        return [to_json(v) for v in value]
    if isinstance(value, Mapping):
        return {str(k): to_json(v) for k, v in value.items()}
    return value


def from_json(kind: Any, value: Any) -> Any:
    """Rebuild a value of type ``kind`` from what :func:`to_json` made of it."""
    origin = typing.get_origin(kind)
    if origin in (typing.Union, types.UnionType):
        if value is None:
            return None
        return from_json(next(a for a in typing.get_args(kind) if a is not type(None)), value)
    if origin is list:
        (item_kind,) = typing.get_args(kind)
        return [from_json(item_kind, v) for v in value]
    if origin is tuple:
        parts = typing.get_args(kind)
        if len(parts) == 2 and parts[1] is Ellipsis:
            return tuple(from_json(parts[0], v) for v in value)
        return tuple(from_json(a, v) for a, v in zip(parts, value, strict=True))
    if origin in (dict, Mapping) or kind in (dict, Any):
        return dict(value) if isinstance(value, Mapping) else value
    if isinstance(kind, type) and issubclass(kind, enum.Enum):
        return kind(value)
    if kind is dt.datetime:
        return dt.datetime.fromisoformat(value)
    if isinstance(kind, type) and dataclasses.is_dataclass(kind):
        hints = _hints(kind)
        return kind(
            **{
                f.name: from_json(hints[f.name], value[f.name])
                for f in _fields(kind)
                if f.name in value
            }
        )
    return value


@cache
def _fields(kind: type) -> tuple[dataclasses.Field[Any], ...]:
    return tuple(f for f in dataclasses.fields(kind) if not f.metadata.get("transient"))


@cache
def _hints(kind: type) -> dict[str, Any]:
    return typing.get_type_hints(kind)


def load(kind: type[T], value: Mapping[str, Any]) -> T:
    result: T = from_json(kind, value)
    return result
