"""Turn a msgspec ValidationError into the API's error: the field, what is valid, what was sent.

msgspec says *where* (``$.items[1].priority``) and *what kind* of mismatch; the
declared type says what would have been valid, and the request itself what was
sent. Together: ``priority must be an integer from -2147483648 to 2147483647, got
'high'``. Name and status fields answer 422 in the model's own words
(``check_name``, ``parse_state``), as SPEC asks for unknown names and status words.

This runs only when a request has already failed, so it may be slow and thorough.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import msgspec
from msgspec import inspect as mi

from ..builder import check_name
from ..errors import InvalidName, InvalidStatus
from ..states import parse_state
from .errors import ApiError, bad_request, from_exception
from .shapes import Parsed, shown

_WHERE = re.compile(r"^(?P<text>.*?)(?: - at `(?P<path>\$[^`]*)`)?$", re.DOTALL)
_SEGMENT = re.compile(r"\.([^.\[]+)|\[(\d+|\.\.\.)\]")
_MISSING = re.compile(r"^Object missing required field `(?P<field>[^`]+)`$")
_UNKNOWN = re.compile(r"^Object contains unknown field `(?P<field>[^`]+)`$")
_ABSENT = object()


@dataclass(frozen=True)
class Source:
    """What was decoded: the declared type, the raw value, and how the client spelled each field."""

    shape: Any
    raw: Any
    #: Canonical field name -> the spelling the client used (when it used an alias).
    spelled: Mapping[str, str]
    #: Other spellings each field accepts (canonical -> aliases), for the lists of valid names.
    aliases: Mapping[str, Sequence[str]]
    #: True for query parameters, False for a JSON body.
    query: bool = False


def explain(error: msgspec.ValidationError, source: Source) -> ApiError:
    """The 4xx that ``error`` means for this request."""
    match = _WHERE.match(str(error))
    assert match is not None  # the pattern matches any text
    text, path = match["text"], _segments(match["path"] or "$")
    leaf, raw = _resolve(mi.type_info(source.shape), source.raw, path)
    if missing := _MISSING.match(text):
        return bad_request(_missing(source, path, missing["field"], leaf))
    if unknown := _UNKNOWN.match(text):
        return bad_request(_unknown(source, path, unknown["field"], leaf))
    where = _where(source, path)
    if not (text.startswith("Expected") or text.startswith("Invalid enum value")):
        # The type's own rule (a Parsed value, a Struct's __post_init__) already worded it.
        return bad_request(text if not path else f"{where}: {text}")
    if isinstance(raw, str):
        extra = _extra(leaf)
        try:
            if "name_of" in extra:
                check_name(extra["name_of"], raw)
            if "status_of" in extra:
                parse_state(raw, tuple(extra["status_of"]))
        except (InvalidName, InvalidStatus) as exc:
            answer = from_exception(exc)  # the one mapping of model errors to statuses: 422
            assert answer is not None
            return answer
    got = "" if raw is _ABSENT else f", got {shown(raw)}"
    if isinstance(raw, list) and " of length " in text:
        got = f", got {len(raw)} items"
    return bad_request(f"{where} must be {describe(_narrow(leaf, raw))}{got}")


# -- paths ------------------------------------------------------------------------------------------------
def _segments(path: str) -> list[str | int]:
    segments: list[str | int] = []
    for key, index in _SEGMENT.findall(path[1:]):
        if key:
            segments.append(key)
        elif index != "...":
            segments.append(int(index))
    return segments


def _where(source: Source, path: Sequence[str | int]) -> str:
    """The field as the client knows it: ``priority``, ``kwargs.url``, ``item 2: priority``."""
    if not path:
        return "the query string" if source.query else "the request body"
    prefix = ""
    if isinstance(path[0], int):
        # Only a batch body is an array at the top: name the item by its index.
        prefix, path = f"item {path[0]}", path[1:]
        if not path:
            return prefix
        prefix += ": "
    head, *rest = path
    name = source.spelled.get(head, head) if isinstance(head, str) else f"[{head}]"
    for segment in rest:
        name += f"[{segment}]" if isinstance(segment, int) else f".{segment}"
    return prefix + name


def _resolve(info: mi.Type, raw: Any, path: Sequence[str | int]) -> tuple[mi.Type, Any]:
    """Follow ``path`` through the declared type and the raw value together."""
    for segment in path:
        info = _narrow(info, raw)
        if isinstance(info, mi.StructType) and isinstance(segment, str):
            fields = {f.encode_name: f.type for f in info.fields}
            info = fields.get(segment, mi.AnyType())
        elif isinstance(info, (mi.ListType, mi.VarTupleType)) and isinstance(segment, int):
            info = info.item_type
        elif isinstance(info, mi.DictType):
            info = info.value_type
        else:
            info = mi.AnyType()
        raw = _child(raw, segment)
    return info, raw


def _child(raw: Any, segment: str | int) -> Any:
    if isinstance(segment, int) and isinstance(raw, list) and 0 <= segment < len(raw):
        return raw[segment]
    if isinstance(segment, str) and isinstance(raw, dict):
        return raw.get(segment, _ABSENT)
    return _ABSENT


def _narrow(info: mi.Type, raw: Any) -> mi.Type:
    """Through Metadata, and to the member of a union that the raw value's JSON type selects."""
    while True:
        if isinstance(info, mi.Metadata):
            info = info.type
        elif isinstance(info, mi.UnionType):
            members = [t for t in info.types if not isinstance(t, mi.NoneType)]
            chosen = [t for t in members if _accepts(_unwrapped(t), raw)]
            if len(chosen) != 1 and len(members) != 1:
                return info
            info = (chosen or members)[0]
        else:
            return info


def _unwrapped(info: mi.Type) -> mi.Type:
    while isinstance(info, mi.Metadata):
        info = info.type
    return info


def _accepts(info: mi.Type, raw: Any) -> bool:
    """Whether a value of raw's JSON type would be decoded by this union member at all."""
    if isinstance(raw, dict):
        return isinstance(info, (mi.StructType, mi.DictType))
    if isinstance(raw, list):
        return isinstance(info, (mi.ListType, mi.VarTupleType))
    if isinstance(raw, str):
        return isinstance(info, (mi.StrType, mi.LiteralType, mi.CustomType))
    if isinstance(raw, bool):
        return isinstance(info, mi.BoolType)
    if isinstance(raw, (int, float)):
        return isinstance(info, (mi.IntType, mi.FloatType))
    return False


def _extra(info: mi.Type) -> dict[str, Any]:
    """The ``Meta(extra=...)`` of this type and the Metadata wrapped around it."""
    extra: dict[str, Any] = {}
    while True:
        if isinstance(info, mi.Metadata):
            extra.update(info.extra or {})
            info = info.type
        elif isinstance(info, mi.UnionType):
            members = [t for t in info.types if not isinstance(t, mi.NoneType)]
            if len(members) != 1:
                return extra
            info = members[0]
        else:
            return extra


# -- what is valid ---------------------------------------------------------------------------------------
def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


def _range(low: float | None, high: float | None, unit: str = "") -> str:
    if low is not None and high is not None:
        return f" from {_number(low)} to {_number(high)}{unit}"
    if low is not None:
        return f" >= {_number(low)}{unit}"
    if high is not None:
        return f" <= {_number(high)}{unit}"
    return ""


def describe(info: mi.Type) -> str:
    """What a value of this type looks like, in words: ``an integer from 1 to 1000``."""
    if isinstance(info, mi.Metadata):
        return describe(info.type)
    if isinstance(info, mi.UnionType):
        words = [describe(t) for t in info.types if not isinstance(t, mi.NoneType)]
        return " or ".join(dict.fromkeys(words))
    if isinstance(info, mi.IntType):
        low = info.ge if info.ge is not None else (info.gt + 1 if info.gt is not None else None)
        high = info.le if info.le is not None else (info.lt - 1 if info.lt is not None else None)
        return "an integer" + _range(low, high)
    if isinstance(info, mi.FloatType):
        return "a number" + _range(info.ge, info.le)
    if isinstance(info, mi.StrType):
        if info.pattern is not None:
            return f"a string matching {info.pattern}"
        return "a string" + _range(info.min_length, info.max_length, " characters")
    if isinstance(info, mi.BoolType):
        return "true or false"
    if isinstance(info, (mi.ListType, mi.VarTupleType)):
        return "a JSON array" + _range(info.min_length, info.max_length, " items").replace(" from", " of")
    if isinstance(info, (mi.DictType, mi.StructType)):
        return "a JSON object"
    if isinstance(info, mi.LiteralType):
        return "one of " + ", ".join(repr(v) for v in info.values)
    if isinstance(info, mi.CustomType) and issubclass(info.cls, Parsed):
        return info.cls.expected
    if isinstance(info, mi.NoneType):
        return "null"
    return "a JSON value"


def _field_names(info: mi.Type, source: Source) -> list[str]:
    names = []
    if isinstance(info, mi.StructType):
        for field in info.fields:
            others = source.aliases.get(field.encode_name, ())
            names.append(field.encode_name + "".join(f" (or {other})" for other in others))
    return names


def _missing(source: Source, path: Sequence[str | int], field: str, parent: mi.Type) -> str:
    parent = _narrow(parent, {})
    expected = ""
    if isinstance(parent, mi.StructType):
        types = {f.encode_name: f.type for f in parent.fields}
        if field in types:
            expected = f": {describe(types[field])}"
    others = "".join(f" (or '{other}')" for other in source.aliases.get(field, ()))
    if source.query:
        return f"query parameter '{field}'{others} is required{expected}"
    return f"{_where(source, path)} needs '{field}'{others}{expected}"


def _unknown(source: Source, path: Sequence[str | int], field: str, parent: mi.Type) -> str:
    valid = ", ".join(_field_names(_narrow(parent, {}), source)) or "none"
    if source.query:
        return f"unknown query parameter {field!r}; valid: {valid}"
    return f"{_where(source, path)} has unknown field {field!r}; valid: {valid}"
