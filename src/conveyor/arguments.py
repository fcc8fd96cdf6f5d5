"""Whether a job's arguments fit its task's function: checked at enqueue and again before a run.

Whether ``fn(*args, **kwargs)`` can bind depends only on the *shape* of the call
(how many positional arguments, which keyword names), never on the values. So
each task binds a shape once with :meth:`inspect.Signature.bind` and remembers
the verdict: bulk enqueue of one shape costs one dictionary look-up per job.
"""

from __future__ import annotations

import difflib
import inspect
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final

from .errors import InvalidArguments

#: Shapes remembered per task; past this (a task taking ``**kwargs`` with ever-new
#: names) a shape is bound each time instead of growing the memory without bound.
MAX_SHAPES: Final = 1024

Shape = tuple[int, tuple[str, ...]]


class ArgumentCheck:
    """The signature of one task's function and the verdicts of the call shapes seen so far."""

    __slots__ = ("_by_name", "_takes_any_keyword", "_verdicts", "shown", "signature", "task")

    def __init__(self, task: str, signature: inspect.Signature) -> None:
        self.task = task
        self.signature = signature
        #: The parameter list as a message shows it: names, defaults and stars, no annotations
        #: (under ``from __future__ import annotations`` they would read as quoted strings).
        self.shown = str(
            signature.replace(
                parameters=[p.replace(annotation=p.empty) for p in signature.parameters.values()],
                return_annotation=signature.empty,
            )
        )
        kinds = {p.kind for p in signature.parameters.values()}
        self._takes_any_keyword = inspect.Parameter.VAR_KEYWORD in kinds
        self._by_name = [
            p.name
            for p in signature.parameters.values()
            if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
        ]
        self._verdicts: dict[Shape, str | None] = {}

    @classmethod
    def of(cls, task: str, fn: Callable[..., Any] | None) -> ArgumentCheck | None:
        """The check for ``fn``, or None when there is nothing to check against.

        None for a declared task (its code lives elsewhere) and for a callable whose
        signature Python cannot tell (some built-ins and C extensions).
        """
        if fn is None:
            return None
        try:
            return cls(task, inspect.signature(fn))
        except (TypeError, ValueError):
            return None

    @property
    def remembered(self) -> int:
        """How many call shapes have a remembered verdict (at most :data:`MAX_SHAPES`)."""
        return len(self._verdicts)

    def problem(self, args: Sequence[Any], kwargs: Mapping[str, Any]) -> str | None:
        """Why ``fn(*args, **kwargs)`` cannot bind (Python's own words), or None if it can."""
        shape: Shape = (len(args), tuple(kwargs))
        try:
            return self._verdicts[shape]
        except KeyError:
            pass
        except TypeError:  # an unhashable keyword name: bind() below says what is wrong
            shape = (len(args), ())
        verdict = self._bind(shape[0], kwargs)
        if len(self._verdicts) < MAX_SHAPES:
            self._verdicts[shape] = verdict
        return verdict

    def _bind(self, positional: int, kwargs: Mapping[str, Any]) -> str | None:
        if not self._takes_any_keyword:
            # A misspelt keyword is the cause of the "missing argument" bind() reports first.
            for name in kwargs:
                if name not in self._by_name:
                    close = difflib.get_close_matches(str(name), self._by_name, n=1)
                    hint = f" (did you mean {close[0]!r}?)" if close else ""
                    return f"got an unexpected keyword argument {name!r}{hint}"
        try:
            self.signature.bind(*([None] * positional), **dict.fromkeys(kwargs))
        except TypeError as exc:
            return str(exc)
        return None

    def check(self, args: Sequence[Any], kwargs: Mapping[str, Any]) -> None:
        """Raise :class:`~conveyor.errors.InvalidArguments` if the arguments do not fit."""
        problem = self.problem(args, kwargs)
        if problem is not None:
            raise self.error(problem, args, kwargs)

    def error(self, problem: str, args: Sequence[Any], kwargs: Mapping[str, Any]) -> InvalidArguments:
        """The error naming the task, what does not fit, the call given and the signature to match."""
        given = f"{len(args)} positional argument{'' if len(args) == 1 else 's'}"
        if kwargs:
            given += f" and keyword(s) {', '.join(map(str, kwargs))}"
        return InvalidArguments(
            f"arguments do not fit task {self.task!r}: {problem} (given {given}; "
            f"the task is {self.task}{self.shown}); pass args in the order of its "
            "parameters and kwargs by their names"
        )
