"""An engine's refusal or failure, as the client sees it: OpenAI's shape, no internals.

Engines answer errors in their own shapes (llama-cpp-python: OpenAI's, with the Python
exception's text as the message of a 500; llama.cpp's server: `{"error": {"code": 500, ...}}`;
vLLM: `{"object": "error", ...}`; FastAPI's 422 `detail` list), and their messages may carry
internals: exception names, file paths, tracebacks. The gateway never passes those bodies on.

- 4xx: the request's fault. A 400 `invalid_request_error` (a 422 becomes 400, as OpenAI answers)
  with the engine's first line of message when it reads as a sentence meant for clients, else a
  general one; `param` and `code` kept when the engine gave them as strings.
- 5xx: an engine failure. When its message says the request made it fail (the context exceeded,
  an unsupported feature, a value the model's template refuses), a 400 with
  `x-should-retry: false`: resending the same request would fail the same way. Otherwise a 502
  `upstream_error` with `x-should-retry: true`, and the engine's text only in the gateway's log.
"""

import re
from typing import Any

from hashgrid.gateway.errors import BadRequest, OpenAIError, UpstreamFailed, shown

MAX_MESSAGE = 300
# Words in an engine's 5xx that mean the request, not the engine, is at fault.
# llama-cpp-python answers any exception while it formats a request as a 500: Python's own
# words for data of the wrong shape (content parts to a text-only template, a key it lacks)
# say the request, not the engine, is at fault.
REQUEST_FAULT = re.compile(
    r"context (window|length)|exceed|not supported|unsupported|invalid|must be|expected"
    r"|template|ValueError|TypeError|KeyError|jinja|concatenate|has no attribute"
    r"|not subscriptable|not iterable|unexpected keyword",
    re.IGNORECASE,
)
CONTEXT = re.compile(r"exceed.*context|context (window|length)", re.IGNORECASE)
# What marks a message as internals: a traceback, a source path, an exception's class name.
INTERNALS = re.compile(
    r"Traceback|File \"|\.py\b|\b[A-Z][A-Za-z]*(Error|Exception)\b|0x[0-9a-f]{6,}|\bline \d+"
)


def engine_error(status: int, data: bytes, parsed: Any) -> OpenAIError:
    """The error to answer for an engine's `status` with body `data` (`parsed`: its JSON)."""
    message, param, code = _engine_fields(parsed, data)
    if status < 500:
        error: OpenAIError = BadRequest(
            _clean(message) or "The model's engine refused the request.", param=param, code=code
        )
        if status not in (400, 422):
            error.status = status if status in (404, 413, 429) else 400
        return error
    if REQUEST_FAULT.search(message):
        if CONTEXT.search(message):
            words = _clean(message) or "The request exceeds the model's context window."
            code = "context_length_exceeded"
        else:  # the engine's words here are about its code, not the client's request
            words = (
                "The model's engine could not process this request: its chat template or "
                "features do not fit it. Check the content types (images, audio), tool calls "
                "and parameters the model supports."
            )
            code = "unprocessable_by_model"
        return BadRequest(words, param=param, code=code, headers={"x-should-retry": "false"})
    return UpstreamFailed(f"The replica failed to answer the request (engine status {status}).")


def _clean(message: str) -> str:
    """The message's first line, if it reads as words for a client; else empty."""
    line = message.strip().split("\n", 1)[0].strip()
    if not line or INTERNALS.search(line):
        return ""
    return shown(line, MAX_MESSAGE)


def _engine_fields(parsed: Any, data: bytes) -> tuple[str, str | None, str | None]:
    """The engine's message, param and code, from whichever shape it answered in."""
    if isinstance(parsed, dict):
        error = parsed.get("error")
        if isinstance(error, dict):
            parsed = error
        elif isinstance(error, str):
            return error, None, None
        detail = parsed.get("detail")
        if isinstance(detail, list) and detail and isinstance(detail[0], dict):
            loc = [str(p) for p in detail[0].get("loc", [])[1:]]
            return str(detail[0].get("msg", "")), ".".join(loc) or None, None
        if isinstance(detail, str):
            return detail, None, None
        message = parsed.get("message")
        param, code = parsed.get("param"), parsed.get("code")
        return (
            message if isinstance(message, str) else "",
            param if isinstance(param, str) else None,
            code if isinstance(code, str) else None,
        )
    return data.decode(errors="replace"), None, None
