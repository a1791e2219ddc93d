"""Prefix affinity: requests that start with the same prompt go to the same replica, whose
engine then has that prefix in its KV cache (vLLM and SGLang reuse it; llama.cpp reuses the
longest common prefix of its previous prompt).

The prefix is the first `PREFIX_CHARS` (512) characters of the prompt: chat messages as
"role\\ncontent\\n" in order, or a completion's prompt. 512 characters are about 128 tokens, eight
of vLLM's 16-token KV blocks: requests that share that much usually share a system prompt or a
conversation's opening turns, which is what a prefix cache pays for. A shorter prefix would tie
together requests that share only a greeting; a longer one would separate requests that share a
long system prompt and differ after it.

A replica is preferred by rendezvous (highest random weight) hashing of the prefix with the
replica id: when replicas come or go only the prefixes of those replicas move.
"""

import hashlib
from collections.abc import Mapping

PREFIX_CHARS = 512


def prompt_prefix(body: Mapping[str, object], n: int = PREFIX_CHARS) -> str:
    """The first `n` characters of the prompt of an OpenAI chat or completion request body."""
    messages = body.get("messages")
    parts: list[str] = []
    size = 0
    if isinstance(messages, list):
        for m in messages:
            if not isinstance(m, dict):
                continue
            text = f"{m.get('role', '')}\n{_text(m.get('content'))}\n"
            parts.append(text)
            size += len(text)
            if size >= n:
                break
        return "".join(parts)[:n]
    prompt = body.get("prompt")
    if isinstance(prompt, list) and prompt and not isinstance(prompt[0], int):
        prompt = prompt[0]  # a batch of prompts: the first speaks for the batch
    if isinstance(prompt, str):
        return prompt[:n]
    if isinstance(prompt, list):  # token ids
        return ",".join(str(t) for t in prompt[:n])[:n]
    return ""


def _text(content: object) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # content parts: only the text ones say what the prompt is
        texts = (p.get("text") for p in content if isinstance(p, dict) and p.get("type") == "text")
        return "".join(str(t) for t in texts)
    return ""


def affinity_key(prefix: str) -> bytes:
    """A 16-byte digest of a prompt prefix: what rendezvous hashing weighs replicas by."""
    return hashlib.blake2b(prefix.encode(), digest_size=16).digest()


def rendezvous_weight(key: bytes, replica_id: str) -> int:
    """The weight of `replica_id` for `key`; the replica with the highest weight is preferred."""
    digest = hashlib.blake2b(replica_id.encode(), digest_size=8, key=key).digest()
    return int.from_bytes(digest, "big")
