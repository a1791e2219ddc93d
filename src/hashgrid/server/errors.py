"""Domain errors the services raise, and the one handler that maps them to problem details.

DomainError
├── Invalid        400  the request makes no sense
├── Unauthorized   401  no credential, or a wrong one
├── Forbidden      403  a real credential that may not do this
├── NotFound       404
├── Conflict       409  clashes with what exists (a taken name, a used token)
└── TooManyRequests 429 too many attempts (sign-in); says when to try again

A request that fails its schema is answered 422, with every error in `errors`. The OpenAPI
document says so for each operation (`document_errors`), so clients and schemathesis read the
problem details shape the server sends, not FastAPI's default `HTTPValidationError`.
"""

import math
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

PROBLEM_JSON = "application/problem+json"


class DomainError(Exception):
    status = 500
    title = "Internal error"

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class Invalid(DomainError):
    status = 400
    title = "Invalid request"


class Unauthorized(DomainError):
    status = 401
    title = "Unauthorized"


class Forbidden(DomainError):
    status = 403
    title = "Forbidden"


class NotFound(DomainError):
    status = 404
    title = "Not found"


class Conflict(DomainError):
    status = 409
    title = "Conflict"


class TooManyRequests(DomainError):
    status = 429
    title = "Too many requests"

    def __init__(self, detail: str, retry_after_s: float) -> None:
        super().__init__(detail)
        self.retry_after_s = retry_after_s


class FieldError(BaseModel):
    loc: list[str | int] = Field(description="Where: body, query, path or header, then the field")
    msg: str
    type: str


class Problem(BaseModel):
    """Problem details (RFC 9457): what every error answer carries."""

    type: str = "about:blank"
    title: str
    status: int
    detail: str
    errors: list[FieldError] | None = Field(None, description="422 only: each invalid field")


def problem(status: int, title: str, detail: str, **extra: Any) -> JSONResponse:
    body = {"type": "about:blank", "title": title, "status": status, "detail": detail, **extra}
    headers = {"www-authenticate": "Bearer"} if status == 401 else None
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON, headers=headers)


def install_error_handlers(app: FastAPI) -> None:
    """Every error leaves the API as problem details (RFC 9457)."""

    async def on_domain(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, DomainError)
        answer = problem(exc.status, exc.title, exc.detail)
        if isinstance(exc, TooManyRequests):
            answer.headers["retry-after"] = str(math.ceil(exc.retry_after_s))
        return answer

    async def on_validation(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        errors = [
            {"loc": list(e.get("loc", ())), "msg": e.get("msg", ""), "type": e.get("type", "")}
            for e in exc.errors()
        ]
        first = errors[0] if errors else {"loc": [], "msg": "invalid"}
        where = ".".join(str(p) for p in first["loc"])
        return problem(422, "Unprocessable request", f"{where}: {first['msg']}", errors=errors)

    async def on_http(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        return problem(exc.status_code, str(exc.detail), str(exc.detail))

    app.add_exception_handler(DomainError, on_domain)
    app.add_exception_handler(RequestValidationError, on_validation)
    app.add_exception_handler(StarletteHTTPException, on_http)
    document_errors(app)


# What any operation may answer besides its success: each DomainError's status and 422.
ERROR_STATUSES = {
    **{kind.status: kind.title for kind in DomainError.__subclasses__()},
    422: "Unprocessable request",
}


def document_errors(app: FastAPI) -> None:
    """Make `app`'s OpenAPI document give every operation its error answers as problem
    details, in place of FastAPI's `HTTPValidationError` for 422."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            document = get_openapi(
                title=app.title,
                version=app.version,
                description=app.description,
                routes=app.routes,
            )
            schemas = document.setdefault("components", {}).setdefault("schemas", {})
            for unused in ("HTTPValidationError", "ValidationError"):
                schemas.pop(unused, None)
            problem_schema = Problem.model_json_schema(ref_template="#/components/schemas/{model}")
            schemas.update(problem_schema.pop("$defs"))
            schemas["Problem"] = problem_schema
            content = {PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/Problem"}}}
            for path in document.get("paths", {}).values():
                for operation in path.values():
                    responses = operation.setdefault("responses", {})
                    for status, title in ERROR_STATUSES.items():
                        responses[str(status)] = {"description": title, "content": content}
            app.openapi_schema = document
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
