"""What the gateway records is what the server can store: client-given strings cut to their
columns without NUL, a node's token counts clamped and held against the node, and the cached
prompt tokens an engine reports (OpenAI's `usage.prompt_tokens_details.cached_tokens`)."""

from typing import Any

import orjson
import pytest
from pydantic import ValidationError
from structlog.testing import capture_logs

from hashgrid.contracts.bounds import INT32_MAX
from hashgrid.contracts.gateway import KeyEntry, RouteReplica, UsageRecord
from hashgrid.gateway.metering import PLAUSIBLE_TOKENS, cached_count, clamp_text, token_count
from hashgrid.gateway.proxy import Exchange, usage_record

KEY = KeyEntry(key_id="k1", key_hash="h", customer_id="c1")


def exchange(**fields: Any) -> Exchange:
    x = Exchange(request_id="req_1", endpoint="/v1/chat/completions", **fields)
    x.replica = RouteReplica(
        replica_id="r1", endpoint="http://e", node_id="n1", site="s1", region="us"
    )
    return x


def stored(x: Exchange) -> UsageRecord:
    """The record as the server validates it after the spool's JSON round trip."""
    line = orjson.dumps(usage_record(x, KEY, 5.0), option=orjson.OPT_UTC_Z)
    return UsageRecord.model_validate_json(line)


@pytest.mark.parametrize(
    ("reported", "kept", "trusted"),
    [
        (None, 0, True),
        (0, 0, True),
        (1234, 1234, True),
        (PLAUSIBLE_TOKENS, PLAUSIBLE_TOKENS, True),
        (-100_000, 0, False),
        (PLAUSIBLE_TOKENS + 1, 0, False),
        (2**31, 0, False),
        (2**70, 0, False),
        (12.7, 0, False),
        (-0.5, 0, False),
        (1e300, 0, False),
        ("12", 0, False),
        (True, 0, False),
        ([5], 0, False),
    ],
)
def test_a_token_count_is_taken_only_as_a_plausible_integer(
    reported: object, kept: int, trusted: bool
) -> None:
    assert token_count(reported) == (kept, trusted)


def test_the_plausible_bound_fits_the_columns() -> None:
    assert PLAUSIBLE_TOKENS < INT32_MAX


def test_text_loses_nul_and_is_cut_to_its_column() -> None:
    assert clamp_text("tiny", 200) == "tiny"
    assert clamp_text("ti\x00ny", 200) == "tiny"
    assert clamp_text("m" * 300, 200) == "m" * 200


@pytest.mark.parametrize(
    ("model", "client_id"),
    [("m" * 300, "c" * 300), ("ti\x00ny", "id\x00"), ("\x00" * 5, None)],
)
def test_a_record_of_a_hostile_request_is_storable(model: str, client_id: str | None) -> None:
    """The 404 left by a 300-character or NUL model name is a record the server stores."""
    record = stored(exchange(model=model, client_request_id=client_id, status=404))
    assert "\x00" not in record.model
    assert len(record.model) <= 200
    assert record.client_request_id is None or "\x00" not in record.client_request_id


def test_implausible_counts_are_clamped_flagged_and_logged_against_the_node() -> None:
    x = exchange(model="tiny")
    with capture_logs() as logs:
        assert x.take_usage({"prompt_tokens": -100_000, "completion_tokens": 2**31})
    assert (x.prompt_tokens, x.completion_tokens, x.usage_clamped) == (0, 0, True)
    (event,) = [e for e in logs if "implausible" in e["event"]]
    assert (event["node_id"], event["replica_id"], event["request_id"]) == ("n1", "r1", "req_1")
    assert event["log_level"] == "warning"
    record = stored(x)
    assert (record.prompt_tokens, record.usage_clamped) == (0, True)


def test_plausible_counts_are_taken_as_reported_and_not_flagged() -> None:
    x = exchange(model="tiny")
    with capture_logs() as logs:
        assert x.take_usage({"prompt_tokens": 7, "completion_tokens": 2, "total_tokens": 9})
    assert (x.prompt_tokens, x.completion_tokens, x.usage_clamped) == (7, 2, False)
    assert logs == []
    assert not x.take_usage("lots")  # no usage object: nothing taken


@pytest.mark.parametrize(
    ("usage", "kept"),
    [
        ({"prompt_tokens": 10}, (0, True)),
        ({"prompt_tokens": 10, "prompt_tokens_details": None}, (0, True)),
        ({"prompt_tokens": 10, "prompt_tokens_details": {"audio_tokens": 3}}, (0, True)),
        ({"prompt_tokens": 10, "prompt_tokens_details": {"cached_tokens": 8}}, (8, True)),
        ({"prompt_tokens": 10, "prompt_tokens_details": {"cached_tokens": 25}}, (10, True)),
        ({"prompt_tokens": 10, "prompt_tokens_details": {"cached_tokens": -1}}, (0, False)),
        ({"prompt_tokens": 10, "prompt_tokens_details": {"cached_tokens": "8"}}, (0, False)),
    ],
)
def test_cached_prompt_tokens_are_read_from_the_details_and_never_exceed_the_prompt(
    usage: dict[str, Any], kept: tuple[int, bool]
) -> None:
    assert cached_count(usage, usage["prompt_tokens"]) == kept


def test_a_record_carries_the_cached_tokens_of_an_answer_or_a_streams_last_chunk() -> None:
    """The same usage object ends a plain answer and, with `include_usage`, a stream."""
    answer = exchange(model="tiny")
    usage = {
        "prompt_tokens": 12,
        "completion_tokens": 3,
        "prompt_tokens_details": {"cached_tokens": 9},
    }
    assert answer.take_usage(usage)
    assert stored(answer).cached_tokens == 9
    assert not stored(answer).usage_clamped
    stream = exchange(model="tiny", stream=True)
    chunk = orjson.loads(orjson.dumps({"choices": [], "usage": {**usage, "prompt_tokens": 4}}))
    assert stream.take_usage(chunk["usage"])
    assert (stored(stream).prompt_tokens, stored(stream).cached_tokens) == (4, 4)
    lying = exchange(model="tiny")
    with capture_logs() as logs:
        lying.take_usage({**usage, "prompt_tokens_details": {"cached_tokens": -3}})
    assert (stored(lying).cached_tokens, stored(lying).usage_clamped) == (0, True)
    assert [e for e in logs if "implausible" in e["event"]]


@pytest.mark.parametrize(
    "bad",
    [
        {"model": "m" * 201},
        {"model": "ti\x00ny"},
        {"client_request_id": "c" * 201},
        {"prompt_tokens": -1},
        {"completion_tokens": 2**31},
        {"prompt_tokens": "many"},
        {"ttft_ms": float("nan")},
        {"duration_ms": -1.0},
        {"status_code": 2**40},
        {"started_at": "2026-01-01T00:00:00"},  # no zone: the column would refuse it
        {"request_id": ""},
    ],
)
def test_the_contract_refuses_what_a_column_cannot_hold(bad: dict[str, Any]) -> None:
    good = usage_record(exchange(model="tiny"), KEY, 5.0)
    UsageRecord.model_validate(good)
    with pytest.raises(ValidationError):
        UsageRecord.model_validate({**good, **bad})
