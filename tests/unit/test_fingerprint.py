"""What the agent reports about its machine, with NVML faked at its boundary."""

import os
from dataclasses import dataclass

import psutil
import pynvml
import pytest

from hashgrid.agent import fingerprint
from hashgrid.contracts.agent import Fingerprint, GpuInfo
from hashgrid.server.nodes.service import capacity_of

GIB = 2**30


def _nvml_answers() -> bool:
    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError:
        return False
    pynvml.nvmlShutdown()
    return True


@dataclass
class FakeMemory:
    total: int
    free: int
    used: int = 0


@dataclass
class FakeGpu:
    uuid: str | bytes
    name: str | bytes
    total: int
    free: int


class FakeNvml:
    """Stands in for the NVML functions `fingerprint` calls; records init and shutdown."""

    def __init__(
        self,
        gpus: list[FakeGpu],
        driver: str | bytes = "550.54.15",
        fail_at_index: int | None = None,
        init_error: int | None = None,
    ) -> None:
        self.gpus = gpus
        self.driver = driver
        self.fail_at_index = fail_at_index
        self.init_error = init_error
        self.calls: list[str] = []

    def install(self, monkeypatch: pytest.MonkeyPatch) -> "FakeNvml":
        for name in (
            "nvmlInit",
            "nvmlDeviceGetCount",
            "nvmlDeviceGetHandleByIndex",
            "nvmlDeviceGetMemoryInfo",
            "nvmlDeviceGetUUID",
            "nvmlDeviceGetName",
            "nvmlSystemGetDriverVersion",
            "nvmlShutdown",
        ):
            monkeypatch.setattr(pynvml, name, getattr(self, name))
        return self

    def nvmlInit(self) -> None:
        self.calls.append("init")
        if self.init_error is not None:
            raise pynvml.NVMLError(self.init_error)

    def nvmlShutdown(self) -> None:
        self.calls.append("shutdown")

    def nvmlDeviceGetCount(self) -> int:
        return len(self.gpus)

    def nvmlDeviceGetHandleByIndex(self, index: int) -> FakeGpu:
        if index == self.fail_at_index:
            raise pynvml.NVMLError(pynvml.NVML_ERROR_GPU_IS_LOST)
        return self.gpus[index]

    def nvmlDeviceGetMemoryInfo(self, handle: FakeGpu) -> FakeMemory:
        return FakeMemory(total=handle.total, free=handle.free, used=handle.total - handle.free)

    def nvmlDeviceGetUUID(self, handle: FakeGpu) -> str | bytes:
        return handle.uuid

    def nvmlDeviceGetName(self, handle: FakeGpu) -> str | bytes:
        return handle.name

    def nvmlSystemGetDriverVersion(self) -> str | bytes:
        return self.driver


TWO_GPUS = [
    FakeGpu("GPU-aaaa", "NVIDIA H100 80GB HBM3", 80 * GIB, 79 * GIB),
    FakeGpu("GPU-bbbb", "NVIDIA H100 80GB HBM3", 80 * GIB, 10 * GIB),
]


@pytest.mark.skipif(_nvml_answers(), reason="this machine has an NVIDIA driver")
def test_collect_without_a_driver_reports_no_gpus_and_why() -> None:
    fp = fingerprint.collect()
    assert fp.gpus == []
    assert fp.gpu_driver is None
    assert fp.gpu_error is not None
    assert fp.gpu_error.startswith("no NVIDIA GPU")


def test_collect_reports_sane_cpu_and_memory_figures() -> None:
    fp = fingerprint.collect()
    assert fp.cpu_count >= 1
    assert fp.cpu_count == (psutil.cpu_count(logical=True) or 1)
    assert fp.cpu_model
    assert fp.hostname
    assert fp.arch == os.uname().machine
    assert fp.os.startswith(os.uname().sysname)
    assert 0 < fp.memory_available_bytes <= fp.memory_total_bytes
    assert fp.memory_total_bytes == psutil.virtual_memory().total


def test_failed_init_reports_no_nvidia_gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = FakeNvml(TWO_GPUS, init_error=pynvml.NVML_ERROR_LIBRARY_NOT_FOUND).install(monkeypatch)
    fp = fingerprint.collect()
    assert fp.gpus == []
    assert fp.gpu_driver is None
    assert fp.gpu_error == "no NVIDIA GPU: NVML Shared Library Not Found"
    assert fake.calls == ["init"]  # nothing to shut down when init failed


def test_fake_nvml_reports_each_gpu_and_the_driver(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = FakeNvml(TWO_GPUS).install(monkeypatch)
    fp = fingerprint.collect()
    assert fp.gpus == [
        GpuInfo(
            index=0,
            uuid="GPU-aaaa",
            name="NVIDIA H100 80GB HBM3",
            memory_total_bytes=80 * GIB,
            memory_free_bytes=79 * GIB,
        ),
        GpuInfo(
            index=1,
            uuid="GPU-bbbb",
            name="NVIDIA H100 80GB HBM3",
            memory_total_bytes=80 * GIB,
            memory_free_bytes=10 * GIB,
        ),
    ]
    assert fp.gpu_driver == "550.54.15"
    assert fp.gpu_error is None
    assert fake.calls == ["init", "shutdown"]


def test_bytes_from_older_bindings_are_decoded(monkeypatch: pytest.MonkeyPatch) -> None:
    gpus = [FakeGpu(b"GPU-cccc", b"NVIDIA GeForce RTX 4090", 24 * GIB, 20 * GIB)]
    FakeNvml(gpus, driver=b"535.104.05").install(monkeypatch)
    found, driver, error = fingerprint.nvidia_gpus()
    assert [(g.uuid, g.name) for g in found] == [("GPU-cccc", "NVIDIA GeForce RTX 4090")]
    assert isinstance(found[0].uuid, str)
    assert driver == "535.104.05"
    assert error is None


def test_no_gpus_with_a_driver_is_not_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    FakeNvml([]).install(monkeypatch)
    assert fingerprint.nvidia_gpus() == ([], "550.54.15", None)


def test_nvml_error_mid_enumeration_gives_no_gpus_and_an_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fake = FakeNvml(TWO_GPUS, fail_at_index=1).install(monkeypatch)
    fp = fingerprint.collect()
    assert fp.gpus == []
    assert fp.gpu_driver is None
    assert fp.gpu_error == "NVML error: GPU is lost"
    assert fake.calls == ["init", "shutdown"]


def test_nvml_is_shut_down_even_when_an_unexpected_error_escapes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fake = FakeNvml(TWO_GPUS).install(monkeypatch)

    def broken(_index: int) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr(pynvml, "nvmlDeviceGetHandleByIndex", broken)
    with pytest.raises(RuntimeError, match="boom"):
        fingerprint.nvidia_gpus()
    assert fake.calls == ["init", "shutdown"]


def test_fingerprint_with_gpus_round_trips_as_json(monkeypatch: pytest.MonkeyPatch) -> None:
    FakeNvml(TWO_GPUS).install(monkeypatch)
    fp = fingerprint.collect()
    assert Fingerprint.model_validate_json(fp.model_dump_json()) == fp


# --- capacity_of ---------------------------------------------------------------------------


def _fp(gpus: list[GpuInfo], ram: int = 64 * GIB) -> Fingerprint:
    return Fingerprint(
        hostname="h",
        os="Linux 6",
        arch="x86_64",
        cpu_model="cpu",
        cpu_count=8,
        memory_total_bytes=ram,
        memory_available_bytes=ram // 2,
        gpus=gpus,
    )


def _gpu(index: int, total: int, free: int = 0) -> GpuInfo:
    return GpuInfo(
        index=index, uuid=f"GPU-{index}", name="g", memory_total_bytes=total, memory_free_bytes=free
    )


def test_capacity_is_the_sum_of_gpu_memory_when_gpus_exist() -> None:
    fp = _fp([_gpu(0, 24 * GIB, 1), _gpu(1, 80 * GIB, 2)], ram=512 * GIB)
    assert capacity_of(fp) == 104 * GIB


def test_capacity_counts_total_not_free_gpu_memory() -> None:
    assert capacity_of(_fp([_gpu(0, 16 * GIB, free=GIB)])) == 16 * GIB


def test_capacity_is_ram_on_a_cpu_only_node() -> None:
    assert capacity_of(_fp([], ram=32 * GIB)) == 32 * GIB
