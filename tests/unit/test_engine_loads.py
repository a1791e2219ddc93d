"""Scraping engines' loads for the heartbeat, against a real HTTP server on loopback that serves
metrics the way llama-server, vLLM and SGLang do (metric names as in `contracts/engines.py`)."""

import asyncio
from collections.abc import AsyncIterator

import pytest
from aiohttp import web

from hashgrid.agent.engines.llamacpp import LlamaCpp
from hashgrid.agent.loads import LoadScraper, ServingEngine
from hashgrid.common.net import free_port
from hashgrid.contracts.agent import ReplicaLoad

pytestmark = pytest.mark.timeout(30)

VLLM = """\
# HELP vllm:num_requests_running Number of requests in model execution batches.
# TYPE vllm:num_requests_running gauge
vllm:num_requests_running{engine="0",model_name="m"} 3.0
# HELP vllm:num_requests_waiting Number of requests waiting to be processed.
# TYPE vllm:num_requests_waiting gauge
vllm:num_requests_waiting{engine="0",model_name="m"} 2.0
# HELP vllm:kv_cache_usage_perc KV-cache usage. 1 means 100 percent usage.
# TYPE vllm:kv_cache_usage_perc gauge
vllm:kv_cache_usage_perc{engine="0",model_name="m"} 0.5
"""

LLAMA_SERVER = """\
# HELP llamacpp:requests_processing Number of requests processing
# TYPE llamacpp:requests_processing gauge
llamacpp:requests_processing 2
# HELP llamacpp:requests_deferred Number of requests deferred
# TYPE llamacpp:requests_deferred gauge
llamacpp:requests_deferred 1
"""

SGLANG = """\
# HELP sglang:num_running_reqs The number of running requests.
# TYPE sglang:num_running_reqs gauge
sglang:num_running_reqs{dp_rank="0",model_name="m",tp_rank="0"} 12.0
sglang:num_running_reqs{dp_rank="1",model_name="m",tp_rank="0"} 9.0
# HELP sglang:num_queue_reqs The number of requests in the waiting queue.
# TYPE sglang:num_queue_reqs gauge
sglang:num_queue_reqs{dp_rank="0",model_name="m",tp_rank="0"} 4.0
# HELP sglang:token_usage The token usage.
# TYPE sglang:token_usage gauge
sglang:token_usage{dp_rank="0",model_name="m",tp_rank="0"} 0.25
sglang:token_usage{dp_rank="1",model_name="m",tp_rank="0"} 0.75
"""


class MetricsServer:
    """One engine's /metrics on loopback, answering what a test sets."""

    def __init__(self) -> None:
        self.port = free_port()
        self.text = ""
        self.status = 200
        self.hang = False  # never answer
        self.hits = 0
        app = web.Application()
        app.router.add_get("/metrics", self._metrics)
        self._runner = web.AppRunner(app, shutdown_timeout=0.5)

    async def start(self) -> None:
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()

    async def stop(self) -> None:
        await self._runner.cleanup()

    async def _metrics(self, _: web.Request) -> web.Response:
        self.hits += 1
        if self.hang:
            await asyncio.Event().wait()
        return web.Response(text=self.text, status=self.status, content_type="text/plain")


@pytest.fixture
async def engine() -> AsyncIterator[MetricsServer]:
    server = MetricsServer()
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


@pytest.fixture
async def scraper() -> AsyncIterator[LoadScraper]:
    s = LoadScraper(within_s=2.0)
    try:
        yield s
    finally:
        await s.close()


async def test_vllm_metrics_become_the_replicas_load(
    engine: MetricsServer, scraper: LoadScraper
) -> None:
    engine.text = VLLM
    loads = await scraper.loads([ServingEngine("r1", "vllm", engine.port)])
    assert loads == [ReplicaLoad(replica_id="r1", running=3, waiting=2, kv_cache_usage=0.5)]


async def test_sglang_metrics_sum_requests_and_take_the_fullest_kv_pool(
    engine: MetricsServer, scraper: LoadScraper
) -> None:
    engine.text = SGLANG
    loads = await scraper.loads([ServingEngine("r1", "sglang", engine.port)])
    assert loads == [ReplicaLoad(replica_id="r1", running=21, waiting=4, kv_cache_usage=0.75)]


async def test_llama_cpp_python_is_reported_with_no_figures_and_not_scraped(
    engine: MetricsServer,
) -> None:
    engine.text = LLAMA_SERVER
    scraper = LoadScraper(within_s=2.0, runtimes={"llamacpp": LlamaCpp(server=None)})
    try:
        loads = await scraper.loads([ServingEngine("r1", "llamacpp", engine.port)])
    finally:
        await scraper.close()
    assert loads == [ReplicaLoad(replica_id="r1")]
    assert engine.hits == 0


async def test_llama_servers_metrics_become_the_replicas_load(engine: MetricsServer) -> None:
    engine.text = LLAMA_SERVER
    runtime = LlamaCpp(server="/opt/llama.cpp/bin/llama-server")
    scraper = LoadScraper(within_s=2.0, runtimes={"llamacpp": runtime})
    try:
        loads = await scraper.loads([ServingEngine("r1", "llamacpp", engine.port)])
    finally:
        await scraper.close()
    assert loads == [ReplicaLoad(replica_id="r1", running=2, waiting=1, kv_cache_usage=None)]
    assert engine.hits == 1


@pytest.mark.parametrize(
    "text",
    ["<html><body>502 Bad Gateway</body></html>", "garbage {{{ 1 2 3", "", SGLANG],
    ids=["html", "garbled", "empty", "another-engines-metrics"],
)
async def test_a_page_without_the_engines_figures_is_unknown_load_not_idle(
    engine: MetricsServer, scraper: LoadScraper, text: str
) -> None:
    engine.text = text
    loads = await scraper.loads([ServingEngine("r1", "vllm", engine.port)])
    assert loads == [ReplicaLoad(replica_id="r1", running=None, waiting=None)]


async def test_partly_garbled_metrics_still_yield_their_readable_lines(
    engine: MetricsServer, scraper: LoadScraper
) -> None:
    engine.text = VLLM.replace('vllm:num_requests_waiting{engine="0",model_name="m"} 2.0', "x{")
    [load] = await scraper.loads([ServingEngine("r1", "vllm", engine.port)])
    assert (load.running, load.kv_cache_usage) == (3, 0.5)


async def test_an_error_status_a_refused_connection_and_a_hang_are_unknown_load(
    engine: MetricsServer, scraper: LoadScraper
) -> None:
    """Each failing engine is reported with unknown load; the healthy one beside it is read."""
    engine.text = VLLM
    failing = MetricsServer()
    await failing.start()
    try:
        failing.status = 500
        failing.text = VLLM
        refused = free_port()  # nothing listens there
        serving = [
            ServingEngine("error", "vllm", failing.port),
            ServingEngine("refused", "sglang", refused),
            ServingEngine("ok", "vllm", engine.port),
        ]
        loads = await scraper.loads(serving)
        assert [r.replica_id for r in loads] == ["error", "refused", "ok"]
        assert loads[0] == ReplicaLoad(replica_id="error")
        assert loads[1] == ReplicaLoad(replica_id="refused")
        assert loads[2].running == 3

        failing.hang = True
        failing.status = 200
        loads = await scraper.loads(serving)
        assert loads[0] == ReplicaLoad(replica_id="error")
        assert loads[2].running == 3
    finally:
        await failing.stop()


async def test_a_scraper_reads_again_after_a_failure(
    engine: MetricsServer, scraper: LoadScraper
) -> None:
    serving = [ServingEngine("r1", "vllm", engine.port)]
    engine.status = 503
    assert await scraper.loads(serving) == [ReplicaLoad(replica_id="r1")]
    engine.status = 200
    engine.text = VLLM
    assert (await scraper.loads(serving))[0].running == 3


async def test_no_engines_no_loads(scraper: LoadScraper) -> None:
    assert await scraper.loads([]) == []
