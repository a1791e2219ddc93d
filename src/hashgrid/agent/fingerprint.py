"""What this machine is: CPU, memory, and NVIDIA GPUs through NVML when a driver is present."""

import platform
import socket
from pathlib import Path

import psutil
import pynvml

from hashgrid.contracts.agent import Fingerprint, GpuInfo


def collect() -> Fingerprint:
    gpus, driver, error = nvidia_gpus()
    memory = psutil.virtual_memory()
    return Fingerprint(
        hostname=socket.gethostname(),
        os=f"{platform.system()} {platform.release()}",
        arch=platform.machine(),
        cpu_model=_cpu_model(),
        cpu_count=psutil.cpu_count(logical=True) or 1,
        memory_total_bytes=memory.total,
        memory_available_bytes=memory.available,
        gpus=gpus,
        gpu_driver=driver,
        gpu_error=error,
    )


def nvidia_gpus() -> tuple[list[GpuInfo], str | None, str | None]:
    """(GPUs, driver version, None), or ([], None, why) when NVML cannot answer."""
    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError as e:
        return [], None, f"no NVIDIA GPU: {e}"
    try:
        gpus = []
        for index in range(pynvml.nvmlDeviceGetCount()):
            handle = pynvml.nvmlDeviceGetHandleByIndex(index)
            memory = pynvml.nvmlDeviceGetMemoryInfo(handle)
            gpus.append(
                GpuInfo(
                    index=index,
                    uuid=_text(pynvml.nvmlDeviceGetUUID(handle)),
                    name=_text(pynvml.nvmlDeviceGetName(handle)),
                    memory_total_bytes=int(memory.total),
                    memory_free_bytes=int(memory.free),
                )
            )
        return gpus, _text(pynvml.nvmlSystemGetDriverVersion()), None
    except pynvml.NVMLError as e:
        return [], None, f"NVML error: {e}"
    finally:
        pynvml.nvmlShutdown()


def _text(value: str | bytes) -> str:
    # Older NVML bindings return bytes.
    return value.decode() if isinstance(value, bytes) else value


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()
