"""A model download's progress, as the reason of the replica's `starting` reports."""

from hashgrid.agent.progress import FetchProgress, fetch_reason

MIB = 2**20


def test_reason_gives_the_percentage_and_the_sizes_in_mib() -> None:
    reason = fetch_reason("hf://o/r/m.gguf", 13 * MIB + MIB // 10, 29 * MIB)
    assert reason == "fetching hf://o/r/m.gguf: 45% (13.1 of 29.0 MiB)"


def test_reason_without_a_known_size_gives_the_mib_so_far() -> None:
    assert fetch_reason("http://h/m", 3 * MIB, None) == "fetching http://h/m: 3.0 MiB"


def test_progress_speaks_at_first_then_at_most_once_per_interval() -> None:
    now = [100.0]
    said: list[str] = []
    progress = FetchProgress("s", said.append, every_s=1.0, clock=lambda: now[0])
    for done, at in [(1, 100.0), (2, 100.5), (3, 100.99), (4, 101.0), (5, 101.2), (6, 102.5)]:
        now[0] = at
        progress(done * MIB, 10 * MIB)
    assert said == [
        "fetching s: 10% (1.0 of 10.0 MiB)",
        "fetching s: 40% (4.0 of 10.0 MiB)",
        "fetching s: 60% (6.0 of 10.0 MiB)",
    ]
