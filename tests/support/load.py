"""Steady client load through a gateway, for tests that break things under it."""

import threading
import time

import openai

MESSAGES = [{"role": "user", "content": "hi"}]


class Load:
    """Non-streaming chat completions, one after another from each of a few threads."""

    def __init__(self, client: openai.OpenAI, threads: int = 3, model: str = "tiny") -> None:
        self._client = client
        self._model = model
        self._stop = threading.Event()
        self.answered = 0
        self.failures: list[str] = []
        self.slowest_s = 0.0  # the longest a request took to be answered
        self._threads = [threading.Thread(target=self._run, daemon=True) for _ in range(threads)]

    def _run(self) -> None:
        while not self._stop.is_set():
            started = time.monotonic()
            try:
                self._client.chat.completions.create(
                    model=self._model, messages=MESSAGES, max_tokens=4
                )
                self.answered += 1
                self.slowest_s = max(self.slowest_s, time.monotonic() - started)
            except openai.OpenAIError as e:
                self.failures.append(f"{type(e).__name__}: {e}")

    def __enter__(self) -> "Load":
        for t in self._threads:
            t.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(30)
