"""Autoscaling: how many replicas a deployment should run, from the load on it.

Pure: the demand observed (requests in flight and queued, time to first token, when the last
request came) and the deployment's policy in, a replica count and the reason for it out. The
control plane's autoscale reconciler feeds it every pass and writes the count; placement then
does the rest.

The rules, as in Kubernetes' HPA and Knative's autoscaler:
- Load: `ceil(load / target_load)` replicas, where load is the requests in flight or queued over
  all gateways and engines, and `target_load` what one replica should carry.
- Time to first token: while every replica is ready and the recent p90 is over its target, one
  replica more. Not while a new one is still starting: the TTFT measured before it is ready
  says nothing about whether it is enough.
- Requests held by a gateway for want of any ready replica need one at once (scale from zero).
- Up at once; down only to the highest need seen over `scale_down_delay_s` (HPA's
  stabilization window), so a lull between bursts does not tear down what the next burst needs.
- To zero (when `min_replicas` is 0) only after `idle_s` without a request; from zero only for
  a request a gateway holds.
"""

import math
from collections import deque
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class ScalePolicy:
    min_replicas: int
    max_replicas: int
    target_load: float = 8.0  # requests in flight or queued per replica
    ttft_target_ms: float | None = None  # p90 time to first token to stay under; None: no target
    idle_s: float = 300.0  # with min_replicas 0: this long without a request, scale to zero
    scale_down_delay_s: float = 60.0

    @property
    def fixed(self) -> bool:
        """True when there is nothing to decide: the bounds leave one count."""
        return self.min_replicas == self.max_replicas


@dataclass(frozen=True, slots=True)
class Demand:
    """What the gateways and engines report of one deployment, summed over them."""

    load: float = 0.0  # requests in flight or queued
    held: int = 0  # requests a gateway holds because no replica is ready
    ttft_p90_ms: float | None = None  # over the last report interval; None: no request
    last_request_at: float | None = None  # seconds, on the caller's clock; None: none seen


@dataclass(frozen=True, slots=True)
class Decision:
    replicas: int
    reason: str


@dataclass
class ScaleHistory:
    """The needs computed over the last `scale_down_delay_s`, newest last (one deployment's)."""

    needs: deque[tuple[float, int]] = field(default_factory=deque)
    # When the history began: a deployment seen first (or a control plane just started) counts
    # as busy then, so nothing scales down or to zero before a whole window has been watched.
    since: float | None = None

    def add(self, at: float, need: int, window_s: float) -> int:
        """Record `need` at `at`; the highest need within the window."""
        if self.since is None:
            self.since = at
        self.needs.append((at, need))
        while self.needs and self.needs[0][0] < at - window_s:
            self.needs.popleft()
        return max(n for _, n in self.needs)


def decide(
    policy: ScalePolicy,
    current: int,
    ready: int,
    demand: Demand,
    now: float,
    history: ScaleHistory,
) -> Decision:
    """The replica count for a deployment that wants `current` and has `ready` of them ready."""
    if policy.fixed:
        return Decision(policy.min_replicas, "fixed size")
    need, why = _need(policy, current, ready, demand)
    if history.since is None:
        history.add(now, current, policy.scale_down_delay_s)  # a new watch starts from here
    stable = history.add(now, need, policy.scale_down_delay_s)
    last = demand.last_request_at
    if last is None or (history.since is not None and history.since > last):
        last = history.since
    idle = last is not None and now - last >= policy.idle_s and demand.load <= 0 and not demand.held
    # Scaled to zero, only held requests wake it (a late report of a request served before is
    # no reason to start a replica); otherwise one stays until the deployment is idle.
    floor = policy.min_replicas if policy.min_replicas > 0 or idle or current == 0 else 1
    if need > current:
        target, reason = need, why
    elif stable < current:
        target = stable
        reason = (
            f"idle for {policy.idle_s:g} s"
            if stable == 0 and idle
            else f"{why}, the most needed over the last {policy.scale_down_delay_s:g} s"
        )
    else:
        target, reason = current, why
    bounded = min(policy.max_replicas, max(floor, target))
    if bounded > target and policy.min_replicas == 0:
        reason = f"{why}; kept at 1 until idle for {policy.idle_s:g} s"
    elif bounded != target:
        reason = f"{reason}; held to {policy.min_replicas}..{policy.max_replicas}"
    return Decision(bounded, reason)


def _need(policy: ScalePolicy, current: int, ready: int, demand: Demand) -> tuple[int, str]:
    """Replicas the demand needs now, and why, in words."""
    need = math.ceil(demand.load / policy.target_load) if demand.load > 0 else 0
    why = f"{demand.load:g} request(s) in flight for a target of {policy.target_load:g} each"
    ttft, target = demand.ttft_p90_ms, policy.ttft_target_ms
    if (
        target is not None
        and ttft is not None
        and ttft > target
        and ready >= current > 0
        and need <= current
    ):
        need = current + 1
        why = f"time to first token p90 {ttft:.0f} ms over the target {target:g} ms"
    if demand.held and (need < 1 or current == 0):
        need = max(need, 1)
        why = f"{demand.held} request(s) waiting for a first replica"
    return need, why
