"""Agent processes whose NVML reports the GPUs a test chooses (see `sitecustomize.py`)."""

import json
import os
from pathlib import Path
from typing import Any

HERE = Path(__file__).parent


def write_gpus(path: Path, gpus: list[dict[str, Any]]) -> None:
    """What the fake driver reports from now on: {"uuid", "name", "total", "free"} each."""
    path.write_text(json.dumps(gpus))


def env(path: Path) -> dict[str, str]:
    """The environment of an agent whose NVML reports the GPUs written to `path`."""
    search = [str(HERE), *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
    return {"PYTHONPATH": os.pathsep.join(search), "HASHGRID_FAKE_NVML": str(path)}
