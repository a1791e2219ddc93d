"""Errors in OpenAI's shape: `{"error": {"message", "type", "param", "code"}}`.

OpenAIError
├── BadRequest          400 invalid_request_error (code: which check, as OpenAI names it)
├── InvalidKey          401 invalid_request_error / invalid_api_key
├── ModelNotFound       404 invalid_request_error / model_not_found
├── RouteNotFound       404 invalid_request_error / unknown_url (405: method_not_allowed)
├── RequestTooLarge     413 invalid_request_error / request_too_large (common/body_limit.py)
├── RateLimited         429 requests | tokens / rate_limit_exceeded (with retry-after)
├── QuotaExceeded       429 insufficient_quota / insufficient_quota (x-should-retry: false)
├── NoReplica           503 service_unavailable / no_ready_replica
├── UpstreamFailed      502 upstream_error / replica_failed (x-should-retry: true)
└── InternalError       500 server_error (x-should-retry: true): a gateway bug, never details

429s are shaped as OpenAI's: `type` says which limit (`requests` or `tokens`), `code` is
`rate_limit_exceeded`; a spent budget is `insufficient_quota`. Headers an error carries (rate
limit headers, `retry-after`) go out with it.
"""

from collections.abc import Callable

import orjson
from starlette.datastructures import Headers
from starlette.responses import Response
from starlette.types import Scope

from hashgrid.gateway.request_ids import reply_id


def shown(text: str, limit: int) -> str:
    """`text` as a message quotes what a client sent: cut after `limit` characters."""
    return text if len(text) <= limit else text[:limit] + "..."


class OpenAIError(Exception):
    status = 500
    type = "server_error"
    code: str | None = None

    def __init__(
        self,
        message: str,
        param: str | None = None,
        headers: dict[str, str] | None = None,
        code: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        self.headers = headers or {}
        if code is not None:
            self.code = code

    def body(self) -> dict[str, object]:
        return {
            "error": {
                "message": self.message,
                "type": self.type,
                "param": self.param,
                "code": self.code,
            }
        }

    def response(self, request_id: str, headers: dict[str, str] | None = None) -> Response:
        """The error as an answer, with `headers` (rate limit headers) and its own."""
        headers = {**(headers or {}), **self.headers, "x-request-id": request_id}
        if self.status == 401:
            headers["www-authenticate"] = "Bearer"
        return Response(
            orjson.dumps(self.body()),
            status_code=self.status,
            media_type="application/json",
            headers=headers,
        )


class BadRequest(OpenAIError):
    status = 400
    type = "invalid_request_error"


class InvalidKey(OpenAIError):
    status = 401
    type = "invalid_request_error"
    code = "invalid_api_key"


class ModelNotFound(OpenAIError):
    status = 404
    type = "invalid_request_error"
    code = "model_not_found"

    def __init__(self, model: str) -> None:
        """OpenAI's words for a model the key cannot use, whether it exists or not."""
        super().__init__(
            f"The model `{shown(model, 100)}` does not exist or you do not have access to it.",
            param="model",
        )


class RouteNotFound(OpenAIError):
    status = 404
    type = "invalid_request_error"
    code = "unknown_url"

    def __init__(self, method: str, path: str, allowed: bool = False) -> None:
        if allowed:  # the path exists, not with this method
            super().__init__(f"Method {method} is not allowed on {shown(path, 100)}.")
            self.status, self.code = 405, "method_not_allowed"
        else:
            super().__init__(f"Invalid URL ({method} {shown(path, 100)}).")


class RequestTooLarge(OpenAIError):
    status = 413
    type = "invalid_request_error"
    code = "request_too_large"


def too_large(max_bytes: int) -> Callable[[Scope], Response]:
    """`BodyLimit`'s answer: a 413, with the client's `x-request-id` or a new one."""
    error = RequestTooLarge(f"The request body is larger than {max_bytes} bytes, the most allowed.")

    def answer(scope: Scope) -> Response:
        return error.response(reply_id(Headers(scope=scope).get("x-request-id")))

    return answer


class RateLimited(OpenAIError):
    status = 429
    code = "rate_limit_exceeded"

    def __init__(self, message: str, kind: str, headers: dict[str, str]) -> None:
        super().__init__(message, headers=headers)
        self.type = kind  # "requests" or "tokens", as OpenAI says which limit was reached


class QuotaExceeded(OpenAIError):
    status = 429
    type = "insufficient_quota"
    code = "insufficient_quota"


class NoReplica(OpenAIError):
    status = 503
    type = "service_unavailable"
    code = "no_ready_replica"


class UpstreamFailed(OpenAIError):
    status = 502
    type = "upstream_error"
    code = "replica_failed"

    def __init__(self, message: str) -> None:
        """A failure on the serving side: the SDKs may retry it (they retry 5xx by default)."""
        super().__init__(message, headers={"x-should-retry": "true"})


class InternalError(OpenAIError):
    status = 500
    type = "server_error"
    code = "internal_error"

    def __init__(self) -> None:
        super().__init__(
            "The gateway failed to handle the request; it has been logged with its request id. "
            "Retry, and report the id if it persists.",
            headers={"x-should-retry": "true"},
        )
