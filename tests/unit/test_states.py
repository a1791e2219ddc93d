"""The status tables: which replica and node transitions are allowed."""

import itertools

import pytest

from hashgrid.contracts.states import (
    ACTIVE_REPLICA,
    CONTRACT_TRANSITIONS,
    NODE_ADMISSION_TRANSITIONS,
    NODE_TRANSITIONS,
    REPLICA_TRANSITIONS,
    TERMINAL_REPLICA,
    ContractStatus,
    NodeAdmission,
    NodeStatus,
    ReplicaStatus,
    admission_can_move,
    contract_can_move,
    replica_can_move,
)


def test_every_replica_status_appears_in_the_transition_table() -> None:
    assert set(REPLICA_TRANSITIONS) == set(ReplicaStatus)
    for targets in REPLICA_TRANSITIONS.values():
        assert targets <= set(ReplicaStatus)


def test_every_node_status_appears_in_the_transition_table() -> None:
    assert set(NODE_TRANSITIONS) == set(NodeStatus)


def test_every_admission_state_appears_in_the_transition_table() -> None:
    assert set(NODE_ADMISSION_TRANSITIONS) == set(NodeAdmission)
    for targets in NODE_ADMISSION_TRANSITIONS.values():
        assert targets <= set(NodeAdmission)


def test_any_admission_state_may_go_back_to_pending_for_a_re_verification() -> None:
    for state in NodeAdmission:
        assert admission_can_move(state, NodeAdmission.PENDING)


def test_only_a_re_verification_frees_a_quarantined_node() -> None:
    for other in set(NodeAdmission) - {NodeAdmission.PENDING, NodeAdmission.QUARANTINED}:
        assert not admission_can_move(NodeAdmission.QUARANTINED, other)


def test_only_an_admitted_node_can_be_quarantined() -> None:
    for state in NodeAdmission:
        allowed = admission_can_move(state, NodeAdmission.QUARANTINED)
        assert allowed == (state in (NodeAdmission.ADMITTED, NodeAdmission.QUARANTINED))


def test_active_and_terminal_replica_statuses_do_not_overlap() -> None:
    assert not ACTIVE_REPLICA & TERMINAL_REPLICA
    assert ReplicaStatus.STOPPING not in ACTIVE_REPLICA | TERMINAL_REPLICA


@pytest.mark.parametrize("terminal", sorted(TERMINAL_REPLICA))
def test_terminal_replica_status_has_no_way_out(terminal: ReplicaStatus) -> None:
    assert REPLICA_TRANSITIONS[terminal] == frozenset()
    for other in ReplicaStatus:
        assert replica_can_move(terminal, other) == (other == terminal)


@pytest.mark.parametrize("status", list(ReplicaStatus))
def test_every_replica_status_may_stay_put(status: ReplicaStatus) -> None:
    assert replica_can_move(status, status)


@pytest.mark.parametrize("earlier", [ReplicaStatus.SCHEDULED, ReplicaStatus.STARTING])
def test_ready_cannot_go_back(earlier: ReplicaStatus) -> None:
    assert not replica_can_move(ReplicaStatus.READY, earlier)


def test_stopping_cannot_become_active_again() -> None:
    for active in ACTIVE_REPLICA:
        assert not replica_can_move(ReplicaStatus.STOPPING, active)


def test_every_non_terminal_status_can_be_lost_and_every_active_one_can_fail() -> None:
    for status in set(ReplicaStatus) - TERMINAL_REPLICA:
        assert replica_can_move(status, ReplicaStatus.LOST)
    for status in ACTIVE_REPLICA:
        assert replica_can_move(status, ReplicaStatus.FAILED)


def test_a_failed_replica_is_restarted_in_place_or_moved() -> None:
    """Its agent restarts it (failed -> starting -> ready) until placement moves it (stopping)."""
    restart = [ReplicaStatus.READY, ReplicaStatus.FAILED, ReplicaStatus.STARTING]
    assert all(
        replica_can_move(a, b) for a, b in itertools.pairwise([*restart, ReplicaStatus.READY])
    )
    assert replica_can_move(ReplicaStatus.FAILED, ReplicaStatus.READY)  # starting superseded
    assert replica_can_move(ReplicaStatus.FAILED, ReplicaStatus.STOPPING)
    assert ReplicaStatus.FAILED in ACTIVE_REPLICA


def test_a_stopping_replica_does_not_fail() -> None:
    """Failing would make it active (restarted) again; its engine's end is a stop."""
    assert not replica_can_move(ReplicaStatus.STOPPING, ReplicaStatus.FAILED)


def test_the_normal_life_of_a_replica_is_allowed() -> None:
    path = [
        ReplicaStatus.SCHEDULED,
        ReplicaStatus.STARTING,
        ReplicaStatus.READY,
        ReplicaStatus.STOPPING,
        ReplicaStatus.STOPPED,
    ]
    assert all(replica_can_move(a, b) for a, b in itertools.pairwise(path))


def test_scheduled_replica_may_stop_directly() -> None:
    assert replica_can_move(ReplicaStatus.SCHEDULED, ReplicaStatus.STOPPED)


def test_node_goes_ready_to_lost_and_back() -> None:
    assert NodeStatus.LOST in NODE_TRANSITIONS[NodeStatus.READY]
    assert NodeStatus.READY in NODE_TRANSITIONS[NodeStatus.LOST]


def test_status_values_are_their_wire_strings() -> None:
    assert ReplicaStatus.READY == "ready"
    assert NodeStatus.LOST == "lost"
    assert ReplicaStatus("stopping") is ReplicaStatus.STOPPING


def test_a_contract_ends_or_is_cancelled_and_never_comes_back() -> None:
    assert set(CONTRACT_TRANSITIONS) == set(ContractStatus)
    for done in (ContractStatus.ENDED, ContractStatus.CANCELLED):
        assert [s for s in ContractStatus if contract_can_move(done, s)] == [done]
    assert not contract_can_move(ContractStatus.ACTIVE, ContractStatus.PENDING)
    assert contract_can_move(ContractStatus.PENDING, ContractStatus.CANCELLED)
