"""Sign-in attempts are limited per account and per address, whichever runs out first."""

from hashgrid.server.accounts.throttle import SignInThrottle


class Clock:
    def __init__(self) -> None:
        self.ms = 0.0

    def __call__(self) -> float:
        return self.ms


def test_an_account_gets_its_attempts_per_window_then_waits_whatever_the_address() -> None:
    clock = Clock()
    throttle = SignInThrottle(per_account=3, per_address=100, window_s=60, clock=clock)
    assert [throttle.attempt("ann@a.com", f"10.0.0.{i}") for i in range(3)] == [0.0, 0.0, 0.0]
    wait = throttle.attempt("ann@a.com", "10.0.0.99")
    assert 1.0 <= wait <= 20.0  # one attempt back every 60 s / 3
    assert throttle.attempt("bob@b.com", "10.0.0.99") == 0.0  # another account is not held
    clock.ms += 20_000
    assert throttle.attempt("ann@a.com", "10.0.0.1") == 0.0


def test_an_address_spraying_many_accounts_is_held() -> None:
    throttle = SignInThrottle(per_account=100, per_address=2, window_s=60, clock=Clock())
    assert throttle.attempt("a@x.com", "10.0.0.1") == 0.0
    assert throttle.attempt("b@x.com", "10.0.0.1") == 0.0
    assert throttle.attempt("c@x.com", "10.0.0.1") > 0
    assert throttle.attempt("c@x.com", "10.0.0.2") == 0.0


def test_a_refused_attempt_is_not_counted() -> None:
    """Waiting out the window is enough: refusals do not push the wait further away."""
    clock = Clock()
    throttle = SignInThrottle(per_account=1, per_address=100, window_s=60, clock=clock)
    assert throttle.attempt("a@x.com", "1") == 0.0
    for _ in range(10):
        assert throttle.attempt("a@x.com", "1") > 0
    clock.ms += 60_000
    assert throttle.attempt("a@x.com", "1") == 0.0
