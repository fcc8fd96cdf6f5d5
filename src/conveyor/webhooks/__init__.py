"""Webhooks: the built-in ``conveyor.http`` task, request signing, and ``on_complete`` callbacks.

A ``conveyor.http`` job sends one signed HTTP request (``request``, ``signing``); a job
naming ``on_complete`` has its outcome POSTed there by such a job (``callbacks``). The
feature plugs into every App through :data:`WEBHOOKS` (see ``App.add_built_in``).
"""

from ..app import BuiltIn
from .callbacks import CALLBACK_EVENTS, completion_callbacks, completion_payload
from .request import (
    HTTP_KWARGS,
    HTTP_TASK,
    MAX_TIMEOUT,
    HTTPRequestSpec,
    HTTPTransientError,
    check_http_kwargs,
    parse_retry_after,
    send_request,
)
from .signing import (
    SIGNATURE_HEADER,
    SIGNING_SECRET_ENV,
    InvalidSignature,
    sign,
    signing_secret,
    verify_signature,
)
from .task import install_http_task

#: The feature as the App sees it: the task it installs, the follow-ups it adds.
WEBHOOKS = BuiltIn("webhooks", install=install_http_task, follow_ups=completion_callbacks)

__all__ = [
    "CALLBACK_EVENTS",
    "HTTP_KWARGS",
    "HTTP_TASK",
    "MAX_TIMEOUT",
    "SIGNATURE_HEADER",
    "SIGNING_SECRET_ENV",
    "WEBHOOKS",
    "HTTPRequestSpec",
    "HTTPTransientError",
    "InvalidSignature",
    "check_http_kwargs",
    "completion_callbacks",
    "completion_payload",
    "install_http_task",
    "parse_retry_after",
    "send_request",
    "sign",
    "signing_secret",
    "verify_signature",
]
