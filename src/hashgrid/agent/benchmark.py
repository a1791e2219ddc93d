"""The benchmark the agent runs at join: the reference model, a fixed prompt, a fixed token count.

It runs in a child process (`python -m hashgrid.agent.benchmark`), so the agent's event loop
never waits on llama.cpp, a run past its time limit can be killed, and no GPU memory or CUDA
context stays behind in the agent. `run` is the measurement itself.
"""

import argparse
import sys
import time
from pathlib import Path

from hashgrid.contracts.agent import Benchmark
from hashgrid.models.tiny import TINY_MODEL_NAME, make_tiny_gguf

# Every node does the same work: this prompt (about 130 tokens with the reference vocabulary),
# then GENERATED_TOKENS greedy tokens, ROUNDS times; the best round's speeds are reported, as
# the node's capability rather than its noise. One CPU thread: the model is too small for more
# to help, and on a busy 2-core machine llama.cpp's threads waiting on each other made prompt
# speed swing from 160 to 147,000 tokens/s between runs; with one it stayed near 100,000.
PROMPT = " ".join(["the grid of hash and light is a chain of blocks made by many people"] * 8)
GENERATED_TOKENS = 128
ROUNDS = 3
SEED = 7
CONTEXT = 512


def run(model_path: Path, *, gpu: bool) -> Benchmark:
    """Load `model_path` (every layer on the GPU when `gpu` and llama.cpp can) and measure."""
    import llama_cpp

    started = time.perf_counter()
    offload = gpu and bool(llama_cpp.llama_supports_gpu_offload())
    llm = llama_cpp.Llama(
        model_path=str(model_path),
        n_ctx=CONTEXT,
        n_batch=CONTEXT,
        n_gpu_layers=-1 if offload else 0,
        seed=SEED,
        n_threads=1,
        n_threads_batch=1,
        verbose=False,
    )
    prompt = llm.tokenize(PROMPT.encode(), add_bos=True)
    prompt_s = generation_s = float("inf")
    for _ in range(ROUNDS):
        llm.reset()  # type: ignore[no-untyped-call]
        t0 = time.perf_counter()
        llm.eval(prompt)
        t1 = time.perf_counter()
        for _ in range(GENERATED_TOKENS):  # EOS does not stop it: the count is fixed
            llm.eval([llm.sample(temp=0.0)])
        t2 = time.perf_counter()
        prompt_s = min(prompt_s, t1 - t0)
        generation_s = min(generation_s, t2 - t1)
    return Benchmark(
        model=TINY_MODEL_NAME,
        engine=f"llama-cpp-python {llama_cpp.__version__}",
        gpu_offload=offload,
        prompt_tokens=len(prompt),
        generated_tokens=GENERATED_TOKENS,
        prompt_tokens_per_s=len(prompt) / prompt_s,
        generation_tokens_per_s=GENERATED_TOKENS / generation_s,
        seconds=time.perf_counter() - started,
    )


def main(argv: list[str] | None = None) -> int:
    """Write the reference model under --dir, benchmark it, write the result as JSON to --out."""
    parser = argparse.ArgumentParser(prog="python -m hashgrid.agent.benchmark")
    parser.add_argument("--dir", type=Path, required=True, help="Where the model is written.")
    parser.add_argument("--out", type=Path, required=True, help="Where the result goes.")
    parser.add_argument("--gpu", action="store_true", help="Offload every layer to the GPU.")
    args = parser.parse_args(argv)
    # Written afresh each time (it takes milliseconds), so the run is always of the reference.
    model = make_tiny_gguf(args.dir / f"{TINY_MODEL_NAME}.gguf")
    result = run(model, gpu=args.gpu)
    args.out.write_text(result.model_dump_json())
    return 0


if __name__ == "__main__":
    sys.exit(main())
