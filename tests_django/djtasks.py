"""Django tasks the tests enqueue (module level, as Django requires)."""

from __future__ import annotations

import asyncio

from django.tasks import TaskContext, task


@task()
def add(a: int, b: int) -> int:
    return a + b


@task()
def broken(message: str) -> None:
    raise ValueError(message)


@task()
async def async_double(n: int) -> int:
    await asyncio.sleep(0.01)
    return n * 2


@task(takes_context=True)
def attempt_number(context: TaskContext) -> int:
    return context.attempt


@task(queue_name="reports")
def report(name: str) -> str:
    return f"report {name}"
