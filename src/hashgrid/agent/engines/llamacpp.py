"""llama.cpp through llama-cpp-python's OpenAI-compatible server (CPU or consumer GPU), launched
by `llamacpp_server` so that its streams end with usage like every other engine's."""

import sys

from hashgrid.contracts.agent import ModelSpec


class LlamaCpp:
    name = "llamacpp"
    # llama-cpp-python's server (0.3.x) has no /health; /v1/models answers once the model loaded.
    health_path = "/v1/models"

    def command(self, model: ModelSpec, host: str, port: int) -> list[str]:
        return [
            sys.executable,
            "-m",
            "hashgrid.agent.engines.llamacpp_server",
            "--model",
            model.source,
            "--model_alias",
            model.name,
            "--host",
            host,
            "--port",
            str(port),
            "--n_ctx",
            str(model.context_length),
        ]
