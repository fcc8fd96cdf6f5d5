"""The OpenAPI 3.1 document of the HTTP API (tests check it lists exactly the served routes)."""

from __future__ import annotations

import copy
from collections.abc import Iterable
from functools import lru_cache
from typing import Any

from .. import __version__
from ..states import ALL_STATES
from .inputs import MAX_ATTEMPTS, MAX_BATCH, MAX_DELAY_SECONDS, MAX_OFFSET, MAX_PAGE, MAX_PRIORITY

NAME = {"type": "string", "pattern": "^[A-Za-z0-9_.-]{1,128}$"}
STATUS = {"type": "string", "enum": list(ALL_STATES)}
TIME = {"type": "string", "format": "date-time"}
NULLABLE_TIME = {"type": ["string", "null"], "format": "date-time"}
TRACE_ID = {
    "type": ["string", "null"],
    "pattern": "^[0-9a-f]{32}$",
    "description": "OpenTelemetry trace id (32 hex digits), null when none.",
}
JOB_ID = {"name": "job_id", "in": "path", "required": True, "schema": {"type": "string"}}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _errors(*codes: int) -> dict[str, Any]:
    words = {
        400: "Malformed JSON, wrong types or values",
        401: "Missing or wrong x-api-key",
        403: "Key-less server: only same-origin loopback requests",
        404: "Unknown job",
        409: "The job is not in a state that allows this",
        413: "Payload too large",
        422: "Unknown task, status word or queue name",
    }
    return {str(code): _json(_ref("Error"), words[code]) for code in codes}


def _query(name: str, schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "schema": schema, "description": description}


LIMIT = _query("limit", {"type": "integer", "minimum": 0, "maximum": MAX_PAGE, "default": 50}, "Page size.")
OFFSET = _query("offset", {"type": "integer", "minimum": 0, "maximum": MAX_OFFSET, "default": 0}, "Skip.")
SECURED: list[dict[str, list[str]]] = [{"apiKey": []}]
API_ERRORS = (400, 401, 403)

SCHEMAS: dict[str, Any] = {
    "Error": {
        "type": "object",
        "required": ["error"],
        "properties": {
            "error": {
                "type": "object",
                "required": ["code", "message"],
                "properties": {"code": {"type": "string"}, "message": {"type": "string"}},
            }
        },
    },
    "NewJob": {
        "type": "object",
        "required": ["task"],
        "additionalProperties": False,
        "properties": {
            "task": {**NAME, "description": "A registered task name (conveyor.http is built in)."},
            "args": {"type": ["array", "null"]},
            "kwargs": {"type": ["object", "null"]},
            "queue": {**NAME, "type": ["string", "null"]},
            "delay": {"type": ["number", "null"], "minimum": 0, "maximum": MAX_DELAY_SECONDS},
            "run_at": {**NULLABLE_TIME, "description": "ISO-8601; without an offset it is UTC."},
            "priority": {"type": ["integer", "null"], "minimum": -MAX_PRIORITY - 1, "maximum": MAX_PRIORITY},
            "key": {"type": ["string", "null"], "minLength": 1, "maxLength": 512},
            "key_mode": {"type": ["string", "null"], "enum": ["keep", "replace", None]},
            "max_attempts": {"type": ["integer", "null"], "minimum": 1, "maximum": MAX_ATTEMPTS},
            "on_complete": {"type": ["string", "null"], "format": "uri"},
        },
    },
    "JobRef": {
        "type": "object",
        "required": ["id", "status"],
        "properties": {"id": {"type": "string"}, "status": STATUS},
    },
    "JobRefs": {
        "type": "object",
        "required": ["items"],
        "properties": {
            "items": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["id", "status", "created"],
                    "properties": {
                        "id": {"type": "string"},
                        "status": STATUS,
                        "created": {"type": "boolean"},
                    },
                },
            }
        },
    },
    "JobSummary": {
        "type": "object",
        "required": ["id", "task", "queue", "status", "attempt", "max_attempts", "created_at"],
        "properties": {
            "id": {"type": "string"},
            "task": {"type": "string"},
            "queue": {"type": "string"},
            "status": STATUS,
            "args": {"type": "array"},
            "kwargs": {"type": "object"},
            "attempt": {"type": "integer"},
            "max_attempts": {"type": "integer"},
            "priority": {"type": "integer"},
            "run_at": TIME,
            "created_at": TIME,
            "started_at": NULLABLE_TIME,
            "finished_at": NULLABLE_TIME,
            "result": {},
            "error": {"type": ["string", "null"]},
            "traceback": {"type": ["string", "null"]},
            "key": {"type": ["string", "null"]},
            "worker": {"type": ["string", "null"]},
            "cancel_requested": {"type": "boolean"},
            "on_complete": {"type": ["string", "null"]},
            "progress": {
                "type": ["object", "null"],
                "description": "What the task last reported through current_job().progress().",
                "properties": {
                    "fraction": {"type": ["number", "null"], "minimum": 0, "maximum": 1},
                    "message": {"type": ["string", "null"]},
                    "updated_at": NULLABLE_TIME,
                },
            },
            "trace_id": TRACE_ID,
        },
    },
    "Attempt": {
        "type": "object",
        "required": ["job_id", "attempt", "outcome"],
        "properties": {
            "job_id": {"type": "string"},
            "attempt": {"type": "integer"},
            "worker": {"type": ["string", "null"]},
            "started_at": NULLABLE_TIME,
            "finished_at": NULLABLE_TIME,
            "outcome": {"type": "string"},
            "error": {"type": ["string", "null"]},
            "traceback": {"type": ["string", "null"]},
            "status_code": {"type": ["integer", "null"]},
            "response_excerpt": {"type": ["string", "null"]},
            "trace_id": TRACE_ID,
        },
    },
    "Job": {
        "allOf": [
            _ref("JobSummary"),
            {
                "type": "object",
                "required": ["attempts"],
                "properties": {"attempts": {"type": "array", "items": _ref("Attempt")}},
            },
        ]
    },
    "Page": {
        "type": "object",
        "required": ["items", "total", "limit", "offset"],
        "properties": {
            "items": {"type": "array", "items": _ref("JobSummary")},
            "total": {"type": "integer"},
            "limit": {"type": "integer"},
            "offset": {"type": "integer"},
        },
    },
    "StateCounts": {
        "type": "object",
        "required": list(ALL_STATES),
        "properties": {state: {"type": "integer"} for state in ALL_STATES},
    },
    "Stats": {
        "type": "object",
        "required": ["counts", "queues", "oldest_pending_age_s"],
        "properties": {
            "counts": _ref("StateCounts"),
            "queues": {"type": "object", "additionalProperties": _ref("StateCounts")},
            "oldest_pending_age_s": {"type": ["number", "null"]},
        },
    },
    "Resubmit": {
        "type": "object",
        "additionalProperties": False,
        "properties": {"args": {"type": ["array", "null"]}, "kwargs": {"type": ["object", "null"]}},
    },
    "Purge": {
        "type": "object",
        "required": ["status", "olderThan"],
        "additionalProperties": False,
        "properties": {
            "status": {"type": "string", "enum": ["completed", "failed", "cancelled"]},
            "olderThan": TIME,
        },
    },
    "Worker": {
        "type": "object",
        "required": [
            "id",
            "host",
            "pid",
            "queues",
            "concurrency",
            "running",
            "started_at",
            "last_seen_at",
            "version",
        ],
        "properties": {
            "id": {"type": "string"},
            "host": {"type": "string"},
            "pid": {"type": "integer"},
            "queues": {"type": "array", "items": {"type": "string"}},
            "concurrency": {"type": "integer"},
            "running": {"type": "array", "items": {"type": "string"}, "description": "Ids of running jobs."},
            "started_at": TIME,
            "last_seen_at": TIME,
            "version": {"type": "string"},
        },
    },
    "Audits": {
        "type": "object",
        "required": ["items", "limit", "offset"],
        "properties": {
            "items": {"type": "array", "items": _ref("Attempt")},
            "limit": {"type": "integer"},
            "offset": {"type": "integer"},
        },
    },
}

PATHS: dict[str, Any] = {
    "/api/jobs": {
        "post": {
            "summary": f"Enqueue a job (or a batch: an array of up to {MAX_BATCH} jobs)",
            "requestBody": {
                "required": True,
                "content": {
                    "application/json": {
                        "schema": {
                            "oneOf": [
                                _ref("NewJob"),
                                {
                                    "type": "array",
                                    "items": _ref("NewJob"),
                                    "minItems": 1,
                                    "maxItems": MAX_BATCH,
                                },
                            ]
                        }
                    }
                },
            },
            "responses": {
                "201": _json({"oneOf": [_ref("JobRef"), _ref("JobRefs")]}, "Created"),
                "200": _json(
                    {"oneOf": [_ref("JobRef"), _ref("JobRefs")]}, "The idempotency key matched a job"
                ),
                **_errors(*API_ERRORS, 413, 422),
            },
        }
    },
    "/api/jobs/{job_id}": {
        "get": {
            "summary": "One job with its attempt records",
            "parameters": [JOB_ID],
            "responses": {"200": _json(_ref("Job"), "The job"), **_errors(*API_ERRORS, 404)},
        }
    },
    "/api/queue": {
        "get": {
            "summary": "List jobs, newest first",
            "parameters": [
                _query("status", {"type": "string", "enum": ["", *ALL_STATES]}, "Only jobs in this status."),
                _query("queue", NAME, "Only jobs in this queue."),
                _query("task", NAME, "Only jobs of this task."),
                LIMIT,
                OFFSET,
                _query("created_after", TIME, "Created at or after (ISO-8601)."),
                _query("created_before", TIME, "Created before (ISO-8601)."),
            ],
            "responses": {"200": _json(_ref("Page"), "A page of jobs"), **_errors(*API_ERRORS, 422)},
        }
    },
    "/api/queue/stats": {
        "get": {
            "summary": "Counts by status and queue",
            "responses": {"200": _json(_ref("Stats"), "Counts"), **_errors(*API_ERRORS)},
        }
    },
    "/api/queue/{job_id}/retry": {
        "post": {
            "summary": "Resubmit a failed or cancelled job (optionally with edited arguments)",
            "parameters": [JOB_ID],
            "requestBody": {"required": False, "content": {"application/json": {"schema": _ref("Resubmit")}}},
            "responses": {
                "200": _json(_ref("Job"), "Back to pending"),
                **_errors(*API_ERRORS, 404, 409, 413),
            },
        }
    },
    "/api/queue/{job_id}/cancel": {
        "post": {
            "summary": "Cancel a job (a running one is asked to stop)",
            "parameters": [JOB_ID],
            "responses": {
                "200": _json(_ref("Job"), "Cancelled or flagged"),
                **_errors(*API_ERRORS, 404, 409),
            },
        }
    },
    "/api/queue/{job_id}": {
        "delete": {
            "summary": "Delete a job that is not running, with its attempt records",
            "parameters": [JOB_ID],
            "responses": {
                "200": _json(
                    {
                        "type": "object",
                        "properties": {"id": {"type": "string"}, "deleted": {"type": "boolean"}},
                    },
                    "Deleted",
                ),
                **_errors(*API_ERRORS, 404, 409),
            },
        }
    },
    "/api/queue/purge": {
        "post": {
            "summary": "Delete finished jobs older than a time",
            "requestBody": {"required": True, "content": {"application/json": {"schema": _ref("Purge")}}},
            "responses": {
                "200": _json({"type": "object", "properties": {"purged": {"type": "integer"}}}, "How many"),
                **_errors(*API_ERRORS, 413, 422),
            },
        }
    },
    "/api/queue/process": {
        "post": {
            "summary": "Process one batch of due jobs in this request",
            "parameters": [
                _query(
                    "batchSize", {"type": "integer", "minimum": 1, "maximum": 500, "default": 10}, "At most."
                )
            ],
            "responses": {
                "200": _json(
                    {
                        "type": "object",
                        "required": ["processed", "completed", "failed", "retried"],
                        "properties": {
                            k: {"type": "integer"}
                            for k in ("processed", "completed", "failed", "retried", "cancelled")
                        },
                    },
                    "What the batch did",
                ),
                **_errors(*API_ERRORS),
            },
        }
    },
    "/api/audits": {
        "get": {
            "summary": "Attempt records, newest first",
            "parameters": [_query("job_id", {"type": "string"}, "Only this job's attempts."), LIMIT, OFFSET],
            "responses": {"200": _json(_ref("Audits"), "Attempt records"), **_errors(*API_ERRORS, 404)},
        }
    },
    "/api/workers": {
        "get": {
            "summary": "Live workers (three missed heartbeats and a worker drops off)",
            "responses": {
                "200": _json(
                    {
                        "type": "object",
                        "required": ["items"],
                        "properties": {"items": {"type": "array", "items": _ref("Worker")}},
                    },
                    "The live workers, the longest-running first",
                ),
                **_errors(*API_ERRORS),
            },
        }
    },
    "/healthz": {
        "get": {
            "summary": "Liveness and backend reachability (no key)",
            "security": [],
            "responses": {
                "200": _json({"type": "object", "properties": {"status": {"const": "ok"}}}, "Healthy"),
                "503": _json({"type": "object"}, "The backend does not answer"),
            },
        }
    },
    "/metrics": {
        "get": {
            "summary": "Prometheus metrics (no key; counts only)",
            "security": [],
            "responses": {"200": {"description": "Exposition text", "content": {"text/plain": {}}}},
        }
    },
    "/openapi.json": {
        "get": {
            "summary": "This document",
            "security": [],
            "responses": {"200": _json({"type": "object"}, "OpenAPI 3.1")},
        }
    },
    "/": {
        "get": {
            "summary": "The dashboard page (its data requests carry the key)",
            "security": [],
            "responses": {"200": {"description": "HTML", "content": {"text/html": {}}}},
        }
    },
}


@lru_cache(maxsize=8)
def _document(task_names: tuple[str, ...] | None) -> dict[str, Any]:
    schemas = copy.deepcopy(SCHEMAS)
    if task_names is not None:
        # The served document names this server's tasks, so clients (and fuzzers) know them.
        schemas["NewJob"]["properties"]["task"]["enum"] = list(task_names)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Conveyor",
            "version": __version__,
            "description": "Background job queue: enqueue, inspect, retry, cancel, purge and process jobs.",
        },
        "security": SECURED,
        "components": {
            "securitySchemes": {"apiKey": {"type": "apiKey", "in": "header", "name": "x-api-key"}},
            "schemas": schemas,
        },
        "paths": PATHS,
    }


def openapi_document(task_names: Iterable[str] | None = None) -> dict[str, Any]:
    """The document (a fresh copy: callers may change it); ``task_names`` lists the accepted tasks."""
    return copy.deepcopy(_document(None if task_names is None else tuple(sorted(task_names))))
