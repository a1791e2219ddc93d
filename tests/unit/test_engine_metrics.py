"""Engine load read from Prometheus text.

The samples follow the shape of each engine's documented /metrics output: vLLM's
(docs.vllm.ai "Production Metrics"; gauges registered in vllm-project/vllm
vllm/v1/metrics/loggers.py with labels model_name and engine) and SGLang's (docs.sglang.io
"Production Metrics"; gauges registered in sgl-project/sglang
python/sglang/srt/metrics/collector.py) and llama.cpp's llama-server's (ggml-org/llama.cpp
tools/server/server-task.cpp `to_metrics`, which writes each figure with C++ `<<`, so whole
numbers have no decimal point; builds before mid-2025 also wrote `kv_cache_usage_ratio`).
"""

# ruff: noqa: E501  (exposition lines are kept whole, as an engine writes them)

import pytest

from hashgrid.agent.engines.metrics import EngineLoad, load_from_metrics, parse_samples

# vLLM serving one model with two data-parallel engines; a version that exports both the new
# and the deprecated KV-cache gauge, as vLLM did while renaming it.
VLLM = """\
# HELP vllm:num_requests_running Number of requests in model execution batches.
# TYPE vllm:num_requests_running gauge
vllm:num_requests_running{engine="0",model_name="meta-llama/Llama-3.1-8B-Instruct"} 3.0
vllm:num_requests_running{engine="1",model_name="meta-llama/Llama-3.1-8B-Instruct"} 4.0
# HELP vllm:num_requests_waiting Number of requests waiting to be processed.
# TYPE vllm:num_requests_waiting gauge
vllm:num_requests_waiting{engine="0",model_name="meta-llama/Llama-3.1-8B-Instruct"} 1.0
vllm:num_requests_waiting{engine="1",model_name="meta-llama/Llama-3.1-8B-Instruct"} 5.0
# HELP vllm:gpu_cache_usage_perc GPU KV-cache usage. 1 means 100 percent usage. DEPRECATED
# TYPE vllm:gpu_cache_usage_perc gauge
vllm:gpu_cache_usage_perc{engine="0",model_name="meta-llama/Llama-3.1-8B-Instruct"} 0.25
vllm:gpu_cache_usage_perc{engine="1",model_name="meta-llama/Llama-3.1-8B-Instruct"} 0.625
# HELP vllm:kv_cache_usage_perc KV-cache usage. 1 means 100 percent usage.
# TYPE vllm:kv_cache_usage_perc gauge
vllm:kv_cache_usage_perc{engine="0",model_name="meta-llama/Llama-3.1-8B-Instruct"} 0.25
vllm:kv_cache_usage_perc{engine="1",model_name="meta-llama/Llama-3.1-8B-Instruct"} 0.625
# HELP vllm:prompt_tokens_total Number of prefill tokens processed.
# TYPE vllm:prompt_tokens_total counter
vllm:prompt_tokens_total{engine="0",model_name="meta-llama/Llama-3.1-8B-Instruct"} 8128.0
# HELP vllm:iteration_tokens_total Histogram of number of tokens per engine_step.
# TYPE vllm:iteration_tokens_total histogram
vllm:iteration_tokens_total_sum{engine="0",model_name="meta-llama/Llama-3.1-8B-Instruct"} 0.0
vllm:iteration_tokens_total_bucket{engine="0",le="1.0",model_name="meta-llama/Llama-3.1-8B-Instruct"} 3.0
vllm:iteration_tokens_total_bucket{engine="0",le="+Inf",model_name="meta-llama/Llama-3.1-8B-Instruct"} 3.0
vllm:iteration_tokens_total_count{engine="0",model_name="meta-llama/Llama-3.1-8B-Instruct"} 3.0
"""

# An older vLLM, which has only the GPU KV-cache gauge.
VLLM_OLD = """\
# HELP vllm:num_requests_running Number of requests currently running on GPU.
# TYPE vllm:num_requests_running gauge
vllm:num_requests_running{model_name="m"} 2.0
# HELP vllm:num_requests_waiting Number of requests waiting to be processed.
# TYPE vllm:num_requests_waiting gauge
vllm:num_requests_waiting{model_name="m"} 0.0
# HELP vllm:gpu_cache_usage_perc GPU KV-cache usage. 1 means 100 percent usage.
# TYPE vllm:gpu_cache_usage_perc gauge
vllm:gpu_cache_usage_perc{model_name="m"} 0.4
"""

# SGLang with two data-parallel schedulers, each with its own KV pool.
SGLANG = """\
# HELP sglang:prompt_tokens_total Number of prefill tokens processed.
# TYPE sglang:prompt_tokens_total counter
sglang:prompt_tokens_total{engine_type="unified",model_name="meta-llama/Llama-3.1-8B-Instruct",pp_rank="0",tp_rank="0"} 8.128902e+06
# HELP sglang:num_running_reqs The number of running requests.
# TYPE sglang:num_running_reqs gauge
sglang:num_running_reqs{dp_rank="0",engine_type="unified",model_name="meta-llama/Llama-3.1-8B-Instruct",pp_rank="0",tp_rank="0"} 12.0
sglang:num_running_reqs{dp_rank="1",engine_type="unified",model_name="meta-llama/Llama-3.1-8B-Instruct",pp_rank="0",tp_rank="0"} 9.0
# HELP sglang:num_queue_reqs The number of requests in the waiting queue.
# TYPE sglang:num_queue_reqs gauge
sglang:num_queue_reqs{dp_rank="0",engine_type="unified",model_name="meta-llama/Llama-3.1-8B-Instruct",pp_rank="0",tp_rank="0"} 2.0
sglang:num_queue_reqs{dp_rank="1",engine_type="unified",model_name="meta-llama/Llama-3.1-8B-Instruct",pp_rank="0",tp_rank="0"} 0.0
# HELP sglang:token_usage The token usage.
# TYPE sglang:token_usage gauge
sglang:token_usage{dp_rank="0",engine_type="unified",model_name="meta-llama/Llama-3.1-8B-Instruct",pp_rank="0",tp_rank="0"} 0.28
sglang:token_usage{dp_rank="1",engine_type="unified",model_name="meta-llama/Llama-3.1-8B-Instruct",pp_rank="0",tp_rank="0"} 0.31
# HELP sglang:cache_hit_rate The prefix cache hit rate.
# TYPE sglang:cache_hit_rate gauge
sglang:cache_hit_rate{dp_rank="0",engine_type="unified",model_name="meta-llama/Llama-3.1-8B-Instruct",pp_rank="0",tp_rank="0"} 0.0075
# HELP sglang:time_to_first_token_seconds Histogram of time to first token in seconds.
# TYPE sglang:time_to_first_token_seconds histogram
sglang:time_to_first_token_seconds_sum{model_name="meta-llama/Llama-3.1-8B-Instruct"} 2.35e+06
sglang:time_to_first_token_seconds_bucket{le="0.001",model_name="meta-llama/Llama-3.1-8B-Instruct"} 0.0
sglang:time_to_first_token_seconds_bucket{le="+Inf",model_name="meta-llama/Llama-3.1-8B-Instruct"} 7.0
sglang:time_to_first_token_seconds_count{model_name="meta-llama/Llama-3.1-8B-Instruct"} 7.0
"""


# llama-server with --metrics and --parallel 4: two slots busy, one request deferred.
LLAMA_SERVER = """\
# HELP llamacpp:prompt_tokens_total Number of prompt tokens processed, excluding cached tokens
# TYPE llamacpp:prompt_tokens_total counter
llamacpp:prompt_tokens_total 1187
# HELP llamacpp:prompt_seconds_total Total time spent processing prompts
# TYPE llamacpp:prompt_seconds_total counter
llamacpp:prompt_seconds_total 2.913
# HELP llamacpp:n_tokens_max Largest observed sequence length (prompt + generation)
# TYPE llamacpp:n_tokens_max counter
llamacpp:n_tokens_max 361
# HELP llamacpp:prompt_tokens_seconds Average prompt throughput in tokens/s
# TYPE llamacpp:prompt_tokens_seconds gauge
llamacpp:prompt_tokens_seconds 407.483
# HELP llamacpp:requests_processing Number of requests processing
# TYPE llamacpp:requests_processing gauge
llamacpp:requests_processing 2
# HELP llamacpp:requests_deferred Number of requests deferred
# TYPE llamacpp:requests_deferred gauge
llamacpp:requests_deferred 1
# HELP llamacpp:n_busy_slots_per_decode Average number of busy slots per llama_decode() call
# TYPE llamacpp:n_busy_slots_per_decode gauge
llamacpp:n_busy_slots_per_decode 1.73
"""

# An older llama-server, which also wrote its KV-cache fill.
LLAMA_SERVER_OLD = """\
# HELP llamacpp:kv_cache_usage_ratio KV-cache usage. 1 means 100 percent usage.
# TYPE llamacpp:kv_cache_usage_ratio gauge
llamacpp:kv_cache_usage_ratio 0.125
# HELP llamacpp:kv_cache_tokens KV-cache tokens.
# TYPE llamacpp:kv_cache_tokens gauge
llamacpp:kv_cache_tokens 512
# HELP llamacpp:requests_processing Number of request processing.
# TYPE llamacpp:requests_processing gauge
llamacpp:requests_processing 1
# HELP llamacpp:requests_deferred Number of request deferred.
# TYPE llamacpp:requests_deferred gauge
llamacpp:requests_deferred 0
"""


def test_llama_server_reads_busy_slots_and_deferred_requests() -> None:
    assert load_from_metrics("llamacpp", LLAMA_SERVER) == EngineLoad(
        running=2, waiting=1, kv_cache_usage=None
    )


def test_an_older_llama_server_also_reads_its_kv_cache_fill() -> None:
    assert load_from_metrics("llamacpp", LLAMA_SERVER_OLD) == EngineLoad(
        running=1, waiting=0, kv_cache_usage=0.125
    )


def test_vllm_sums_requests_over_engines_and_takes_the_fullest_kv_cache() -> None:
    assert load_from_metrics("vllm", VLLM) == EngineLoad(running=7, waiting=6, kv_cache_usage=0.625)


def test_vllm_prefers_kv_cache_usage_perc_over_the_deprecated_gauge() -> None:
    old_gauge = (
        'vllm:gpu_cache_usage_perc{engine="1",model_name="meta-llama/Llama-3.1-8B-Instruct"}'
    )
    text = VLLM.replace(f"{old_gauge} 0.625", f"{old_gauge} 0.9")
    assert f"{old_gauge} 0.9" in text  # the deprecated gauge now disagrees
    assert load_from_metrics("vllm", text).kv_cache_usage == 0.625


def test_vllm_without_kv_cache_usage_perc_reads_gpu_cache_usage_perc() -> None:
    assert load_from_metrics("vllm", VLLM_OLD) == EngineLoad(
        running=2, waiting=0, kv_cache_usage=0.4
    )


def test_sglang_sums_requests_over_schedulers_and_takes_the_fullest_token_pool() -> None:
    assert load_from_metrics("sglang", SGLANG) == EngineLoad(
        running=21, waiting=2, kv_cache_usage=0.31
    )


def test_one_engines_metrics_mean_nothing_to_the_other() -> None:
    assert load_from_metrics("sglang", VLLM) == EngineLoad(0, 0, None)
    assert load_from_metrics("vllm", SGLANG) == EngineLoad(0, 0, None)
    assert load_from_metrics("llamacpp", VLLM) == EngineLoad(0, 0, None)
    assert load_from_metrics("vllm", LLAMA_SERVER) == EngineLoad(0, 0, None)


def test_unknown_engine_reads_as_idle() -> None:
    assert load_from_metrics("no-such-engine", VLLM) == EngineLoad(0, 0, None)


def test_missing_kv_cache_metric_reads_as_unknown_but_counts_still_read() -> None:
    text = "\n".join(line for line in VLLM.splitlines() if "cache_usage" not in line)
    assert load_from_metrics("vllm", text) == EngineLoad(running=7, waiting=6, kv_cache_usage=None)


def test_unlabelled_samples_are_read() -> None:
    text = "sglang:num_running_reqs 4\nsglang:num_queue_reqs 1\nsglang:token_usage 0.5\n"
    assert load_from_metrics("sglang", text) == EngineLoad(4, 1, 0.5)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "\n\n",
        "# just a comment\n",
        "not prometheus at all",
        "<html><body>502 Bad Gateway</body></html>",
        '{"running": 3}',
        'vllm:num_requests_running{engine="0" 3\n',
        "vllm:num_requests_running abc\n",
        "\x00\xff",
    ],
)
def test_malformed_text_reads_as_idle_without_raising(text: str) -> None:
    assert load_from_metrics("vllm", text) == EngineLoad(0, 0, None)


def test_a_garbled_line_does_not_hide_the_readable_ones() -> None:
    text = VLLM.replace(
        "# HELP vllm:num_requests_waiting",
        'vllm:num_requests_running{engine="2" garbled\n# HELP vllm:num_requests_waiting',
    )
    assert load_from_metrics("vllm", text) == EngineLoad(7, 6, 0.625)


def test_non_finite_and_negative_values_do_not_poison_the_load() -> None:
    text = (
        'vllm:num_requests_running{engine="0"} NaN\n'
        'vllm:num_requests_running{engine="1"} 2\n'
        'vllm:num_requests_waiting{engine="0"} +Inf\n'
        'vllm:num_requests_waiting{engine="1"} -3\n'
        'vllm:num_requests_waiting{engine="2"} 4\n'
        'vllm:kv_cache_usage_perc{engine="0"} NaN\n'
    )
    assert load_from_metrics("vllm", text) == EngineLoad(2, 4, None)


def test_parse_samples_keeps_names_labels_and_values() -> None:
    samples = parse_samples(SGLANG)
    running = [s for s in samples if s.name == "sglang:num_running_reqs"]
    assert [(s.labels["dp_rank"], s.value) for s in running] == [("0", 12.0), ("1", 9.0)]
    assert running[0].labels["model_name"] == "meta-llama/Llama-3.1-8B-Instruct"
