"""llama.cpp's own llama-server, where the machine has it (HASHGRID_LLAMA_SERVER or on PATH;
skipped elsewhere): launched by the agent's runtime on the tiny model, probed on /health,
serving requests side by side in its slots, and read for load from /metrics."""

import asyncio
import json
import os
import threading
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import openai
import pytest

from hashgrid.agent.engine_process import EngineProcess
from hashgrid.agent.engines.llamacpp import SERVER_ENV, LlamaCpp
from hashgrid.agent.loads import LoadScraper, ServingEngine
from hashgrid.agent.probe import http_ok
from hashgrid.client import HashgridClient
from hashgrid.common.net import free_port
from hashgrid.contracts.agent import Assignment, ModelSpec, ReplicaLoad
from hashgrid.contracts.api.access import TokenCreate
from hashgrid.contracts.api.catalog import ModelCreate
from hashgrid.contracts.api.deployments import DeploymentCreate
from hashgrid.contracts.api.keys import KeyCreate
from hashgrid.contracts.api.organizations import OrganizationCreate
from hashgrid.contracts.api.sites import SiteCreate
from hashgrid.contracts.engines import ENGINES

from support.live import AgentProcess, LiveGateway, LiveServer, wait_until

pytestmark = pytest.mark.timeout(180)

SLOTS = ENGINES["llamacpp"].sequences


@pytest.fixture
async def engine(
    llama_server: str, tiny_model: Path, tmp_path: Path
) -> AsyncIterator[tuple[LlamaCpp, int]]:
    runtime = LlamaCpp(llama_server)
    port = free_port("127.0.0.1")
    spec = ModelSpec(name="tiny", source=str(tiny_model), context_length=2048)
    assignment = Assignment(replica_id="r1", deployment="tiny", engine="llamacpp", model=spec)
    launch = runtime.launch(assignment, str(tiny_model), "127.0.0.1", port)
    process = await EngineProcess.spawn(
        launch.argv, {**os.environ, **launch.env}, tmp_path / "engine.log"
    )
    try:
        for _ in range(600):
            if await http_ok("127.0.0.1", port, runtime.health_path):
                break
            assert not await process.exits_within(0.1), (tmp_path / "engine.log").read_text()
        else:
            pytest.fail("llama-server not healthy within a minute")
        yield runtime, port
    finally:
        await process.stop(10)


async def test_llama_server_reports_its_running_request_and_nothing_once_idle(
    engine: tuple[LlamaCpp, int],
) -> None:
    runtime, port = engine
    scraper = LoadScraper(within_s=5.0, runtimes={"llamacpp": runtime})
    serving = [ServingEngine("r1", "llamacpp", port)]
    body = {"model": "tiny", "prompt": "a", "max_tokens": 1500, "stream": True}
    try:
        async with (
            httpx.AsyncClient(timeout=60) as http,
            http.stream("POST", f"http://127.0.0.1:{port}/v1/completions", json=body) as r,
        ):
            lines = r.aiter_lines()
            async for line in lines:
                if line.startswith("data: {"):
                    break  # generating now, 1,500 tokens to go
            [busy] = await scraper.loads(serving)
            async for _ in lines:
                pass
        [idle] = await scraper.loads(serving)
    finally:
        await scraper.close()
    assert busy.running == 1
    assert busy.waiting == 0
    assert idle == ReplicaLoad(replica_id="r1", running=0, waiting=0, kv_cache_usage=None)


async def test_llama_server_streams_requests_side_by_side_each_with_its_usage(
    engine: tuple[LlamaCpp, int],
) -> None:
    _, port = engine
    client = openai.AsyncOpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="unused")

    async def one(prompt: str) -> tuple[str, openai.types.CompletionUsage | None]:
        stream = await client.chat.completions.create(
            model="tiny",
            messages=[{"role": "user", "content": prompt}],
            max_tokens=16,
            stream=True,
            stream_options={"include_usage": True},
        )
        text, usage = "", None
        async for chunk in stream:
            text += "".join(c.delta.content or "" for c in chunk.choices)
            usage = chunk.usage or usage
        return text, usage

    results = await asyncio.gather(*(one(f"hello {i}") for i in range(SLOTS)))
    await client.close()
    for _, usage in results:
        assert usage is not None
        assert usage.completion_tokens == 16
        assert usage.prompt_tokens > 0


# The whole path: the agent picks llama-server, the gateway streams through it, and the
# engine's load reaches the control plane with the node's heartbeats.


@pytest.fixture
def admin(server: LiveServer) -> Iterator[HashgridClient]:
    with server.client() as c:
        c.create_site(SiteCreate(name="local", region="us-south", country="US", power_mw=1.0))
        c.create_organization(OrganizationCreate(name="acme", kind="customer"))
        yield c


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_an_agent_with_llama_server_serves_through_the_gateway_and_reports_load(
    server: LiveServer, admin: HashgridClient, llama_server: str, tiny_model: Path, tmp_path: Path
) -> None:
    gateway = LiveGateway(
        server.url,
        admin.create_token(TokenCreate(name="gw", role="gateway")).token,
        tmp_path / "gw",
    )
    gateway.start()
    agent = AgentProcess(
        server.url,
        tmp_path / "agent",
        admin.create_join_token("local").token,
        "rig-1",
        env={SERVER_ENV: llama_server},
    )
    try:
        key = admin.create_key(KeyCreate(customer="acme")).key
        admin.add_model(
            ModelCreate(name="tiny", source=str(tiny_model), size_bytes=tiny_model.stat().st_size)
        )
        admin.deploy(DeploymentCreate(model="tiny"))
        wait_until(lambda: gateway.ready_replicas("tiny") == 1, 90, "a routed llama-server")
        record = json.loads(next((tmp_path / "agent" / "engines").glob("*.json")).read_text())
        assert record["argv"][0] == llama_server

        def loaded() -> object:
            [replica] = admin.get_deployment("tiny").replica_list
            return replica.load if replica.load and replica.load.running is not None else None

        load = wait_until(loaded, 30, "the engine's load in a heartbeat")
        assert (load.running, load.waiting) == (0, 0)

        client = openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=key)
        done: list[int] = []

        def ask(i: int) -> None:
            stream = client.chat.completions.create(
                model="tiny",
                messages=[{"role": "user", "content": f"hi {i}"}],
                max_tokens=8,
                stream=True,
                stream_options={"include_usage": True},
            )
            usage = [c.usage for c in stream if c.usage]
            done.append(usage[-1].completion_tokens)

        threads = [threading.Thread(target=ask, args=(i,)) for i in range(SLOTS)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert done == [8] * SLOTS
    finally:
        gateway.stop()
        assert agent.terminate() == 0, agent.log()
