"""What a node tunnel adds between gateway and engine, beside the same path without it.

    python bench/tunnel.py [--requests 2000] [--streams 40] [--nodes 1000] [--skip-nats]

Each in its own process, on loopback:
- the engine: `bench/loopback.py upstream`, once answering at once (the latency figures) and once
  streaming `--tokens` token events `--pace-ms` apart (2 ms: 500 tokens/s, a fast GPU engine);
- the node: this file's `node` role, the agent's `TunnelClient` dialling the gateway's tunnel;
- the gateway's end: this process, a `TunnelHub` and the aiohttp session the proxy uses, so the
  two paths differ only by the tunnel: `direct` posts to the engine, `tunnel` opens the same
  request down the node's tunnel (`gateway/upstreams.py` does one or the other per replica).

Printed, as JSON lines then a summary:
- latency, one request at a time: p50 and p99 of each path, and the p50 the tunnel adds;
- streaming: per-stream tokens/s (first to last token event) of each path, medians, and their ratio;
- scale: `--nodes` nodes (one process, one tunnel each) held by the one hub; when all are open,
  one request to each, and the hub process's resident memory before and after;
- for the mechanism's choice, when `nats-py` is installed and NATS answers on 4222: the p50 that
  a request plane on NATS adds (request-reply to a responder that calls the engine), the other
  design the docs weigh (`docs/gateway.md`).

Goals (issue 17): added p50 at most 1 ms, streaming tokens/s within 5 %, 1,000 nodes held.
"""

import argparse
import asyncio
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp

from hashgrid.agent.tunnel import TunnelClient
from hashgrid.common.net import free_port
from hashgrid.common.secrets import hash_secret
from hashgrid.gateway.tunnel import TunnelHub

HERE = Path(__file__).parent
BODY = json.dumps(
    {"model": "fixed", "messages": [{"role": "user", "content": "Hello"}], "max_tokens": 16}
).encode()
STREAM_BODY = json.dumps(
    {"model": "fixed", "messages": [{"role": "user", "content": "Hello"}], "stream": True}
).encode()
HEADERS = {"content-type": "application/json"}


def spawn(*args: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, *args], stdout=subprocess.DEVNULL)


async def wait_port(port: int) -> None:
    for _ in range(200):
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.close()
            return
        except OSError:
            await asyncio.sleep(0.05)
    raise RuntimeError(f"nothing listens on {port}")


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def latency(
    session: aiohttp.ClientSession, hub: TunnelHub, engine: str, n: int
) -> dict[str, Any]:
    async def direct() -> None:
        async with session.post(engine + "/v1/chat/completions", data=BODY, headers=HEADERS) as r:
            await r.read()

    async def tunnel() -> None:
        r = await hub.open("n0", "fast", "/v1/chat/completions", BODY, 30.0)
        await r.read()
        r.release()

    times: dict[str, list[float]] = {"direct": [], "tunnel": []}
    for _ in range(200):  # warm both
        await direct()
        await tunnel()
    for i in range(n):  # interleaved, so both see the same machine
        for name, call in (("direct", direct), ("tunnel", tunnel))[:: 1 if i % 2 else -1]:
            started = time.perf_counter()
            await call()
            times[name].append((time.perf_counter() - started) * 1000)
    out = {
        f"{name}_{stat}_ms": round(percentile(t, q), 3)
        for name, t in times.items()
        for stat, q in (("p50", 0.5), ("p99", 0.99))
    }
    out["added_p50_ms"] = round(out["tunnel_p50_ms"] - out["direct_p50_ms"], 3)
    return out


async def tokens_per_s(stream: Any) -> float:
    """Token events per second of one stream, first to last."""
    times = []
    buffer = b""
    async for chunk in stream:
        buffer += chunk
        while b"\n\n" in buffer:
            event, buffer = buffer.split(b"\n\n", 1)
            if b'"content"' in event and b'"content":""' not in event:
                times.append(time.perf_counter())
    return (len(times) - 1) / (times[-1] - times[0])


async def streaming(
    session: aiohttp.ClientSession, hub: TunnelHub, engine: str, n: int
) -> dict[str, Any]:
    rates: dict[str, list[float]] = {"direct": [], "tunnel": []}
    for i in range(n):
        for name in ("direct", "tunnel")[:: 1 if i % 2 else -1]:
            if name == "direct":
                async with session.post(
                    engine + "/v1/chat/completions", data=STREAM_BODY, headers=HEADERS
                ) as r:
                    rates[name].append(await tokens_per_s(r.content.iter_any()))
            else:
                t = await hub.open("n0", "paced", "/v1/chat/completions", STREAM_BODY, 30.0)
                rates[name].append(await tokens_per_s(t.iter_any()))
                t.release()
    direct, tunnel = (statistics.median(rates[k]) for k in ("direct", "tunnel"))
    return {
        "direct_tokens_per_s": round(direct, 1),
        "tunnel_tokens_per_s": round(tunnel, 1),
        "ratio": round(tunnel / direct, 4),
    }


def rss_mib() -> float:
    with open(f"/proc/{os.getpid()}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) / 1024


async def scale(hub_port: int, hub: TunnelHub, engine: str, count: int) -> dict[str, Any]:
    before = rss_mib()
    started = time.perf_counter()
    nodes = spawn(
        str(Path(__file__)), "nodes", "--gateway", f"ws://127.0.0.1:{hub_port}/tunnel",
        "--engine", engine, "--count", str(count), "--first", "1",
    )  # fmt: skip
    try:
        while len(hub) < count and time.perf_counter() - started < 120:  # noqa: ASYNC110
            await asyncio.sleep(0.1)
        connected = len(hub)
        opened_s = time.perf_counter() - started
        answered = 0

        async def one(i: int) -> None:
            nonlocal answered
            r = await hub.open(f"n{i}", "fast", "/v1/chat/completions", BODY, 30.0)
            await r.read()
            r.release()
            answered += r.status == 200

        for first in range(1, count + 1, 50):
            await asyncio.gather(*(one(i) for i in range(first, min(first + 50, count + 1))))
        return {
            "nodes": count,
            "connected": connected,
            "open_s": round(opened_s, 1),
            "answered": answered,
            "hub_rss_mib_before": round(before, 1),
            "hub_rss_mib_after": round(rss_mib(), 1),
        }
    finally:
        nodes.terminate()
        nodes.wait(30)


async def nats_added(session: aiohttp.ClientSession, engine: str, n: int) -> dict[str, Any] | None:
    """The p50 a NATS request plane adds: request-reply through NATS to a responder (here, in its
    own process) that calls the engine, against the direct call."""
    try:
        import nats  # noqa: F401
    except ImportError:
        return None
    responder = spawn(str(Path(__file__)), "nats-responder", "--engine", engine)
    try:
        import nats as nats_client

        nc = await nats_client.connect("nats://127.0.0.1:4222", connect_timeout=2)
    except Exception:
        responder.terminate()
        return None
    try:
        await asyncio.sleep(1.0)
        times: dict[str, list[float]] = {"direct": [], "nats": []}
        for i in range(200 + n):
            started = time.perf_counter()
            await nc.request("bench.fast", BODY, timeout=10)
            elapsed_nats = (time.perf_counter() - started) * 1000
            started = time.perf_counter()
            async with session.post(
                engine + "/v1/chat/completions", data=BODY, headers=HEADERS
            ) as r:
                await r.read()
            elapsed_direct = (time.perf_counter() - started) * 1000
            if i >= 200:
                times["nats"].append(elapsed_nats)
                times["direct"].append(elapsed_direct)
        p50 = {k: percentile(v, 0.5) for k, v in times.items()}
        return {
            "nats_p50_ms": round(p50["nats"], 3),
            "direct_p50_ms": round(p50["direct"], 3),
            "added_p50_ms": round(p50["nats"] - p50["direct"], 3),
        }
    finally:
        await nc.close()
        responder.terminate()
        responder.wait(10)


async def measure(args: argparse.Namespace) -> None:
    fast_port, paced_port, hub_port = free_port(), free_port(), free_port()
    engines = [
        spawn(str(HERE / "loopback.py"), "upstream", "--port", str(fast_port)),
        spawn(
            str(HERE / "loopback.py"), "upstream", "--port", str(paced_port),
            "--pace-ms", str(args.pace_ms), "--tokens", str(args.tokens),
        ),
    ]  # fmt: skip
    credentials = {hash_secret(f"bench-node-{i}"): f"n{i}" for i in range(args.nodes + 1)}
    hub = TunnelHub(lambda: credentials)
    await hub.start("127.0.0.1", hub_port)
    fast, paced = f"http://127.0.0.1:{fast_port}", f"http://127.0.0.1:{paced_port}"
    node = spawn(
        str(Path(__file__)), "nodes", "--gateway", f"ws://127.0.0.1:{hub_port}/tunnel",
        "--engine", fast, "--paced-engine", paced, "--count", "1", "--first", "0",
    )  # fmt: skip
    try:
        await wait_port(fast_port)
        await wait_port(paced_port)
        while not hub.connected("n0"):  # noqa: ASYNC110
            await asyncio.sleep(0.05)
        connector = aiohttp.TCPConnector(limit=0)
        async with aiohttp.ClientSession(connector=connector, auto_decompress=False) as session:
            results = {
                "latency": await latency(session, hub, fast, args.requests),
                "streaming": await streaming(session, hub, paced, args.streams),
            }
            node.terminate()
            node.wait(10)
            if args.nodes:
                results["scale"] = await scale(hub_port, hub, fast, args.nodes)
            if not args.skip_nats:
                nats = await nats_added(session, fast, args.requests)
                if nats is not None:
                    results["nats"] = nats
    finally:
        for p in [*engines, node]:
            p.terminate()
        await hub.stop()
    for name, figures in results.items():
        print(json.dumps({name: figures}))
    lat, streams = results["latency"], results["streaming"]
    print(
        f"\ntunnel adds {lat['added_p50_ms']} ms at p50 (goal <= 1 ms); streams at "
        f"{streams['ratio'] * 100:.1f} % of direct tokens/s (goal >= 95 %)"
    )
    if "scale" in results:
        s = results["scale"]
        print(
            f"{s['connected']} of {s['nodes']} nodes held by one hub, {s['answered']} answered; "
            f"hub RSS {s['hub_rss_mib_before']} -> {s['hub_rss_mib_after']} MiB"
        )
    if "nats" in results:
        print(f"a NATS request plane adds {results['nats']['added_p50_ms']} ms at p50")


def credential_of(i: int) -> Callable[[], str]:
    return lambda: f"bench-node-{i}"


async def nodes(args: argparse.Namespace) -> None:
    """`count` nodes, each a `TunnelClient` with its own credential, until terminated."""
    engines = {"fast": args.engine}
    if args.paced_engine:
        engines["paced"] = args.paced_engine
    stop = asyncio.Event()
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector, auto_decompress=False) as session:
        clients = [
            TunnelClient(args.gateway, credential_of(i), lambda: engines, session)
            for i in range(args.first, args.first + args.count)
        ]
        await asyncio.gather(*(c.run(stop) for c in clients))


async def nats_responder(args: argparse.Namespace) -> None:
    import nats

    nc = await nats.connect("nats://127.0.0.1:4222")
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector, auto_decompress=False) as session:

        async def answer(msg: Any) -> None:
            async with session.post(
                args.engine + "/v1/chat/completions", data=msg.data, headers=HEADERS
            ) as r:
                await msg.respond(await r.read())

        await nc.subscribe("bench.fast", cb=answer)
        await asyncio.Event().wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("role", nargs="?", default="measure",
                        choices=["measure", "nodes", "nats-responder"])  # fmt: skip
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--streams", type=int, default=40)
    parser.add_argument("--tokens", type=int, default=64)
    parser.add_argument("--pace-ms", type=float, default=2.0)
    parser.add_argument("--nodes", type=int, default=1000)
    parser.add_argument("--skip-nats", action="store_true")
    parser.add_argument("--gateway")
    parser.add_argument("--engine")
    parser.add_argument("--paced-engine")
    parser.add_argument("--count", type=int, default=1)
    parser.add_argument("--first", type=int, default=0)
    args = parser.parse_args()
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    role = {"measure": measure, "nodes": nodes, "nats-responder": nats_responder}[args.role]
    asyncio.run(role(args))


if __name__ == "__main__":
    main()
