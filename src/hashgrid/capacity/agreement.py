"""How far a node's answer agrees with a trusted replica's answer to the same greedy request:
a pure function of the two texts (`gateway/spotcheck.py` calls it).

Exact: where both replicas run the same deployment (one model file, one engine, one set of
settings) on the same capacity class, greedy decoding is reproducible, so the answers must be
equal. Statistical: on other hardware, floating-point differences can flip one near-tie in the
argmax and the two continuations part from there on, so equality is too strict. An honest
replica then still shares a long prefix with the reference, or, after the split, most of its
words; an engine that alters answers (another model, a cheaper quantization, edited text)
shares neither. The check passes when the larger of the two figures reaches `threshold`.

Words here are the text split at whitespace: engines' tokenizers differ, and what a customer
gets is text.
"""

from collections import Counter
from dataclasses import dataclass

# Statistical checks pass at this agreement or above: honest greedy answers on other hardware
# share most words or a long prefix; an altered one (another model, rewritten text) little.
DEFAULT_THRESHOLD = 0.5


@dataclass(frozen=True, slots=True)
class Agreement:
    exact: bool  # whether the mode was exact
    prefix: float  # the common prefix, in words, over the longer answer's words
    overlap: float  # F1 of the two answers' bags of words
    passed: bool

    @property
    def score(self) -> float:
        """One figure in [0, 1]: 1 for equal answers."""
        return max(self.prefix, self.overlap)


def words(text: str) -> list[str]:
    return text.split()


def compare(
    answer: str, reference: str, *, exact: bool, threshold: float = DEFAULT_THRESHOLD
) -> Agreement:
    """How `answer` agrees with `reference`; exact mode passes only equal texts (whitespace
    at the ends aside), statistical mode passes at `threshold` or above."""
    a, r = words(answer), words(reference)
    if not a and not r:
        return Agreement(exact, 1.0, 1.0, True)
    common = 0
    for x, y in zip(a, r, strict=False):
        if x != y:
            break
        common += 1
    prefix = common / max(len(a), len(r))
    shared = sum((Counter(a) & Counter(r)).values())
    overlap = 2 * shared / (len(a) + len(r))
    # Exact: equal texts (ends' whitespace aside); statistical: enough agreement.
    passed = answer.strip() == reference.strip() if exact else max(prefix, overlap) >= threshold
    return Agreement(exact, prefix, overlap, passed)
