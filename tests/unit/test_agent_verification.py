"""When the agent verifies its node: first join, changed GPUs, or when asked."""

import json
import time
from pathlib import Path

from hashgrid.agent.settings import AgentSettings
from hashgrid.agent.verification import VerifyRequests, needed, usable_gpus
from hashgrid.common.paths import write_private
from hashgrid.contracts.agent import Fingerprint, GpuInfo

GIB = 2**30


def _settings(home: Path, **overrides: object) -> AgentSettings:
    return AgentSettings.model_validate({"server_url": "http://cp", "home": home, **overrides})


def _fingerprint(*uuids: str, quarantined: frozenset[str] = frozenset()) -> Fingerprint:
    return Fingerprint(
        hostname="rig-1", os="Linux", arch="x86_64", cpu_model="cpu", cpu_count=8,
        memory_total_bytes=64 * GIB, memory_available_bytes=60 * GIB,
        gpus=[
            GpuInfo(index=i, uuid=u, name="NVIDIA L4", memory_total_bytes=22 * GIB,
                    memory_free_bytes=GIB, quarantined=u in quarantined)
            for i, u in enumerate(uuids)
        ],
    )  # fmt: skip


def _verified(settings: AgentSettings, node_id: str, fingerprint: Fingerprint) -> None:
    """What `deliver` notes once the control plane took a report."""
    body = {"node_id": node_id, "gpus": usable_gpus(fingerprint)}
    write_private(settings.verification_path, json.dumps(body))


def test_a_node_never_verified_is_verified(tmp_path: Path) -> None:
    assert needed(_settings(tmp_path), "n1", _fingerprint())


def test_a_verified_node_is_not_verified_again_unless_asked(tmp_path: Path) -> None:
    fingerprint = _fingerprint("GPU-a", "GPU-b")
    _verified(_settings(tmp_path), "n1", fingerprint)
    assert not needed(_settings(tmp_path), "n1", fingerprint)
    assert needed(_settings(tmp_path, verify=True), "n1", fingerprint)


def test_a_new_identity_or_changed_gpus_are_verified_again(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    _verified(settings, "n1", _fingerprint("GPU-a", "GPU-b"))
    assert needed(settings, "n2", _fingerprint("GPU-a", "GPU-b"))  # joined again, as a new node
    assert needed(settings, "n1", _fingerprint("GPU-a"))  # a GPU taken out
    assert needed(settings, "n1", _fingerprint("GPU-a", "GPU-b", quarantined=frozenset({"GPU-b"})))
    assert not needed(settings, "n1", _fingerprint("GPU-b", "GPU-a"))  # the same, reordered


def test_an_unreadable_record_means_verifying_again(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    write_private(settings.verification_path, "[1, 2")
    assert needed(settings, "n1", _fingerprint())
    write_private(settings.verification_path, "[1, 2]")
    assert needed(settings, "n1", _fingerprint())


# Requests from the control plane (a heartbeat ack's `verify`).


async def test_a_request_from_the_control_plane_is_wanted_once_nothing_answers_it() -> None:
    asked = VerifyRequests()
    asked.asked(time.monotonic())
    assert asked.wanted.is_set()


async def test_requests_while_a_verification_runs_are_answered_by_that_run() -> None:
    asked = VerifyRequests()
    asked.running()
    asked.asked(time.monotonic())
    assert not asked.wanted.is_set()


async def test_an_ack_that_crossed_the_report_settling_it_is_ignored_but_a_later_one_is_not() -> (
    None
):
    asked = VerifyRequests()
    asked.running()
    beat_sent = time.monotonic()  # while the report was on its way
    asked.settled()
    asked.asked(beat_sent)
    assert not asked.wanted.is_set()
    asked.asked(time.monotonic())  # the node is still pending: asked again
    assert asked.wanted.is_set()
