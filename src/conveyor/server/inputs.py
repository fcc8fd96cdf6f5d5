"""Reading request input into its declared shape: the body (size-limited, strict JSON), the query string.

A ``Reader`` is compiled once per declared type (see ``shapes``) and decodes with
msgspec in one pass. When that fails, the request is read again the slow way to
word the error: malformed JSON first (the standard library names NaN, a number out
of range, nesting too deep), then the offending field and what is valid
(``explain``). Nothing reaches the App or the backend before it has passed.
"""

from __future__ import annotations

import json
import math
import re
import types
from collections.abc import Iterable, Mapping
from typing import Any, Generic, TypeVar, Union, get_args, get_origin

import msgspec
from starlette.requests import Request

from .errors import ApiError, bad_request
from .explain import Source, explain
from .shapes import Parsed, shown

T = TypeVar("T")

#: Job ids are 32 hex digits; accept a little more so a foreign id still gets a clean 404.
_JOB_ID = re.compile(r"^[A-Za-z0-9_.:-]{1,128}$")


# -- body -------------------------------------------------------------------------------------------
async def read_body(request: Request, limit: int) -> bytes:
    """The request body, refused with 413 as soon as it passes ``limit`` bytes (never buffered whole)."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise ApiError(413, "payload_too_large", f"request body of {int(declared):,} bytes is over {limit:,}")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise ApiError(413, "payload_too_large", f"request body is over the limit of {limit:,} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"number {text[:40]} is out of range")
    return value


def parse_json(body: bytes) -> Any:
    """Strict JSON: no NaN/Infinity, no numbers that overflow to infinity; 400 naming the problem."""
    if not body.strip():
        raise ApiError(400, "malformed_json", "the request body is empty; send a JSON object")
    try:
        return json.loads(body, parse_constant=_no_constants, parse_float=_finite_float)
    except RecursionError:
        raise ApiError(400, "malformed_json", "the JSON body is nested too deeply") from None
    except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise ApiError(400, "malformed_json", f"the request body is not valid JSON: {exc}") from None


def _parse_value(kind: type, value: Any) -> Any:
    """msgspec's hook for the types that read themselves (``shapes.Parsed``)."""
    if isinstance(kind, type) and issubclass(kind, Parsed):
        return kind.parse(value)
    raise NotImplementedError(f"no reading rule for {kind!r}")


def struct_of(form: Any) -> Any:
    """The Struct a body or query type is made of (through unions and Annotated), for its aliases."""
    if isinstance(form, type) and issubclass(form, msgspec.Struct):
        return form
    if get_origin(form) in (Union, types.UnionType) or hasattr(form, "__metadata__"):
        for member in get_args(form):
            found = struct_of(member)
            if found is not None:
                return found
    return None


def accepts_none(form: Any) -> bool:
    """Whether ``form`` is None or a union with None: the body may then be absent."""
    return form is None or form is type(None) or type(None) in get_args(form)


# -- declared shapes ----------------------------------------------------------------------------------
class Reader(Generic[T]):
    """Decodes one declared type from a JSON body or a query string, with worded errors."""

    def __init__(self, form: Any) -> None:
        self.form = form
        struct = struct_of(form)
        #: Other spelling -> canonical name, for the fields of the top-level object.
        self.aliases: Mapping[str, str] = dict(getattr(struct, "aliases", {}))
        self.other_spellings: dict[str, list[str]] = {}
        for alias, canonical in self.aliases.items():
            self.other_spellings.setdefault(canonical, []).append(alias)
        self.optional = accepts_none(form)
        self._decoder: msgspec.json.Decoder[T] = msgspec.json.Decoder(form, dec_hook=_parse_value)

    # -- JSON bodies
    def body(self, body: bytes) -> T:
        """The body decoded into the declared type; 400/422 naming the problem."""
        if self.optional and not body.strip():
            return None  # type: ignore[return-value]  # an absent optional body
        try:
            if not self.aliases:
                return self._decoder.decode(body)
            data = msgspec.json.decode(body)
            renamed, _ = self._renamed(data)
            return msgspec.convert(renamed, self.form, dec_hook=_parse_value)  # type: ignore[no-any-return]
        except msgspec.ValidationError as exc:
            raw = parse_json(body)  # malformed JSON is named before a mistyped field
            renamed, spelled = self._renamed(raw)
            raise explain(exc, self._source(renamed, spelled, query=False)) from None
        except (msgspec.DecodeError, RecursionError) as exc:
            parse_json(body)  # the standard library's words for what is wrong, when it sees it too
            raise ApiError(400, "malformed_json", f"the request body is not valid JSON: {exc}") from None

    # -- query strings
    def query(self, params: Iterable[tuple[str, str]]) -> T:
        """Query parameters (the last of repeated ones; an empty value means absent) as the type."""
        data = {name: value for name, value in params if value != ""}
        renamed, spelled = self._renamed(data)
        try:
            return msgspec.convert(renamed, self.form, strict=False, dec_hook=_parse_value)  # type: ignore[no-any-return]
        except msgspec.ValidationError as exc:
            raise explain(exc, self._source(renamed, spelled, query=True)) from None

    def _renamed(self, data: Any) -> tuple[Any, dict[str, str]]:
        """``data`` with aliases under their canonical names, and how the client spelled each."""
        if not self.aliases or not isinstance(data, dict):
            return data, {}
        renamed: dict[str, Any] = {}
        spelled: dict[str, str] = {}
        for name, value in data.items():
            canonical = self.aliases.get(name, name)
            if canonical in renamed:
                raise bad_request(f"give {spelled[canonical]} or {name}, not both")
            renamed[canonical] = value
            spelled[canonical] = name
        return renamed, spelled

    def _source(self, raw: Any, spelled: Mapping[str, str], *, query: bool) -> Source:
        return Source(self.form, raw, spelled, self.other_spellings, query)


# -- path parameters --------------------------------------------------------------------------------
def check_job_id(job_id: str) -> str:
    """A job id fit to look up; anything else cannot exist, so it is a 404 at once."""
    if not _JOB_ID.fullmatch(job_id):
        raise ApiError(404, "not_found", f"no job with id {shown(job_id)}")
    return job_id
