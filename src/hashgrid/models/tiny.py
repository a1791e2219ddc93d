"""A tiny random-weight llama GGUF for tests: loads in llama.cpp and generates readable words."""

from __future__ import annotations

from pathlib import Path

import gguf
import numpy as np
import numpy.typing as npt

TINY_MODEL_NAME = "tiny-llama"

_N_EMBD = 64
_N_LAYER = 2
_N_HEAD = 4
_N_FF = 128
_N_CTX = 2048
_RMS_EPS = 1e-5
_ROPE_BASE = 10000.0
_WEIGHT_STD = 0.1

_UNK, _BOS, _EOS = 0, 1, 2
_SPACE = "\u2581"  # SentencePiece's word-boundary marker

_WORDS = """
the of and to in is it you that he was for on are as with his they at be this have from or one
had by word but not what all were we when your can said there use an each which she do how their
if will up other about out many then them these so some her would make like him into time has
look two more write go see number no way could people my than first water been call who oil its
now find long down day did get come made may part over new sound take only little work know place
year live me back give most very after thing our just name good sentence man think say great where
help through much before line right too mean old any same tell boy follow came want show also
around form three small set put end does another well large must big even such because turn here
why ask went men read need land different home us move try kind hand picture again change off play
spell air away animal house point page letter mother answer found study still learn should world
hello model token stream grid hash mine block chain light fast
"""
_LETTERS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
_PUNCTUATION = ".,!?;:'\"-()[]{}<>|/\\@#$%&*+=_~`^"

# A ChatML layout; the prompt is tokenized without an automatic BOS, so the template supplies it.
_CHAT_TEMPLATE = (
    "{{ bos_token }}"
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)


def _readable_pieces() -> tuple[list[str], set[str]]:
    """Return the readable vocabulary and the whole-word pieces among it that the model may emit."""
    words = [_SPACE + w for w in _WORDS.split()]
    pieces: dict[str, None] = dict.fromkeys([_SPACE, *_LETTERS, *_PUNCTUATION])
    # SPM only merges adjacent pieces into pieces in the vocabulary, so every word needs its
    # prefixes as stepping stones to be tokenized whole.
    for word in words:
        pieces.update(dict.fromkeys(word[:n] for n in range(2, len(word) + 1)))
    return list(pieces), set(words)


def _vocab() -> tuple[list[str], list[float], list[int], npt.NDArray[np.bool_]]:
    """Return tokens, scores, token types and a mask of the tokens the model may generate."""
    readable, words = _readable_pieces()
    tokens = ["<unk>", "<s>", "</s>", *(f"<0x{b:02X}>" for b in range(256)), *readable]
    types = [
        gguf.TokenType.UNKNOWN,
        gguf.TokenType.CONTROL,
        gguf.TokenType.CONTROL,
        *[gguf.TokenType.BYTE] * 256,
        *[gguf.TokenType.NORMAL] * len(readable),
    ]
    n_special = 3 + 256
    # Longer pieces score higher so SPM prefers whole words over their prefixes.
    scores = [0.0] * n_special + [float(len(p)) - 100.0 for p in readable]
    emit = np.array([t in words for t in tokens], dtype=np.bool_)
    return tokens, scores, [int(t) for t in types], emit


def make_tiny_gguf(path: Path, *, seed: int = 0, embedding: bool = False) -> Path:
    """Write a tiny random-weight llama GGUF to `path` (parents created); return the path."""
    tokens, scores, types, emit = _vocab()
    rng = np.random.default_rng(seed)

    def weight(*shape: int) -> npt.NDArray[np.float16]:
        # numpy shapes are ggml's ne reversed: (rows, cols) is ne = [cols, rows].
        return (rng.standard_normal(shape) * _WEIGHT_STD).astype(np.float16)

    def norm() -> npt.NDArray[np.float32]:
        return np.ones(_N_EMBD, dtype=np.float32)

    # Only whole words get logits; every other token's logit is 0, which some word nearly always
    # beats, so greedy decoding emits readable words and never stops early on EOS.
    output = weight(len(tokens), _N_EMBD)
    output[~emit] = 0

    tensors: dict[str, npt.NDArray[np.float16] | npt.NDArray[np.float32]] = {
        "token_embd.weight": weight(len(tokens), _N_EMBD),
        "output_norm.weight": norm(),
        "output.weight": output,
    }
    for i in range(_N_LAYER):
        tensors |= {
            f"blk.{i}.attn_norm.weight": norm(),
            f"blk.{i}.attn_q.weight": weight(_N_EMBD, _N_EMBD),
            f"blk.{i}.attn_k.weight": weight(_N_EMBD, _N_EMBD),
            f"blk.{i}.attn_v.weight": weight(_N_EMBD, _N_EMBD),
            f"blk.{i}.attn_output.weight": weight(_N_EMBD, _N_EMBD),
            f"blk.{i}.ffn_norm.weight": norm(),
            f"blk.{i}.ffn_gate.weight": weight(_N_FF, _N_EMBD),
            f"blk.{i}.ffn_up.weight": weight(_N_FF, _N_EMBD),
            f"blk.{i}.ffn_down.weight": weight(_N_EMBD, _N_FF),
        }

    path.parent.mkdir(parents=True, exist_ok=True)
    writer = gguf.GGUFWriter(path, "llama")
    writer.add_name(TINY_MODEL_NAME)
    writer.add_file_type(gguf.LlamaFileType.MOSTLY_F16)
    writer.add_vocab_size(len(tokens))
    writer.add_context_length(_N_CTX)
    writer.add_embedding_length(_N_EMBD)
    writer.add_block_count(_N_LAYER)
    writer.add_feed_forward_length(_N_FF)
    writer.add_head_count(_N_HEAD)
    writer.add_head_count_kv(_N_HEAD)
    writer.add_rope_dimension_count(_N_EMBD // _N_HEAD)
    writer.add_rope_freq_base(_ROPE_BASE)
    writer.add_layer_norm_rms_eps(_RMS_EPS)
    writer.add_tokenizer_model("llama")
    writer.add_token_list(tokens)
    writer.add_token_scores(scores)
    writer.add_token_types(types)
    writer.add_unk_token_id(_UNK)
    writer.add_bos_token_id(_BOS)
    writer.add_eos_token_id(_EOS)
    writer.add_add_bos_token(True)
    writer.add_add_eos_token(False)
    writer.add_chat_template(_CHAT_TEMPLATE)
    if embedding:  # as embedding models say how to pool token vectors into one: mean
        writer.add_pooling_type(gguf.PoolingType.MEAN)
    for name, tensor in tensors.items():
        writer.add_tensor(name, tensor)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path
