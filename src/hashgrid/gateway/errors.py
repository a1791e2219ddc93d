"""Errors in OpenAI's shape: `{"error": {"message", "type", "param", "code"}}`.

OpenAIError
├── BadRequest          400 invalid_request_error
├── InvalidKey          401 invalid_request_error / invalid_api_key
├── ModelNotFound       404 invalid_request_error / model_not_found
├── NoReplica           503 service_unavailable / no_ready_replica
└── UpstreamFailed      502 upstream_error / replica_failed
"""

import orjson
from starlette.responses import Response


class OpenAIError(Exception):
    status = 500
    type = "server_error"
    code: str | None = None

    def __init__(self, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param

    def body(self) -> dict[str, object]:
        return {
            "error": {
                "message": self.message,
                "type": self.type,
                "param": self.param,
                "code": self.code,
            }
        }

    def response(self, request_id: str) -> Response:
        headers = {"x-request-id": request_id}
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


class NoReplica(OpenAIError):
    status = 503
    type = "service_unavailable"
    code = "no_ready_replica"


class UpstreamFailed(OpenAIError):
    status = 502
    type = "upstream_error"
    code = "replica_failed"
