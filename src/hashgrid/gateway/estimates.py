"""What a request will take before it is answered: its tokens, for rate limits, and its
worst-case cost, for budgets. Both are read from one walk over the body (`measure`).

Rate limits charge an estimate, as OpenAI and LiteLLM do: the prompt's length (4 characters
a token, plus 4 per message) plus `max_tokens` (or `max_completion_tokens`, times `n`), later
corrected to the engine's count. Budgets need a bound instead, since they are never to be
overshot: a byte-level tokenizer makes at most one token of each byte, so the prompt's text
in UTF-8 bytes (and the bytes of what the template also renders: tool definitions, tool calls,
names) bounds its tokens, and token ids count one each. The chat template's own markers (and a
prompt's BOS) are not in the body: the gateway does not know the template, so it takes them as
4 tokens a message (at least one message's worth), OpenAI's figure, until metered answers show a
model's template spends more (`TemplateOverheads`: the most metered prompt tokens beyond the
bytes, per message, each gateway learns from its own budgeted requests); a model's first
answers may so exceed their bound by the template's excess. An image or audio part may make
more tokens than its bytes, so a prompt that has one is bounded by the model's context alone.
No prompt exceeds the context, nor does any choice's prompt plus completion, so the model's
`context_length` caps both.
"""

from dataclasses import dataclass
from typing import Any

import orjson

from hashgrid.billing.money import UnitPrices, micros_up
from hashgrid.contracts.gateway import RoutedModel

CHARS_PER_TOKEN = 4
TOKENS_PER_MESSAGE = 4  # a chat template's role markers and separators
# A message's fields beside these are rendered by the template too (tool calls, names).
TEXT_FIELDS = frozenset({"role", "content"})


@dataclass(slots=True)
class Size:
    """What one walk over a request body found."""

    chars: int = 0  # characters of the prompt's text
    utf8: int = 0  # bytes of the prompt's text and of the rest the template renders
    token_ids: int = 0  # prompts given as token ids
    messages: int = 0
    prompts: int = 1  # a batch's prompts (or embedding inputs)
    media: bool = False  # an image or audio part: more tokens than its bytes, maybe
    most: int | None = None  # the completion's most tokens per choice, when the client set it
    choices: int = 1  # n


def measure(body: dict[str, Any], bound: bool = True) -> Size:
    """The sizes of `body`'s prompt (messages, prompt or embedding input) and completion;
    without `bound`, not its bytes (`utf8`, `media`): what an estimate alone needs."""
    size = Size()
    messages = body.get("messages")
    if isinstance(messages, list):
        size.messages = len(messages)
        for m in messages:
            if isinstance(m, dict):
                _message(m, size, bound)
    tools = body.get("tools")
    if tools and bound:
        size.utf8 += len(orjson.dumps(tools))
    for field in ("prompt", "input"):
        prompt = body.get(field)
        if isinstance(prompt, str):
            _text(prompt, size, bound)
        elif isinstance(prompt, list) and prompt:
            if all(isinstance(p, int) for p in prompt):
                size.token_ids += len(prompt)  # one prompt, as token ids
            else:
                size.prompts = len(prompt)  # a batch: strings, or lists of token ids
                for p in prompt:
                    if isinstance(p, str):
                        _text(p, size, bound)
                    elif isinstance(p, list):
                        size.token_ids += len(p)
    most = body.get("max_completion_tokens", body.get("max_tokens"))
    if isinstance(most, int) and not isinstance(most, bool) and most > 0:
        size.most = most
    n = body.get("n")
    size.choices = n if isinstance(n, int) and not isinstance(n, bool) and n > 1 else 1
    return size


def _text(text: str, size: Size, bound: bool) -> None:
    size.chars += len(text)
    if bound:
        size.utf8 += len(text) if text.isascii() else len(text.encode())


def _message(m: dict[str, Any], size: Size, bound: bool) -> None:
    content = m.get("content")
    if isinstance(content, str):
        _text(content, size, bound)
    elif isinstance(content, list):
        for part in content:
            if not isinstance(part, dict):
                continue
            if isinstance(text := part.get("text"), str):
                _text(text, size, bound)
            elif bound:
                size.media = True
                size.utf8 += len(orjson.dumps(part))
    if bound and m.keys() - TEXT_FIELDS:
        size.utf8 += len(orjson.dumps({k: v for k, v in m.items() if k not in TEXT_FIELDS}))


def estimate_tokens(body: dict[str, Any], default_completion: int) -> tuple[int, int, bool]:
    """The prompt's tokens as estimated from its length, the completion's most, and whether
    the client set that most (`max_tokens`) itself."""
    return tokens_of(measure(body, bound=False), default_completion)


def tokens_of(size: Size, default_completion: int) -> tuple[int, int, bool]:
    """`estimate_tokens` of a measured body."""
    prompt = size.token_ids + TOKENS_PER_MESSAGE * size.messages
    prompt += (size.chars + CHARS_PER_TOKEN - 1) // CHARS_PER_TOKEN
    most = size.most if size.most is not None else default_completion
    return prompt, most * size.choices * size.prompts, size.most is not None


def token_cost(prompt: int, completion: int, explicit: bool, limit: int) -> int:
    """The up-front charge to a `limit`-tpm bucket: the estimate, where the completion's part
    is a default (no `max_tokens`) never more than the limit, so the request can pass."""
    cost = max(1, prompt + completion)
    return cost if explicit else max(prompt, min(cost, limit))


class TemplateOverheads:
    """The most tokens each model's chat template was seen to add to a prompt, per message:
    metered prompt tokens beyond the prompt's bytes and token ids, spread over its messages (a
    template's fixed part spread over one message is counted again for each of more, which only
    widens the bound)."""

    def __init__(self) -> None:
        self._per_message: dict[str, int] = {}

    def per_message(self, model: str) -> int:
        return self._per_message.get(model, TOKENS_PER_MESSAGE)

    def learn(self, model: str, size: Size, metered_prompt: int) -> None:
        if size.media:
            return  # bounded by the context, not its bytes
        extra = metered_prompt - size.token_ids - size.utf8
        per = -(-extra // max(size.messages, size.prompts))
        if per > self.per_message(model):
            self._per_message[model] = per


def worst_tokens(
    size: Size, model: RoutedModel, default_completion: int, per_message: int = TOKENS_PER_MESSAGE
) -> tuple[int, int]:
    """Prompt and completion tokens that cost the most this request could cost: at most its
    prompt's bound (with `per_message` tokens of template a message) and the completion it
    allows (without `max_tokens`: the whole context, or `default_completion` where the context
    is unknown), within the context of each choice."""
    context = model.context_length
    choices = size.choices * size.prompts
    prompt = size.token_ids + size.utf8 + per_message * max(size.messages, size.prompts)
    if model.task == "embed":
        completion = 0
    elif size.most is not None:
        completion = size.most * choices
    else:
        completion = (context if context is not None else default_completion) * choices
    if context is None:
        return prompt, completion
    prompt = context * size.prompts if size.media else min(prompt, context * size.prompts)
    total = context * choices  # each choice's prompt and completion fit in the context
    if model.price_completion >= model.price_prompt:  # the dearer tokens first
        completion = min(completion, total)
        return min(prompt, total - completion), completion
    prompt = min(prompt, total)
    return prompt, min(completion, total - prompt)


def worst_cost(
    size: Size, model: RoutedModel, default_completion: int, per_message: int = TOKENS_PER_MESSAGE
) -> int:
    """The most the request can cost, in micro-dollars (rounded up) at `model`'s prices."""
    prompt, completion = worst_tokens(size, model, default_completion, per_message)
    return micros_up(prices_of(model).cost(prompt, 0, completion))


def prices_of(model: RoutedModel) -> UnitPrices:
    return UnitPrices(model.price_prompt, model.price_cached, model.price_completion)
