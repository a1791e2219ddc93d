"""OpenAI-compatible engines of the tests' own, served by uvicorn: one for metering tests, which
streams one token per chunk at a set pace and reports whatever token counts a test sets, and a
lying one, which rewrites a real engine's answers (spot-check tests)."""

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from support.live import ThreadedServer


class PacedUpstream:
    """Answers every chat with `tokens` tokens ("t0 t1 ..."), streamed one per chunk every
    `pace_s`, and `usage` as its count (default: 7 prompt tokens and `tokens`). `served` lists
    the answers in the order they were made: "answer" (whole), "stream" (at its last event)."""

    def __init__(
        self, tokens: int = 3, pace_s: float = 0.0, usage: dict[str, Any] | None = None
    ) -> None:
        self.tokens = tokens
        self.pace_s = pace_s
        self.usage = usage
        self.served: list[str] = []
        routes = [
            Route("/v1/models", self._models, methods=["GET"]),
            Route("/v1/chat/completions", self._chat, methods=["POST"]),
        ]
        self.server = ThreadedServer(Starlette(routes=routes))

    def _usage(self) -> dict[str, Any]:
        if self.usage is not None:
            return self.usage
        return {"prompt_tokens": 7, "completion_tokens": self.tokens}

    async def _models(self, _: Request) -> Response:
        return JSONResponse({"object": "list", "data": [{"id": "paced", "object": "model"}]})

    async def _chat(self, request: Request) -> Response:
        body = json.loads(await request.body())
        base = {"id": "chatcmpl-paced", "created": 0, "model": "paced"}
        words = [f"t{i} " for i in range(self.tokens)]
        if not body.get("stream"):
            message = {"role": "assistant", "content": "".join(words)}
            choice = {"index": 0, "message": message, "finish_reason": "stop"}
            answer = {**base, "object": "chat.completion", "choices": [choice]}
            self.served.append("answer")
            return JSONResponse({**answer, "usage": self._usage()})

        def event(delta: dict[str, str] | None, usage: dict[str, Any] | None = None) -> bytes:
            choices = [{"index": 0, "delta": delta, "finish_reason": None}] if delta else []
            chunk: dict[str, Any] = {**base, "object": "chat.completion.chunk", "choices": choices}
            if usage is not None:
                chunk["usage"] = usage
            return f"data: {json.dumps(chunk)}\n\n".encode()

        async def events() -> AsyncIterator[bytes]:
            yield event({"role": "assistant", "content": ""})
            for word in words:
                await asyncio.sleep(self.pace_s)
                yield event({"content": word})
            if (body.get("stream_options") or {}).get("include_usage"):
                yield event(None, self._usage())
            self.served.append("stream")
            yield b"data: [DONE]\n\n"

        return StreamingResponse(events(), media_type="text/event-stream")


class AlteringUpstream:
    """A lying node's engine: a real engine behind a proxy that passes every request on and
    rewrites each answer's text (as a node serving a cheaper model, or editing answers, would),
    keeping the engine's usage. `answered` counts the requests it passed on."""

    TEXT = "this answer was made up by a cheaper model"

    def __init__(self, engine_url: str) -> None:
        self.engine_url = engine_url
        self.answered = 0
        routes = [Route("/v1/chat/completions", self._chat, methods=["POST"])]
        self.server = ThreadedServer(Starlette(routes=routes))

    async def _chat(self, request: Request) -> Response:
        async with httpx.AsyncClient(timeout=120) as client:
            answer = await client.post(
                f"{self.engine_url}/v1/chat/completions",
                content=await request.body(),
                headers={"content-type": "application/json"},
            )
        self.answered += 1
        body = answer.json()
        for choice in body.get("choices", []):
            choice["message"]["content"] = self.TEXT
        return JSONResponse(body, status_code=answer.status_code)
