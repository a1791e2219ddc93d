"""`hashgrid agent`: join a site, then run what the control plane assigns until told to stop."""

import asyncio
import signal
import ssl
import time
from collections.abc import Callable, Coroutine
from contextlib import suppress
from typing import Any, TypeVar

import structlog

from hashgrid.agent import registration, trust, verification
from hashgrid.agent.control_plane import AWAY_RETRY_CAP_S, ControlPlane, Rejected, Unreachable
from hashgrid.agent.fingerprint import GpuWatch
from hashgrid.agent.heartbeat import beat_until
from hashgrid.agent.holdings import HoldingsReport, holdings_of
from hashgrid.agent.loads import LoadScraper
from hashgrid.agent.replica import EngineConfig
from hashgrid.agent.reporter import Reporter
from hashgrid.agent.settings import AgentSettings
from hashgrid.agent.store import ModelStore
from hashgrid.agent.supervisor import Supervisor
from hashgrid.agent.tunnel import Tunnels
from hashgrid.common.backoff import Backoff
from hashgrid.common.logging import configure_logging
from hashgrid.common.paths import keep_private, private_dir
from hashgrid.common.waiting import sleep_unless
from hashgrid.contracts.agent import Fingerprint, Heartbeat, ReplicaLoad, Verification

log = structlog.get_logger("hashgrid.agent")

LONG_POLL_S = 25.0

T = TypeVar("T")


class CredentialRefused(Exception):
    """The control plane no longer accepts this node's credential."""


def run(settings: AgentSettings) -> None:
    keep_private()
    configure_logging(settings.log_level)
    asyncio.run(serve(settings))


async def serve(settings: AgentSettings, stop: asyncio.Event | None = None) -> None:
    """Run until `stop` is set or SIGINT/SIGTERM arrives; leave no engine behind.

    An agent that dies otherwise (SIGKILL, a crash) leaves its engines serving, for the next
    agent on this home to adopt.
    """
    stop = stop or _stop_on_signals()
    private_dir(settings.home)
    trusted = await _trust(settings, stop)
    if stop.is_set():
        return
    control_plane = ControlPlane(settings.server_url, ssl_context=trusted)
    # Held open for the agent's life, so GPU errors (XIDs) between reports are not missed.
    gpus = GpuWatch(disk_path=settings.home)
    try:
        identity = await _identity(control_plane, settings, stop, gpus.collect)
        if identity is None:
            return
        control_plane.use_credential(identity.credential)
        log.info("joined", node=identity.node_name, node_id=identity.node_id, site=identity.site)
        reporter = Reporter(control_plane)
        store = ModelStore(
            settings.store_dir,
            int(settings.model_cache_gib * 2**30),
            hf_endpoint=settings.hf_endpoint,
        )
        supervisor = Supervisor(
            EngineConfig(
                log_dir=settings.log_dir,
                records_dir=settings.engines_dir,
                ready_timeout_s=settings.engine_ready_timeout_s,
                store=store,
                restart_first_s=settings.engine_restart_s,
            ),
            reporter,
        )
        scraper = LoadScraper()  # on loopback, as the supervisor probes health
        tunnels = Tunnels(
            stop,
            lambda: control_plane.credential,
            lambda: {e.replica_id: e.base_url for e in supervisor.serving()},
            # Gateways' certificates come from the control plane's CA: the pin verifies them.
            ssl_context=trusted,
        )

        async def loads() -> list[ReplicaLoad]:
            return await scraper.loads(supervisor.serving())

        asked = verification.VerifyRequests()
        heartbeat = beat_until(
            stop,
            control_plane,
            2.0,
            gpus.collect,
            loads=loads,
            holdings=HoldingsReport(lambda: holdings_of(store)),
            acknowledged=lambda ack: tunnels.follow(ack.gateways),
            verify_requests=asked,
        )
        beating = asyncio.create_task(heartbeat, name="heartbeat")
        # Verified before any engine starts, so the benchmark has the machine to itself.
        verifying = await _verify(stop, control_plane, settings, identity, gpus.collect(), asked)
        loops = [
            beating,
            asyncio.create_task(reporter.run(), name="reporter"),
            asyncio.create_task(
                _verify_when_asked(
                    stop, control_plane, settings, identity, gpus.collect, supervisor, asked
                ),
                name="verify-when-asked",
            ),
        ]
        # Engines an agent before this one left running are adopted or stopped before the
        # first assignments answer, which says which of them are still wanted.
        await supervisor.recover()
        loops.append(
            asyncio.create_task(
                _follow_assignments(stop, control_plane, supervisor), name="assignments"
            )
        )
        if settings.miners:
            loops.append(
                asyncio.create_task(_drive_miners(stop, control_plane, settings), name="miners")
            )
        if settings.credential_rotate_s is not None:
            rotating = _rotate_credential(stop, control_plane, settings, identity)
            loops.append(asyncio.create_task(rotating, name="rotation"))
        stopped = asyncio.create_task(stop.wait())
        await asyncio.wait([stopped, *loops], return_when=asyncio.FIRST_COMPLETED)
        # Loops end by themselves once `stop` is set, at their next look at it; closing the
        # control plane client below ends a long poll in flight.
        stop.set()
        await tunnels.close()  # requests in flight end first: the engines stop next
        await supervisor.stop_all()
        await reporter.flush(within_s=3.0)
        reporter.close()
        await control_plane.close()  # aborts a long poll in flight
        await asyncio.wait([*loops, *verifying], timeout=5.0)
        await scraper.close()  # after the heartbeat loop: it scrapes until it ends
        for task in loops:
            if task.done() and (failure := task.exception()) is not None:
                raise failure  # a loop's own failure, e.g. CredentialRefused
    finally:
        await control_plane.close()
        gpus.close()
        log.info("agent stopped")


async def _trust(settings: AgentSettings, stop: asyncio.Event) -> ssl.SSLContext | None:
    """The SSL context the control plane is verified by (None: plain http, or stopped first);
    retried while the control plane is away. A CA whose hash is not the one given raises
    UntrustedCA: the agent stops, saying so."""
    backoff = Backoff(cap=AWAY_RETRY_CAP_S)
    while not stop.is_set():
        try:
            return await asyncio.to_thread(trust.control_plane_context, settings)
        except OSError as e:
            delay = backoff.next_delay()
            log.warning(
                "cannot fetch the control plane's CA; retrying", error=str(e), retry_s=delay
            )
            await sleep_unless(stop, delay)
    return None


async def _identity(
    control_plane: ControlPlane,
    settings: AgentSettings,
    stop: asyncio.Event,
    collect: Callable[[], Fingerprint],
) -> registration.Identity | None:
    """The stored identity, or a new one from the join token; retries while the server is away."""
    identity = registration.load(settings)
    if identity is not None:
        return identity
    backoff = Backoff(cap=AWAY_RETRY_CAP_S)
    while not stop.is_set():
        try:
            return await registration.join(control_plane, settings, collect())
        except Unreachable as e:
            delay = backoff.next_delay()
            log.warning("control plane unreachable; retrying join", error=str(e), retry_s=delay)
            await sleep_unless(stop, delay)
    return None


async def _rotate_credential(
    stop: asyncio.Event,
    control_plane: ControlPlane,
    settings: AgentSettings,
    identity: registration.Identity,
) -> None:
    """Trade the node credential for a new one each `credential_rotate_s`, counted from when
    the stored one was written, so restarts do not put rotation off. Tunnels opened with the
    old credential are closed by their gateways once the view drops it; they dial again with
    the new one."""
    assert settings.credential_rotate_s is not None
    backoff = Backoff(cap=AWAY_RETRY_CAP_S)
    while not stop.is_set():
        try:
            stored_at = settings.credential_path.stat().st_mtime
        except OSError:
            stored_at = time.time()
        due_s = stored_at + settings.credential_rotate_s - time.time()
        if await sleep_unless(stop, max(due_s, 0.0)):
            return
        try:
            identity = await registration.rotate(control_plane, settings, identity)
        except Unreachable as e:
            log.warning("cannot rotate the node credential; retrying", error=str(e))
            await sleep_unless(stop, backoff.next_delay())
            continue
        except Rejected as e:
            if e.status == 401:
                raise CredentialRefused(str(e)) from e
            raise
        backoff.reset()
        log.info("node credential rotated", node_id=identity.node_id)


async def _verify(
    stop: asyncio.Event,
    control_plane: ControlPlane,
    settings: AgentSettings,
    identity: registration.Identity,
    fingerprint: Fingerprint,
    asked: verification.VerifyRequests,
) -> list[asyncio.Task[Verification | None]]:
    """Benchmark the node if it needs verifying; the task that reports the result, if any.

    The benchmark is awaited (bounded by `verify_timeout_s`, cut short by `stop`); the report
    goes on in the background, so a control plane that is away delays no engine. Requests to
    verify that the control plane sends meanwhile are answered by this run.
    """
    if not verification.needed(settings, identity.node_id, fingerprint):
        return []
    log.info("verifying: benchmarking the reference model")
    asked.running()
    report = await _unless_stopped(stop, verification.measure(settings, fingerprint))
    if report is None:
        asked.settled()
        return []
    if report.error:
        log.warning("benchmark failed; reporting the error", error=report.error)

    async def deliver() -> Verification | None:
        try:
            return await verification.deliver(
                stop, control_plane, settings, identity.node_id, fingerprint, report
            )
        finally:
            asked.settled()

    return [asyncio.create_task(deliver(), name="verification")]


# How long a verification the control plane asked for waits for the node's engines to stop
# (placement takes replicas off a node that is not admitted) before it benchmarks anyway.
QUIET_WAIT_S = 10.0


async def _verify_when_asked(
    stop: asyncio.Event,
    control_plane: ControlPlane,
    settings: AgentSettings,
    identity: registration.Identity,
    collect: Callable[[], Fingerprint],
    supervisor: Supervisor,
    asked: verification.VerifyRequests,
) -> None:
    """Benchmark again and report whenever a heartbeat ack asks (`hashgrid nodes verify`)."""
    while not stop.is_set():
        await _unless_stopped(stop, asked.wanted.wait())
        if stop.is_set():
            return
        asked.running()
        try:
            log.info("the control plane asks for a verification: benchmarking the reference model")
            for _ in range(int(QUIET_WAIT_S / 0.5)):
                if not supervisor.serving() or stop.is_set():
                    break
                await sleep_unless(stop, 0.5)
            fingerprint = collect()
            report = await _unless_stopped(stop, verification.measure(settings, fingerprint))
            if report is None:
                return
            if report.error:
                log.warning("benchmark failed; reporting the error", error=report.error)
            # The report is judged against the stored fingerprint: store the hardware as it is
            # now first (a GPU fixed or removed since the last full beat).
            with suppress(Unreachable, Rejected):
                await control_plane.heartbeat(Heartbeat(fingerprint=fingerprint))
            await verification.deliver(
                stop, control_plane, settings, identity.node_id, fingerprint, report
            )
        finally:
            asked.settled()


async def _unless_stopped(stop: asyncio.Event, work: Coroutine[Any, Any, T]) -> T | None:
    """Run `work` to its end, or cancel it once `stop` is set (then None)."""
    task = asyncio.create_task(work)
    stopped = asyncio.create_task(stop.wait())
    await asyncio.wait([task, stopped], return_when=asyncio.FIRST_COMPLETED)
    stopped.cancel()
    if task.done():
        return task.result()
    task.cancel()
    with suppress(asyncio.CancelledError):
        await task
    return None


async def _follow_assignments(
    stop: asyncio.Event, control_plane: ControlPlane, supervisor: Supervisor
) -> None:
    """Long-poll assignments and apply each one; engines keep running while the server is away."""
    revision = 0
    backoff = Backoff(cap=AWAY_RETRY_CAP_S)
    while not stop.is_set():
        try:
            answer = await control_plane.assignments(revision, LONG_POLL_S)
        except Rejected as e:
            if e.status == 401:
                raise CredentialRefused(str(e)) from e
            raise
        except Unreachable:
            await sleep_unless(stop, backoff.next_delay())
            continue
        backoff.reset()
        revision = answer.revision
        if not stop.is_set():
            await supervisor.sync(answer.assignments, answer.stop_grace_s)


async def _drive_miners(
    stop: asyncio.Event, control_plane: ControlPlane, settings: AgentSettings
) -> None:
    """Follow the site's miner and node power orders. pyasic (about 33 MB of modules) is
    imported here only, so a GPU node's agent never loads it."""
    from hashgrid.agent.bmc import Redfish
    from hashgrid.agent.miners.fleet import Fleet
    from hashgrid.agent.miners.follow import follow_orders
    from hashgrid.agent.miners.pyasic_driver import connect

    redfish = Redfish(settings.bmc_username, settings.bmc_password)
    try:
        await follow_orders(stop, control_plane, Fleet(connect), redfish, LONG_POLL_S)
    finally:
        await redfish.aclose()


def _stop_on_signals() -> asyncio.Event:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)

    return stop
