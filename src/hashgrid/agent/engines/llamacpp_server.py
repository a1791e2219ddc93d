"""llama-cpp-python's OpenAI server, ending every stream with a `usage` chunk as OpenAI does.

llama-cpp-python 0.3.x sends no usage in streamed responses, and one streamed chunk may hold
several tokens (held-back UTF-8 bytes, stop-string prefixes), so counting chunks is not exact.
Here the engine counts for itself: the prompt tokens `Llama.generate` was given and the
completion tokens it produced, the same figures its non-streamed responses report. The gateway
always asks for usage and removes this chunk when its client did not.

Run as `python -m hashgrid.agent.engines.llamacpp_server` with llama_cpp.server's arguments.
"""

import functools
from collections.abc import Callable, Iterator
from typing import Any

import llama_cpp
from llama_cpp.server.__main__ import main

_USAGE = "_hashgrid_usage"


def _counting_generate(generate: Callable[..., Iterator[int]]) -> Callable[..., Iterator[int]]:
    @functools.wraps(generate)
    def wrapper(self: Any, tokens: Any, *args: Any, **kwargs: Any) -> Iterator[int]:
        # The server serves one request per model at a time, so the instance can hold the count.
        counts = [len(tokens), 0]
        setattr(self, _USAGE, counts)
        for token in generate(self, tokens, *args, **kwargs):
            # An end-of-generation token ends the text and is not counted, as in llama.py.
            if not llama_cpp.llama_vocab_is_eog(self._model.vocab, token):
                counts[1] += 1
            yield token

    return wrapper


def _with_stream_usage(create: Callable[..., Any], chunk_object: str) -> Callable[..., Any]:
    @functools.wraps(create)
    def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
        result = create(self, *args, **kwargs)
        return _ending_with_usage(self, result, chunk_object) if kwargs.get("stream") else result

    return wrapper


def _ending_with_usage(llama: Any, chunks: Iterator[Any], chunk_object: str) -> Iterator[Any]:
    last: dict[str, Any] = {}
    for chunk in chunks:
        last = chunk
        yield chunk
    prompt, completion = getattr(llama, _USAGE, (0, 0))
    yield {
        "id": last.get("id", ""),
        "object": chunk_object,
        "created": last.get("created", 0),
        "model": last.get("model", ""),
        "choices": [],
        "usage": {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
        },
    }


def patch() -> None:
    """Install the counting wrappers on `llama_cpp.Llama` (the server looks them up per call)."""
    llama = llama_cpp.Llama
    llama.generate = _counting_generate(llama.generate)  # type: ignore[method-assign,assignment]
    llama.__call__ = _with_stream_usage(llama.__call__, "text_completion")  # type: ignore[method-assign]
    llama.create_chat_completion = _with_stream_usage(  # type: ignore[method-assign]
        llama.create_chat_completion, "chat.completion.chunk"
    )


if __name__ == "__main__":
    patch()
    main()  # type: ignore[no-untyped-call]
