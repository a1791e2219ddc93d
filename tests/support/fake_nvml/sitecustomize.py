"""A fake NVML for agent processes a test starts: the GPUs a node claims, read from the JSON file
that `HASHGRID_FAKE_NVML` names at every call, so a test can change them under a running agent.

Put this folder first on the agent's PYTHONPATH (`support.fake_nvml.env`); Python imports
`sitecustomize` at start, which patches `pynvml` as the driver would answer: the file holds a list
of {"uuid", "name", "total", "free"} (bytes). Queries a driver may not support (power, temperature,
ECC, XID events) answer "not supported". NVML is the true outside boundary here: what a node
claims is whatever its driver says, which is what verification has to check.
"""

import json
import os
from types import SimpleNamespace
from typing import Any

import pynvml

_PATH = os.environ.get("HASHGRID_FAKE_NVML")


def _gpus() -> list[dict[str, Any]]:
    assert _PATH is not None
    with open(_PATH) as f:
        gpus: list[dict[str, Any]] = json.load(f)
    return gpus


def _unsupported(*_: object) -> Any:
    raise pynvml.NVMLError(pynvml.NVML_ERROR_NOT_SUPPORTED)


def _install() -> None:
    def gpu(handle: int) -> dict[str, Any]:
        return _gpus()[handle]

    answers: dict[str, Any] = {
        "nvmlInit": lambda: None,
        "nvmlShutdown": lambda: None,
        "nvmlSystemGetDriverVersion": lambda: "550.54.15",
        "nvmlSystemGetCudaDriverVersion_v2": lambda: 12040,
        "nvmlDeviceGetCount": lambda: len(_gpus()),
        "nvmlDeviceGetHandleByIndex": lambda index: index,
        "nvmlDeviceGetUUID": lambda h: gpu(h)["uuid"],
        "nvmlDeviceGetName": lambda h: gpu(h)["name"],
        "nvmlDeviceGetMemoryInfo": lambda h: SimpleNamespace(
            total=gpu(h)["total"], free=gpu(h)["free"], used=gpu(h)["total"] - gpu(h)["free"]
        ),
    }
    for name in (
        "nvmlDeviceGetPowerUsage",
        "nvmlDeviceGetEnforcedPowerLimit",
        "nvmlDeviceGetTemperature",
        "nvmlDeviceGetTotalEccErrors",
        "nvmlEventSetCreate",
        "nvmlDeviceRegisterEvents",
        "nvmlEventSetWait_v2",
        "nvmlEventSetFree",
    ):
        answers[name] = _unsupported
    for name, answer in answers.items():
        setattr(pynvml, name, answer)


if _PATH:
    _install()
