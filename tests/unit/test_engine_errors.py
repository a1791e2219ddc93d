"""Engines' errors mapped to OpenAI's shape: the request's fault is a 400, the engine's a 502
the client may retry, and no engine internals reach the client either way."""

from typing import Any

import pytest

from hashgrid.gateway.engine_errors import engine_error


@pytest.mark.parametrize(
    ("status", "body", "expected"),
    [
        (400, {"error": {"message": "bad stop", "type": "x", "param": "stop"}}, (400, "bad stop")),
        (422, {"detail": [{"loc": ["body", "n"], "msg": "must be 1"}]}, (400, "must be 1")),
        (404, {"detail": "Not Found"}, (404, "Not Found")),
        (500, {"error": {"message": "KeyError: 'x'"}}, (400, None)),
        (500, {"error": {"message": "segfault in ggml"}}, (502, None)),
        (503, "busy", (502, None)),
        (500, {"error": {"code": 500, "message": "exceeds the context window of 256"}}, (400, "")),
    ],
)
def test_an_engine_error_becomes_the_right_openai_error(
    status: int, body: Any, expected: tuple[int, str | None]
) -> None:
    raw = str(body).encode()
    error = engine_error(status, raw, body)
    assert error.status == expected[0]
    if expected[1]:
        assert error.message == expected[1]


@pytest.mark.parametrize(
    "message",
    [
        'Traceback (most recent call last):\n  File "/x/llama.py", line 3',
        "TypeError: 'NoneType' object is not subscriptable",
        "failed at llama_cpp/server/app.py line 12",
    ],
)
def test_internals_never_reach_the_client(message: str) -> None:
    for status in (400, 500):
        error = engine_error(status, message.encode(), {"error": {"message": message}})
        assert error.message != message
        assert "File" not in error.message
        assert ".py" not in error.message


def test_a_context_overflow_in_a_500_is_named_as_openai_names_it() -> None:
    body = {"error": {"message": "Requested tokens (900) exceed context window of 256"}}
    error = engine_error(500, b"", body)
    assert (error.status, error.code) == (400, "context_length_exceeded")
    assert error.headers["x-should-retry"] == "false"


def test_an_engine_failure_says_the_client_may_retry() -> None:
    error = engine_error(500, b"oops", None)
    assert (error.status, error.headers["x-should-retry"]) == (502, "true")


def test_pythons_words_for_request_data_of_the_wrong_shape_are_the_requests_fault() -> None:
    """What llama-cpp-python answered to an image part sent to a text-only chat template."""
    body = {"error": {"message": 'can only concatenate str (not "list") to str'}}
    error = engine_error(500, b"", body)
    assert (error.status, error.code) == (400, "unprocessable_by_model")
    assert "concatenate" not in error.message
