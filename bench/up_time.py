"""How long `hashgrid up` takes: to a served model from an empty home (cold) and from the home
of an earlier run (warm), and the first completion after it.

    python bench/up_time.py [--runs 3]

Prints one line per run and the medians. Wall-clock figures on a shared machine: compare runs
made together, not with figures from elsewhere.
"""

import argparse
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import openai


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def one_run(home: Path) -> tuple[float, float]:
    """(seconds until `up` said it is up, seconds for the first chat completion)."""
    started = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", "hashgrid", "up", "--home", str(home),
         "--gateway-port", str(free_port()), "--server-port", str(free_port())],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "NO_COLOR": "1"},
    )  # fmt: skip
    assert proc.stdout is not None
    try:
        for line in proc.stdout:
            if "hashgrid is up" in line:
                break
        else:
            raise SystemExit(f"hashgrid up exited with {proc.wait()}")
        ready = time.perf_counter() - started
        up = json.loads((home / "up.json").read_text())
        client = openai.OpenAI(base_url=up["gateway_url"], api_key=up["api_key"])
        t = time.perf_counter()
        client.chat.completions.create(
            model="tiny-llama", messages=[{"role": "user", "content": "Hello"}], max_tokens=8
        )
        return ready, time.perf_counter() - t
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(60)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    cold, warm, first = [], [], []
    for i in range(args.runs):
        with tempfile.TemporaryDirectory() as tmp:
            home = Path(tmp) / "home"
            ready, completion = one_run(home)
            cold.append(ready)
            first.append(completion)
            print(f"run {i + 1}: cold up {ready:.2f}s, first completion {completion * 1000:.0f}ms")
            ready, _ = one_run(home)
            warm.append(ready)
            print(f"run {i + 1}: warm up {ready:.2f}s (same home again)")
    print(
        f"median over {args.runs} runs: cold up {statistics.median(cold):.2f}s, "
        f"warm up {statistics.median(warm):.2f}s, "
        f"first completion {statistics.median(first) * 1000:.0f}ms"
    )


if __name__ == "__main__":
    main()
