"""The gateway's one normalisation of `/v1` bodies: OpenAI's 400s, and only checked values on."""

from typing import Any

import orjson
import pytest

from hashgrid.gateway.errors import BadRequest
from hashgrid.gateway.normalize import normalize

CHAT = "/v1/chat/completions"
HELLO = [{"role": "user", "content": "Hello"}]


def chat(**extra: Any) -> dict[str, Any]:
    return {"model": "m", "messages": HELLO, **extra}


def refused(endpoint: str, body: dict[str, Any]) -> BadRequest:
    with pytest.raises(BadRequest) as caught:
        normalize(endpoint, body)
    return caught.value


@pytest.mark.parametrize(
    ("extra", "param", "code"),
    [
        ({"stream": 1}, "stream", "invalid_type"),
        ({"stream": "true"}, "stream", "invalid_type"),
        ({"max_tokens": -1}, "max_tokens", "integer_below_min_value"),
        ({"max_tokens": 0}, "max_tokens", "integer_below_min_value"),
        ({"max_tokens": 2**31}, "max_tokens", "integer_above_max_value"),
        ({"max_tokens": 1.5}, "max_tokens", "invalid_type"),
        ({"max_completion_tokens": True}, "max_completion_tokens", "invalid_type"),
        ({"n": 2}, "n", "unsupported_value"),
        ({"n": 0}, "n", "integer_below_min_value"),
        ({"temperature": 2.5}, "temperature", "decimal_above_max_value"),
        ({"top_p": 2}, "top_p", "decimal_above_max_value"),
        ({"top_p": "1"}, "top_p", "invalid_type"),
        ({"stop": ["a", "b", "c", "d", "e"]}, "stop", "array_above_max_length"),
        ({"stop": 5}, "stop", "invalid_type"),
        ({"stream": True, "stream_options": "x"}, "stream_options", "invalid_type"),
        ({"stream_options": {"include_usage": True}}, "stream_options", None),
        ({"tools": [{"type": "function"}]}, "tools[0].function", "missing_required_parameter"),
        ({"tools": [{"type": "f", "function": {"name": "a"}}]}, "tools[0].type", "invalid_value"),
        ({"tool_choice": "auto"}, "tool_choice", None),
        ({"response_format": {"type": "xml"}}, "response_format.type", "invalid_value"),
        ({"logit_bias": {"abc": 1}}, "logit_bias", "invalid_value"),
        ({"logit_bias": {"\u00b2": 1}}, "logit_bias", "invalid_value"),
        ({"bogus": 1}, "bogus", "unknown_parameter"),
        ({"messages": []}, "messages", "empty_array"),
        ({"messages": [{"role": "robot", "content": "x"}]}, "messages[0].role", "invalid_value"),
        ({"messages": [{"role": "user", "content": 5}]}, "messages[0].content", "invalid_type"),
        ({"messages": [{"role": "user"}]}, "messages[0].content", "missing_required_parameter"),
        ({"messages": [{"role": "tool", "content": "x"}]}, "messages[0].tool_call_id", None),
        ({"messages": ["hi"]}, "messages[0]", "invalid_type"),
        ({"model": 5}, "model", "invalid_type"),
    ],
)
def test_a_chat_body_openai_refuses_is_refused_naming_the_param(
    extra: dict[str, Any], param: str, code: str | None
) -> None:
    error = refused(CHAT, chat(**extra))
    assert (error.status, error.param) == (400, param)
    if code is not None:
        assert error.code == code


def test_the_forwarded_body_holds_only_checked_values() -> None:
    body = normalize(
        CHAT,
        chat(
            messages=[
                {"role": "developer", "content": [{"type": "text", "text": "a"}]},
                {
                    "role": "user",
                    "content": [{"type": "text", "text": "b"}, {"type": "text", "text": "c"}],
                },
            ],
            user="u1",
            metadata={"k": "v"},
            temperature=None,
            stream=True,
        ),
    )
    assert body == {
        "model": "m",
        "messages": [{"role": "system", "content": "a"}, {"role": "user", "content": "b\nc"}],
        "stream": True,
    }


def test_free_form_json_too_deep_to_serialise_again_is_refused() -> None:
    schema: dict[str, Any] = {}
    for _ in range(300):
        schema = {"a": schema}
    tool = {"type": "function", "function": {"name": "f", "parameters": schema}}
    assert refused(CHAT, chat(tools=[tool])).param == "tools[0].function.parameters"


def test_a_body_just_within_the_depth_bound_serialises() -> None:
    schema: dict[str, Any] = {"type": "object"}
    for _ in range(30):
        schema = {"type": "object", "properties": {"x": schema}}
    fmt = {"type": "json_schema", "json_schema": {"name": "s", "schema": schema}}
    assert orjson.loads(orjson.dumps(normalize(CHAT, chat(response_format=fmt))))


def test_an_assistant_turn_with_tool_calls_may_lack_content() -> None:
    call = {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
    messages = [
        *HELLO,
        {"role": "assistant", "content": None, "tool_calls": [call]},
        {"role": "tool", "tool_call_id": "c1", "content": "42"},
    ]
    assert len(normalize(CHAT, chat(messages=messages))["messages"]) == 3


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"model": "m"}, "prompt"),
        ({"model": "m", "prompt": 5}, "prompt"),
        ({"model": "m", "prompt": ["a", "b"]}, "prompt"),
        ({"model": "m", "prompt": [-1]}, "prompt[0]"),
        ({"model": "m", "prompt": "x", "best_of": 3}, "best_of"),
        ({"model": "m", "prompt": "x", "logprobs": 9}, "logprobs"),
    ],
)
def test_a_completion_body_openai_refuses_is_refused(body: dict[str, Any], param: str) -> None:
    assert refused("/v1/completions", body).param == param


@pytest.mark.parametrize(
    ("given", "param"),
    [
        ("", "input"),
        ([], "input"),
        ([1, "a"], "input[0]"),
        ({"a": 1}, "input"),
        ([[-5]], "input[0][0]"),
    ],
)
def test_an_embedding_input_openai_refuses_is_refused(given: object, param: str) -> None:
    assert refused("/v1/embeddings", {"model": "e", "input": given}).param == param


def test_valid_embedding_inputs_pass_as_given() -> None:
    for given in ("a", ["a", "b"], [1, 2], [[1, 2], [3]]):
        assert normalize("/v1/embeddings", {"model": "e", "input": given})["input"] == given
