"""What this machine is: CPU, memory, disk, and NVIDIA GPUs through NVML when a driver is present.

`GpuWatch` keeps NVML open for as long as the agent holds it, so that critical XID events
raised between two collections still reach the next fingerprint. `collect()` is the one-shot
form: it opens NVML, reads once and closes again.

A GPU is quarantined (no replica may use it) when it has uncorrected ECC errors, when it
raised a critical XID while the watch was open (it stays quarantined for the watch's life, so
until the agent restarts), or when NVML cannot read it at all.
"""

import ctypes
import platform
import shutil
import socket
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Self, TypeVar

import psutil
import pynvml
import structlog

from hashgrid.contracts.agent import Fingerprint, GpuInfo

log = structlog.get_logger("hashgrid.agent.fingerprint")

T = TypeVar("T")

# Well-known XIDs, worded as in NVIDIA's Xid catalog
# (https://docs.nvidia.com/deploy/xid-errors/analyzing-xid-catalog.html and its archive page).
XID_MEANINGS: dict[int, str] = {
    13: "Graphics Engine Exception",
    31: "GPU memory page fault",
    43: "GPU stopped processing",
    45: "Preemptive cleanup, due to previous errors",
    48: "Double Bit ECC Error",
    61: "Internal micro-controller breakpoint/warning",
    62: "Internal micro-controller halt",
    63: "ECC page retirement or row remapping recording event",
    64: "ECC page retirement or row remapper recording failure",
    74: "NVLink Error",
    79: "GPU has fallen off the bus",
    92: "High single-bit ECC error rate",
    94: "Contained ECC error",
    95: "Uncontained ECC error",
    119: "GSP RPC Timeout",
    120: "GSP Error",
}

# What an old driver or a GPU without the feature answers: that field is left None.
_ABSENT = (pynvml.NVMLError_NotSupported, pynvml.NVMLError_FunctionNotFound)

# Events read per collection at most; the rest wait for the next one.
_MAX_EVENTS = 1024


def describe_xid(xid: int) -> str:
    meaning = XID_MEANINGS.get(xid)
    return f"XID {xid} ({meaning})" if meaning else f"XID {xid}"


class GpuWatch:
    """NVML held open, with an event set catching critical XIDs between collections.

    NVML opens at the first collection; close the watch (or use it as a context manager) to
    free the event set and shut NVML down. Without a driver it still collects, reporting no GPUs
    and why, and tries NVML again at the next collection, so a driver loaded later is found.
    """

    def __init__(self, disk_path: Path = Path(".")) -> None:
        self.disk_path = disk_path
        self._open = False  # NVML initialised by this watch
        self._closed = False
        self._no_gpu: str | None = None  # why NVML could not start
        self._events: object | None = None  # the NVML event set, where the driver offers one
        self._watched: dict[object, str] = {}  # device handle key -> UUID
        self._seen: dict[int, tuple[str, str]] = {}  # index -> (UUID, name) last read
        self._xids: dict[str, list[int]] = {}  # UUID -> distinct critical XIDs, first seen first

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def collect(self) -> Fingerprint:
        if self._closed:
            raise RuntimeError("GpuWatch is closed")
        if not self._open:
            self._start()
        if self._open:
            gpus, driver, cuda, error = self._nvidia()
        else:
            gpus, driver, cuda, error = [], None, None, self._no_gpu
        memory = psutil.virtual_memory()
        disk_total, disk_free = _disk(self.disk_path)
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
            cuda_driver=cuda,
            disk_total_bytes=disk_total,
            disk_free_bytes=disk_free,
        )

    def close(self) -> None:
        """Free the event set and shut NVML down; safe to call more than once."""
        self._closed = True
        if not self._open:
            return
        self._open = False
        events, self._events = self._events, None
        self._watched.clear()
        try:
            if events is not None:
                pynvml.nvmlEventSetFree(events)
        except pynvml.NVMLError as e:
            log.warning("freeing the NVML event set failed", error=str(e))
        finally:
            try:
                pynvml.nvmlShutdown()
            except pynvml.NVMLError as e:
                log.warning("NVML shutdown failed", error=str(e))

    def _start(self) -> None:
        try:
            pynvml.nvmlInit()
        except pynvml.NVMLError as e:
            self._no_gpu = f"no NVIDIA GPU: {e}"
            return
        self._open = True
        self._no_gpu = None
        try:
            self._watch_xids()
        except BaseException:
            self.close()
            raise

    def _watch_xids(self) -> None:
        """Register every GPU for critical XID events; a GPU or driver without them is skipped."""
        try:
            self._events = pynvml.nvmlEventSetCreate()
            count = int(pynvml.nvmlDeviceGetCount())
        except _ABSENT:
            return
        except pynvml.NVMLError as e:
            log.warning("cannot watch GPUs for XID errors", error=str(e))
            return
        for index in range(count):
            try:
                handle = pynvml.nvmlDeviceGetHandleByIndex(index)
                uuid = _text(pynvml.nvmlDeviceGetUUID(handle))
                self._seen[index] = (uuid, _text(pynvml.nvmlDeviceGetName(handle)))
                pynvml.nvmlDeviceRegisterEvents(
                    handle, pynvml.nvmlEventTypeXidCriticalError, self._events
                )
            except _ABSENT:
                continue
            except pynvml.NVMLError as e:
                log.warning("cannot watch a GPU for XID errors", index=index, error=str(e))
                continue
            self._watched[_handle_key(handle)] = uuid

    def _drain_xids(self) -> None:
        """Record the critical XIDs that arrived since the last collection, without waiting."""
        if self._events is None:
            return
        for _ in range(_MAX_EVENTS):
            try:
                event = pynvml.nvmlEventSetWait_v2(self._events, 0)
            except pynvml.NVMLError_Timeout:
                return
            except pynvml.NVMLError as e:
                log.warning("reading NVML events failed", error=str(e))
                return
            if not int(event.eventType) & pynvml.nvmlEventTypeXidCriticalError:
                continue
            xid = int(event.eventData)
            uuid = self._watched.get(_handle_key(event.device))
            if uuid is None:
                log.warning("critical XID from a GPU this agent does not watch", xid=xid)
                continue
            xids = self._xids.setdefault(uuid, [])
            if xid not in xids:
                xids.append(xid)
                log.warning("GPU quarantined", uuid=uuid, reason=describe_xid(xid))

    def _nvidia(self) -> tuple[list[GpuInfo], str | None, str | None, str | None]:
        """(GPUs, driver version, CUDA version, None), or ([], None, None, why)."""
        try:
            driver = _text(pynvml.nvmlSystemGetDriverVersion())
            cuda = _optional(lambda: _cuda_version(pynvml.nvmlSystemGetCudaDriverVersion_v2()))
            count = int(pynvml.nvmlDeviceGetCount())
        except pynvml.NVMLError as e:
            return [], None, None, f"NVML error: {e}"
        self._drain_xids()
        return [self._gpu(index) for index in range(count)], driver, cuda, None

    def _gpu(self, index: int) -> GpuInfo:
        """One GPU; one that NVML cannot read is reported, quarantined, rather than dropped."""
        try:
            handle = pynvml.nvmlDeviceGetHandleByIndex(index)
            uuid = _text(pynvml.nvmlDeviceGetUUID(handle))
            name = _text(pynvml.nvmlDeviceGetName(handle))
            memory = pynvml.nvmlDeviceGetMemoryInfo(handle)
            gpu = GpuInfo(
                index=index,
                uuid=uuid,
                name=name,
                memory_total_bytes=int(memory.total),
                memory_free_bytes=int(memory.free),
                power_draw_w=_optional(lambda: _watts(pynvml.nvmlDeviceGetPowerUsage(handle))),
                power_limit_w=_optional(
                    lambda: _watts(pynvml.nvmlDeviceGetEnforcedPowerLimit(handle))
                ),
                temperature_c=_optional(
                    lambda: int(
                        pynvml.nvmlDeviceGetTemperature(handle, pynvml.NVML_TEMPERATURE_GPU)
                    )
                ),
                ecc_uncorrected=_optional(
                    lambda: _ecc(handle, pynvml.NVML_MEMORY_ERROR_TYPE_UNCORRECTED)
                ),
                ecc_corrected=_optional(
                    lambda: _ecc(handle, pynvml.NVML_MEMORY_ERROR_TYPE_CORRECTED)
                ),
                xids=list(self._xids.get(uuid, [])),
            )
        except pynvml.NVMLError as e:
            uuid, name = self._seen.get(index, ("", ""))
            unreadable = GpuInfo(
                index=index,
                uuid=uuid,
                name=name,
                memory_total_bytes=0,
                memory_free_bytes=0,
                xids=list(self._xids.get(uuid, [])) if uuid else [],
            )
            return _judged(unreadable, f"NVML error: {e}")
        self._seen[index] = (uuid, name)
        return _judged(gpu)


def collect(disk_path: Path = Path(".")) -> Fingerprint:
    """One-shot fingerprint. XIDs raised between collections need a `GpuWatch` held open."""
    with GpuWatch(disk_path) as watch:
        return watch.collect()


def _judged(gpu: GpuInfo, *problems: str) -> GpuInfo:
    """`gpu`, quarantined with every reason found: critical XIDs, uncorrected ECC, `problems`."""
    reasons = [describe_xid(xid) for xid in gpu.xids]
    if gpu.ecc_uncorrected:
        reasons.append(f"uncorrected ECC errors: {gpu.ecc_uncorrected}")
    reasons.extend(problems)
    if not reasons:
        return gpu
    return gpu.model_copy(update={"quarantined": True, "quarantine_reason": "; ".join(reasons)})


def _optional(read: Callable[[], T]) -> T | None:
    """What `read` returns, or None where this GPU or driver does not offer that query."""
    try:
        return read()
    except _ABSENT:
        return None


def _handle_key(handle: object) -> object:
    """NVML hands out a new ctypes pointer for the same GPU each time; key it by its address."""
    if isinstance(handle, pynvml.c_nvmlDevice_t):
        return ctypes.cast(handle, ctypes.c_void_p).value
    return handle


def _ecc(handle: object, error_type: int) -> int:
    return int(pynvml.nvmlDeviceGetTotalEccErrors(handle, error_type, pynvml.NVML_VOLATILE_ECC))


def _watts(milliwatts: int) -> float:
    return int(milliwatts) / 1000


def _cuda_version(version: int) -> str:
    """NVML's CUDA version number as people write it: 12040 -> "12.4"."""
    version = int(version)
    return f"{version // 1000}.{version % 1000 // 10}"


def _disk(path: Path) -> tuple[int | None, int | None]:
    """(total, free to unprivileged users) of the filesystem holding `path`."""
    try:
        usage = shutil.disk_usage(path)
    except OSError:
        return None, None
    return usage.total, usage.free


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
