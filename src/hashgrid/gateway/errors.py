"""Errors in OpenAI's shape: `{"error": {"message", "type", "param", "code"}}`.

OpenAIError
├── BadRequest          400 invalid_request_error
├── InvalidKey          401 invalid_request_error / invalid_api_key
├── ModelNotFound       404 invalid_request_error / model_not_found
├── RequestTooLarge     413 invalid_request_error / request_too_large (common/body_limit.py)
├── RateLimited         429 requests | tokens / rate_limit_exceeded (with retry-after)
├── QuotaExceeded       429 insufficient_quota / insufficient_quota (x-should-retry: false)
├── NoReplica           503 service_unavailable / no_ready_replica
└── UpstreamFailed      502 upstream_error / replica_failed

429s are shaped as OpenAI's: `type` says which limit (`requests` or `tokens`), `code` is
`rate_limit_exceeded`; a spent budget is `insufficient_quota`. Headers an error carries (rate
limit headers, `retry-after`) go out with it.
"""

import uuid
from collections.abc import Callable

import orjson
from starlette.datastructures import Headers
from starlette.responses import Response
from starlette.types import Scope


class OpenAIError(Exception):
    status = 500
    type = "server_error"
    code: str | None = None

    def __init__(
        self, message: str, param: str | None = None, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        self.headers = headers or {}

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
            f"The model `{model}` does not exist or you do not have access to it.", param="model"
        )


class RequestTooLarge(OpenAIError):
    status = 413
    type = "invalid_request_error"
    code = "request_too_large"


def too_large(max_bytes: int) -> Callable[[Scope], Response]:
    """`BodyLimit`'s answer: a 413, with the client's `x-request-id` or a new one."""
    error = RequestTooLarge(f"The request body is larger than {max_bytes} bytes, the most allowed.")

    def answer(scope: Scope) -> Response:
        client_id = Headers(scope=scope).get("x-request-id")
        return error.response(client_id[:200] if client_id else f"req_{uuid.uuid4().hex}")

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
