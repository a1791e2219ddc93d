"""One normalisation of what the gateway forwards: every parameter of a `/v1` request body is
checked for the type and range OpenAI accepts, and the body sent to the engine is rebuilt from
the checked values alone.

Engines are lenient where OpenAI is strict: llama.cpp streams on `"stream": 1` (which the
gateway, testing `is True`, then did not meter), generates the whole context on
`max_tokens: -1`, and answers 500 with Python internals to an unknown role or `top_p: 2`. So
nothing reaches an engine unchecked: an unknown parameter, a wrong type or a value out of range
is OpenAI's 400 `invalid_request_error`, with OpenAI's words, `param` and `code`, before any
routing, limit or engine is involved.

Each endpoint has a table, parameter -> check; a check takes the value and its path (for
`param`) and returns the value to forward (`DROP`: accepted, not forwarded). `null` is the
parameter's absence, as in OpenAI's API. Free-form JSON (a tool's `parameters`, a JSON schema)
is forwarded as given but bounded in depth, so that the body always serialises again. Two
normalisations change the form, not the meaning, for engines that know less than OpenAI: the
`developer` role is sent as `system`, and text-only content parts as one string.

What the engines here cannot do is refused rather than answered wrong: `n` above 1, `best_of`
above 1 and a batch of prompts (llama.cpp would answer one choice and bill it as if asked for
one), and `dimensions` on embeddings.
"""

import re
from collections.abc import Callable, Mapping
from typing import Any, Final

from hashgrid.gateway.errors import BadRequest, shown

Check = Callable[[Any, str], Any]

DROP: Final = object()  # a check's answer for a parameter accepted but not forwarded
INT32_MAX = 2**31 - 1
MAX_JSON_DEPTH = 64  # of free-form JSON under a parameter; orjson serialises 254 levels at most
MAX_STOP = 4
MAX_TOOLS = 128
MAX_LOGIT_BIAS = 1024
MAX_EMBEDDING_INPUTS = 2048
NAME_PATTERN = re.compile(r"[A-Za-z0-9_-]{1,64}")  # tool and schema names, as OpenAI allows


# ------------------------------------------------------------------------------ errors


def _kind(value: object) -> str:
    """How OpenAI names a JSON value's type in its messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a decimal"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"


def invalid_type(param: str, expected: str, value: object) -> BadRequest:
    return BadRequest(
        f"Invalid type for '{param}': expected {expected}, but got {_kind(value)} instead.",
        param=param,
        code="invalid_type",
    )


def invalid_value(param: str, value: object, allowed: tuple[str, ...]) -> BadRequest:
    supported = ", ".join(f"'{a}'" for a in allowed)
    return BadRequest(
        f"Invalid value: '{shown(str(value), 40)}'. Supported values are: {supported}.",
        param=param,
        code="invalid_value",
    )


def missing(param: str) -> BadRequest:
    return BadRequest(
        f"Missing required parameter: '{param}'.", param=param, code="missing_required_parameter"
    )


def unknown(param: str) -> BadRequest:
    return BadRequest(f"Unknown parameter: '{param}'.", param=param, code="unknown_parameter")


def unsupported(param: str, message: str) -> BadRequest:
    return BadRequest(message, param=param, code="unsupported_value")


def _out_of_range(param: str, value: float, lo: float, hi: float, what: str) -> BadRequest:
    below = value < lo
    side, bound, sign = ("below minimum", lo, ">=") if below else ("above maximum", hi, "<=")
    return BadRequest(
        f"Invalid '{param}': {what} {side} value. Expected a value {sign} {bound:g}, "
        f"but got {value:g} instead.",
        param=param,
        code=f"{what}_{'below_min' if below else 'above_max'}_value",
    )


# ------------------------------------------------------------------------ value checks


def boolean(value: Any, param: str) -> bool:
    if value is True or value is False:
        return value
    raise invalid_type(param, "a boolean", value)


def integer(lo: int, hi: int) -> Check:
    def check(value: Any, param: str) -> int:
        if type(value) is not int:  # bool is an int to Python, not to JSON Schema
            raise invalid_type(param, "an integer", value)
        if not lo <= value <= hi:
            raise _out_of_range(param, value, lo, hi, "integer")
        return value

    return check


def number(lo: float, hi: float) -> Check:
    def check(value: Any, param: str) -> float | int:
        if type(value) not in (int, float):  # orjson parses no NaN or infinity
            raise invalid_type(param, "a number", value)
        if not lo <= value <= hi:
            raise _out_of_range(param, value, lo, hi, "decimal")
        return value  # type: ignore[no-any-return]

    return check


def string(value: Any, param: str) -> str:
    if isinstance(value, str):
        return value
    raise invalid_type(param, "a string", value)


def name(value: Any, param: str) -> str:
    if not isinstance(value, str):
        raise invalid_type(param, "a string", value)
    if not NAME_PATTERN.fullmatch(value):
        raise BadRequest(
            f"Invalid '{param}': '{shown(value, 40)}' does not match '^[a-zA-Z0-9_-]{{1,64}}$'.",
            param=param,
            code="invalid_value",
        )
    return value


def one_of(*allowed: str) -> Check:
    def check(value: Any, param: str) -> str:
        if not isinstance(value, str):
            raise invalid_type(param, "a string", value)
        if value not in allowed:
            raise invalid_value(param, value, allowed)
        return value

    return check


def array(item: Check, *, min_len: int = 0, max_len: int | None = None) -> Check:
    def check(value: Any, param: str) -> list[Any]:
        if not isinstance(value, list):
            raise invalid_type(param, "an array", value)
        if len(value) < min_len:
            raise BadRequest(
                f"Invalid '{param}': empty array. Expected an array with minimum length "
                f"{min_len}, but got an empty array instead.",
                param=param,
                code="empty_array",
            )
        if max_len is not None and len(value) > max_len:
            raise BadRequest(
                f"Invalid '{param}': array too long. Expected an array with maximum length "
                f"{max_len}, but got an array with length {len(value)} instead.",
                param=param,
                code="array_above_max_length",
            )
        return [item(v, f"{param}[{i}]") for i, v in enumerate(value)]

    return check


def json_object(value: Any, param: str) -> dict[str, Any]:
    """Free-form JSON (a JSON schema, metadata): any object not nested too deep."""
    if not isinstance(value, dict):
        raise invalid_type(param, "an object", value)
    _check_depth(value, param, MAX_JSON_DEPTH)
    return value


def _check_depth(value: dict[str, Any] | list[Any], param: str, left: int) -> None:
    if left == 0:
        raise BadRequest(
            f"Invalid '{param}': nested deeper than {MAX_JSON_DEPTH} levels.",
            param=param,
            code="invalid_value",
        )
    for child in value.values() if isinstance(value, dict) else value:
        if isinstance(child, dict | list):
            _check_depth(child, param, left - 1)


def either(*checks: tuple[type, Check], expected: str) -> Check:
    """The check for the first of `checks` whose JSON type (str, list, dict) the value has."""

    def check(value: Any, param: str) -> Any:
        for kind, inner in checks:
            if isinstance(value, kind):
                return inner(value, param)
        raise invalid_type(param, expected, value)

    return check


def fields(table: Mapping[str, Check], required: tuple[str, ...] = ()) -> Check:
    """An object with the parameters in `table` (those in `required` present and not null)."""

    def check(value: Any, param: str) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise invalid_type(param, "an object", value)
        return checked_object(value, table, required, param)

    return check


def checked_object(
    value: Mapping[str, Any],
    table: Mapping[str, Check],
    required: tuple[str, ...] = (),
    prefix: str = "",
) -> dict[str, Any]:
    """`value`'s keys checked against `table`: unknown ones refused, null ones left out."""
    out: dict[str, Any] = {}
    for key, v in value.items():
        param = f"{prefix}.{key}" if prefix else key
        check = table.get(key)
        if check is None:
            raise unknown(param)
        if v is None:
            continue
        checked = check(v, param)
        if checked is not DROP:
            out[key] = checked
    for key in required:
        if key not in out:
            raise missing(f"{prefix}.{key}" if prefix else key)
    return out


def dropped(check: Check) -> Check:
    """`check`, then not forwarded: what the engines have no use for (`user`, `metadata`)."""

    def run(value: Any, param: str) -> object:
        check(value, param)
        return DROP

    return run


# ------------------------------------------------------------------ shared parameters

TOKENS = integer(1, INT32_MAX)
PENALTY = number(-2, 2)
STOP = either((str, string), (list, array(string, max_len=MAX_STOP)), expected="a string or array")
STREAM_OPTIONS = fields({"include_usage": boolean})
METADATA = dropped(json_object)
SAMPLING: dict[str, Check] = {
    "frequency_penalty": PENALTY,
    "presence_penalty": PENALTY,
    "temperature": number(0, 2),
    "top_p": number(0, 1),
    "seed": integer(-(2**63), 2**64 - 1),
    "stop": STOP,
    "stream": boolean,
    "stream_options": STREAM_OPTIONS,
    "user": dropped(string),
    # Beyond OpenAI: the sampling knobs vLLM and llama.cpp take, as their clients send them.
    "top_k": integer(-1, INT32_MAX),
    "min_p": number(0, 1),
    "repetition_penalty": number(0, 10),
    "repeat_penalty": number(0, 10),
}


BIAS = number(-100, 100)
CHOICES = integer(1, 128)


def _logit_bias(value: Any, param: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise invalid_type(param, "an object", value)
    if len(value) > MAX_LOGIT_BIAS:
        raise BadRequest(
            f"Invalid '{param}': at most {MAX_LOGIT_BIAS} tokens may be biased.", param=param
        )
    for token, v in value.items():
        # ASCII digits only: `isdigit` also holds for '²', which `int` refuses.
        if not (token.isascii() and token.isdigit()) or int(token) > INT32_MAX:
            raise BadRequest(
                f"Invalid '{param}': '{shown(token, 40)}' is not a token id.",
                param=param,
                code="invalid_value",
            )
        BIAS(v, f"{param}.{token}")
    return value


def _just_one(what: str) -> Check:
    def check(value: Any, param: str) -> int:
        count: int = CHOICES(value, param)
        if count > 1:
            raise unsupported(
                param,
                f"'{param}' above 1 is not supported: send one request per {what} "
                "(the engines here generate one).",
            )
        return count

    return check


# --------------------------------------------------------------------------- chat

ROLES = ("system", "developer", "user", "assistant", "tool", "function")
ROLE = one_of(*ROLES)
TEXT_PART = fields({"type": one_of("text"), "text": string}, ("type", "text"))
IMAGE_PART = fields(
    {
        "type": one_of("image_url"),
        "image_url": fields({"url": string, "detail": one_of("auto", "low", "high")}, ("url",)),
    },
    ("type", "image_url"),
)
AUDIO_PART = fields(
    {
        "type": one_of("input_audio"),
        "input_audio": fields({"data": string, "format": one_of("wav", "mp3")}, ("data", "format")),
    },
    ("type", "input_audio"),
)
REFUSAL_PART = fields({"type": one_of("refusal"), "refusal": string}, ("type", "refusal"))
PARTS_BY_ROLE: dict[str, dict[str, Check]] = {
    "system": {"text": TEXT_PART},
    "developer": {"text": TEXT_PART},
    "tool": {"text": TEXT_PART},
    "function": {"text": TEXT_PART},
    "user": {"text": TEXT_PART, "image_url": IMAGE_PART, "input_audio": AUDIO_PART},
    "assistant": {"text": TEXT_PART, "refusal": REFUSAL_PART},
}
TOOL_CALL = fields(
    {
        "id": string,
        "type": one_of("function"),
        "function": fields({"name": string, "arguments": string}, ("name", "arguments")),
    },
    ("id", "type", "function"),
)
MESSAGE_FIELDS: dict[str, Check] = {
    "role": ROLE,
    "content": lambda v, p: v,  # checked by role, below
    "name": string,
    "tool_call_id": string,
    "tool_calls": array(TOOL_CALL),
    "function_call": fields({"name": string, "arguments": string}, ("name", "arguments")),
    "refusal": string,
}
FUNCTION = fields(
    {
        "name": name,
        "description": string,
        "parameters": json_object,
        "strict": boolean,
    },
    ("name",),
)
TOOL = fields({"type": one_of("function"), "function": FUNCTION}, ("type", "function"))
NAMED_TOOL_CHOICE = fields(
    {"type": one_of("function"), "function": fields({"name": name}, ("name",))},
    ("type", "function"),
)
TOOL_CHOICE = either(
    (str, one_of("none", "auto", "required")),
    (dict, NAMED_TOOL_CHOICE),
    expected="a string or object",
)
JSON_SCHEMA = fields(
    {"name": name, "description": string, "schema": json_object, "strict": boolean}, ("name",)
)


FORMAT_TYPE = one_of("text", "json_object", "json_schema")


def _response_format(value: Any, param: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise invalid_type(param, "an object", value)
    kind = FORMAT_TYPE(value.get("type"), f"{param}.type")
    table: dict[str, Check] = {"type": string}
    if kind == "json_schema":
        table["json_schema"] = JSON_SCHEMA
    required = ("type", "json_schema") if kind == "json_schema" else ("type",)
    return checked_object(value, table, required, param)


def _content(role: str, value: Any, param: str) -> str | list[dict[str, Any]]:
    """A message's content as the engines take it: text-only parts joined into one string."""
    if isinstance(value, str):
        return value
    if not isinstance(value, list):
        raise invalid_type(param, "a string or array", value)
    allowed = PARTS_BY_ROLE[role]
    parts: list[dict[str, Any]] = []
    for i, part in enumerate(value):
        where = f"{param}[{i}]"
        kind = part.get("type") if isinstance(part, dict) else None
        if not isinstance(part, dict):
            raise invalid_type(where, "an object", part)
        check = allowed.get(kind) if isinstance(kind, str) else None
        if check is None:
            raise invalid_value(f"{where}.type", kind, tuple(allowed))
        parts.append(check(part, where))
    if all(p["type"] == "text" for p in parts):
        return "\n".join(p["text"] for p in parts)
    return parts


def _message(value: Any, param: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise invalid_type(param, "an object", value)
    message = checked_object(value, MESSAGE_FIELDS, ("role",), param)
    role = message["role"]
    content = value.get("content")
    if content is None:
        # Only an assistant's turn may lack content: one that called tools or refused. Chat
        # templates read every turn's content, so it goes on as an empty string.
        if role != "assistant" or not message.keys() & {"tool_calls", "function_call", "refusal"}:
            raise missing(f"{param}.content")
        message["content"] = ""
    else:
        message["content"] = _content(role, content, f"{param}.content")
    if role == "tool" and "tool_call_id" not in message:
        raise missing(f"{param}.tool_call_id")
    if role == "function" and "name" not in message:
        raise missing(f"{param}.name")
    if role == "developer":  # OpenAI's newer name for it; chat templates know `system`
        message["role"] = "system"
    return message


CHAT: dict[str, Check] = {
    **SAMPLING,
    "model": string,
    "messages": array(_message, min_len=1),
    "max_tokens": TOKENS,
    "max_completion_tokens": TOKENS,
    "n": _just_one("choice"),
    "logprobs": boolean,
    "top_logprobs": integer(0, 20),
    "logit_bias": _logit_bias,
    "tools": array(TOOL, max_len=MAX_TOOLS),
    "tool_choice": TOOL_CHOICE,
    "parallel_tool_calls": boolean,
    "response_format": _response_format,
    "metadata": METADATA,
    "store": dropped(boolean),
    "service_tier": dropped(string),
}


def _chat_rules(body: dict[str, Any]) -> None:
    if "top_logprobs" in body and body.get("logprobs") is not True:
        raise BadRequest("'top_logprobs' requires 'logprobs' to be true.", param="top_logprobs")
    if "tool_choice" in body and "tools" not in body:
        raise BadRequest(
            "'tool_choice' is only allowed when 'tools' are specified.", param="tool_choice"
        )


# --------------------------------------------------------------------- completions

TOKEN_ID = integer(0, INT32_MAX)
TOKEN_IDS = array(TOKEN_ID, min_len=1)


def _text_or_tokens(value: Any, param: str) -> tuple[str | list[Any], bool]:
    """A string, token ids, or a non-empty array of several (the caller checks its items);
    and whether it is the last, an array of several."""
    if isinstance(value, str):
        return value, False
    if not isinstance(value, list):
        raise invalid_type(param, "a string or array", value)
    if not value:
        raise BadRequest(f"Invalid '{param}': empty array.", param=param, code="empty_array")
    if all(type(t) is int for t in value):
        return TOKEN_IDS(value, param), False
    return value, True


def _prompt(value: Any, param: str) -> str | list[Any]:
    """One prompt: a string or token ids (a batch of prompts is refused: module docstring)."""
    prompt, several = _text_or_tokens(value, param)
    if not several:
        return prompt
    if len(prompt) > 1:
        raise unsupported(param, "A batch of prompts is not supported: send one request each.")
    return _prompt(prompt[0], f"{param}[0]")


COMPLETION: dict[str, Check] = {
    **SAMPLING,
    "model": string,
    "prompt": _prompt,
    "max_tokens": TOKENS,
    "n": _just_one("choice"),
    "best_of": _just_one("completion"),
    "echo": boolean,
    "logprobs": integer(0, 5),
    "logit_bias": _logit_bias,
    "suffix": string,
}

# ---------------------------------------------------------------------- embeddings


def _embedding_input(value: Any, param: str) -> str | list[Any]:
    if value == "":
        raise BadRequest(f"Invalid '{param}': empty string.", param=param, code="invalid_value")
    given, several = _text_or_tokens(value, param)
    if not several:
        return given
    items = either(
        (str, _embedding_input), (list, TOKEN_IDS), expected="a string or array of tokens"
    )
    return array(items, max_len=MAX_EMBEDDING_INPUTS)(given, param)  # type: ignore[no-any-return]


def _no_dimensions(value: Any, param: str) -> object:
    TOKENS(value, param)  # a positive 32-bit integer, as OpenAI takes it
    raise unsupported(param, "'dimensions' is not supported by the models served here.")


EMBEDDING: dict[str, Check] = {
    "model": string,
    "input": _embedding_input,
    "encoding_format": one_of("float", "base64"),
    "dimensions": _no_dimensions,
    "user": dropped(string),
}


# ------------------------------------------------------------------------- the entry


def _stream_rules(body: dict[str, Any]) -> None:
    if "stream_options" in body and body.get("stream") is not True:
        raise BadRequest(
            "The 'stream_options' parameter is only allowed when 'stream' is enabled.",
            param="stream_options",
        )


ENDPOINTS: dict[str, tuple[dict[str, Check], tuple[str, ...], list[Callable[[Any], None]]]] = {
    "/v1/chat/completions": (CHAT, ("model", "messages"), [_stream_rules, _chat_rules]),
    "/v1/completions": (COMPLETION, ("model", "prompt"), [_stream_rules]),
    "/v1/embeddings": (EMBEDDING, ("model", "input"), []),
}


def normalize(endpoint: str, body: Mapping[str, Any]) -> dict[str, Any]:
    """The body to forward for a request to `endpoint`, built from its checked values; raises
    `BadRequest` as OpenAI would for the first parameter it refuses."""
    table, required, rules = ENDPOINTS[endpoint]
    out = checked_object(body, table, required)
    for rule in rules:
        rule(out)
    return out
