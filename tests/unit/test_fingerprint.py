"""What the agent reports about its machine, with NVML faked at its boundary."""

import ctypes
import inspect
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import psutil
import pynvml
import pytest

from hashgrid.agent import fingerprint
from hashgrid.agent.fingerprint import GpuWatch
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


def _nvml_error(code: int) -> pynvml.NVMLError:
    return pynvml.NVMLError(code)


@dataclass
class FakeMemory:
    total: int
    free: int
    used: int = 0


@dataclass
class FakeGpu:
    """One GPU's state. A reading set to None is one this GPU does not support."""

    uuid: str | bytes
    name: str | bytes
    total: int
    free: int
    power_mw: int | None = 250_000
    power_limit_mw: int | None = 700_000
    temperature_c: int | None = 45
    ecc: tuple[int, int] | None = (0, 0)  # volatile (uncorrected, corrected)


class FakeNvml:
    """The NVML functions `fingerprint` calls, over per-GPU state.

    Handles are real ctypes device pointers, and NVML-style: every call hands out a new pointer
    object for the same device, so the code under test must not rely on pointer identity.
    Every NVML function not faked here fails the test if called.
    """

    def __init__(
        self,
        gpus: list[FakeGpu],
        driver: str | bytes = "550.54.15",
        cuda: int | None = 12040,
        init_error: int | None = None,
        events: bool = True,
    ) -> None:
        self.gpus = gpus
        self.driver = driver
        self.cuda = cuda
        self.init_error = init_error
        self.events = events
        self.lost: set[int] = set()  # indices NVML answers "GPU is lost" for
        self.calls: list[str] = []
        self.waits: list[int] = []  # timeout of each nvmlEventSetWait_v2
        self.registered: set[int] = set()
        self.pending: list[tuple[int, int]] = []  # (index, xid) not yet read
        self.event_set: object | None = None
        self._devices = [pynvml.struct_c_nvmlDevice_t() for _ in gpus]

    def install(self, monkeypatch: pytest.MonkeyPatch) -> "FakeNvml":
        for name, value in vars(pynvml).items():
            if name.startswith("nvml") and inspect.isfunction(value):
                monkeypatch.setattr(pynvml, name, self._unfaked(name))
        for name in (
            "nvmlInit",
            "nvmlShutdown",
            "nvmlSystemGetDriverVersion",
            "nvmlSystemGetCudaDriverVersion_v2",
            "nvmlDeviceGetCount",
            "nvmlDeviceGetHandleByIndex",
            "nvmlDeviceGetUUID",
            "nvmlDeviceGetName",
            "nvmlDeviceGetMemoryInfo",
            "nvmlDeviceGetPowerUsage",
            "nvmlDeviceGetEnforcedPowerLimit",
            "nvmlDeviceGetTemperature",
            "nvmlDeviceGetTotalEccErrors",
            "nvmlEventSetCreate",
            "nvmlDeviceRegisterEvents",
            "nvmlEventSetWait_v2",
            "nvmlEventSetFree",
        ):
            monkeypatch.setattr(pynvml, name, getattr(self, name))
        return self

    @staticmethod
    def _unfaked(name: str) -> Any:
        def call(*_args: object) -> None:
            raise AssertionError(f"NVML function not faked: {name}")

        return call

    # What the driver does on its own.

    def raise_xid(self, index: int, xid: int) -> None:
        """The driver reports a critical XID; only GPUs registered on a live event set hear it."""
        if index in self.registered and self.event_set is not None:
            self.pending.append((index, xid))

    # NVML.

    def _index(self, handle: Any) -> int:
        assert isinstance(handle, pynvml.c_nvmlDevice_t)
        address = ctypes.addressof(handle.contents)
        index = next(i for i, d in enumerate(self._devices) if ctypes.addressof(d) == address)
        if index in self.lost:
            raise _nvml_error(pynvml.NVML_ERROR_GPU_IS_LOST)
        return index

    def _gpu(self, handle: Any) -> FakeGpu:
        return self.gpus[self._index(handle)]

    def _handle(self, index: int) -> Any:
        return pynvml.c_nvmlDevice_t(self._devices[index])

    def nvmlInit(self) -> None:
        self.calls.append("init")
        if self.init_error is not None:
            raise _nvml_error(self.init_error)

    def nvmlShutdown(self) -> None:
        self.calls.append("shutdown")

    def nvmlSystemGetDriverVersion(self) -> str | bytes:
        return self.driver

    def nvmlSystemGetCudaDriverVersion_v2(self) -> int:
        if self.cuda is None:
            raise _nvml_error(pynvml.NVML_ERROR_FUNCTION_NOT_FOUND)
        return self.cuda

    def nvmlDeviceGetCount(self) -> int:
        return len(self.gpus)

    def nvmlDeviceGetHandleByIndex(self, index: int) -> Any:
        if index in self.lost:
            raise _nvml_error(pynvml.NVML_ERROR_GPU_IS_LOST)
        return self._handle(index)

    def nvmlDeviceGetUUID(self, handle: Any) -> str | bytes:
        return self._gpu(handle).uuid

    def nvmlDeviceGetName(self, handle: Any) -> str | bytes:
        return self._gpu(handle).name

    def nvmlDeviceGetMemoryInfo(self, handle: Any) -> FakeMemory:
        gpu = self._gpu(handle)
        return FakeMemory(total=gpu.total, free=gpu.free, used=gpu.total - gpu.free)

    @staticmethod
    def _supported(value: int | None) -> int:
        if value is None:
            raise _nvml_error(pynvml.NVML_ERROR_NOT_SUPPORTED)
        return value

    def nvmlDeviceGetPowerUsage(self, handle: Any) -> int:
        return self._supported(self._gpu(handle).power_mw)

    def nvmlDeviceGetEnforcedPowerLimit(self, handle: Any) -> int:
        return self._supported(self._gpu(handle).power_limit_mw)

    def nvmlDeviceGetTemperature(self, handle: Any, sensor: int) -> int:
        assert sensor == pynvml.NVML_TEMPERATURE_GPU
        return self._supported(self._gpu(handle).temperature_c)

    def nvmlDeviceGetTotalEccErrors(self, handle: Any, error_type: int, counter: int) -> int:
        assert counter == pynvml.NVML_VOLATILE_ECC
        ecc = self._gpu(handle).ecc
        if ecc is None:
            raise _nvml_error(pynvml.NVML_ERROR_NOT_SUPPORTED)
        uncorrected, corrected = ecc
        if error_type == pynvml.NVML_MEMORY_ERROR_TYPE_UNCORRECTED:
            return uncorrected
        assert error_type == pynvml.NVML_MEMORY_ERROR_TYPE_CORRECTED
        return corrected

    def nvmlEventSetCreate(self) -> object:
        if not self.events:
            raise _nvml_error(pynvml.NVML_ERROR_NOT_SUPPORTED)
        self.calls.append("event set create")
        self.event_set = object()
        return self.event_set

    def nvmlDeviceRegisterEvents(self, handle: Any, types: int, event_set: object) -> None:
        assert event_set is self.event_set
        assert types == pynvml.nvmlEventTypeXidCriticalError
        self.registered.add(self._index(handle))

    def nvmlEventSetWait_v2(self, event_set: object, timeout_ms: int) -> Any:
        assert event_set is self.event_set
        self.waits.append(timeout_ms)
        if not self.pending:
            raise _nvml_error(pynvml.NVML_ERROR_TIMEOUT)
        index, xid = self.pending.pop(0)
        data = pynvml.c_nvmlEventData_t()
        data.device = self._handle(index)
        data.eventType = pynvml.nvmlEventTypeXidCriticalError
        data.eventData = xid
        return data

    def nvmlEventSetFree(self, event_set: object) -> None:
        assert event_set is self.event_set
        self.calls.append("event set free")
        self.event_set = None


def two_gpus() -> list[FakeGpu]:
    return [
        FakeGpu("GPU-aaaa", "NVIDIA H100 80GB HBM3", 80 * GIB, 79 * GIB),
        FakeGpu(
            "GPU-bbbb",
            "NVIDIA H100 80GB HBM3",
            80 * GIB,
            10 * GIB,
            power_mw=612_345,
            temperature_c=71,
            ecc=(0, 3),
        ),
    ]


# --- the real machine ----------------------------------------------------------------------


@pytest.mark.skipif(_nvml_answers(), reason="this machine has an NVIDIA driver")
def test_collect_without_a_driver_reports_no_gpus_and_why() -> None:
    fp = fingerprint.collect()
    assert fp.gpus == []
    assert fp.gpu_driver is None
    assert fp.cuda_driver is None
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


def test_disk_figures_are_those_of_the_filesystem_holding_disk_path(tmp_path: Path) -> None:
    fp = fingerprint.collect(disk_path=tmp_path)
    assert fp.disk_total_bytes == shutil.disk_usage(tmp_path).total
    assert fp.disk_free_bytes is not None
    assert 0 < fp.disk_free_bytes <= fp.disk_total_bytes


# --- disk ----------------------------------------------------------------------------------


def test_disk_figures_come_from_disk_path_and_default_to_the_current_directory(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    asked: list[Path] = []

    def usage(path: Path) -> Any:
        asked.append(Path(path))
        return SimpleNamespace(total=500 * GIB, used=200 * GIB, free=300 * GIB)

    FakeNvml([]).install(monkeypatch)
    monkeypatch.setattr(shutil, "disk_usage", usage)
    fp = fingerprint.collect(disk_path=tmp_path)
    assert (fp.disk_total_bytes, fp.disk_free_bytes) == (500 * GIB, 300 * GIB)
    fingerprint.collect()
    assert [p.resolve() for p in asked] == [tmp_path.resolve(), Path.cwd().resolve()]


def test_an_unreadable_disk_path_leaves_disk_figures_none(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    FakeNvml([]).install(monkeypatch)
    fp = fingerprint.collect(disk_path=tmp_path / "gone")
    assert fp.disk_total_bytes is None
    assert fp.disk_free_bytes is None


# --- NVML present ----------------------------------------------------------------------------


def test_every_gpu_field_and_the_driver_versions_are_reported(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fake = FakeNvml(two_gpus()).install(monkeypatch)
    fp = fingerprint.collect()
    assert fp.gpus == [
        GpuInfo(
            index=0,
            uuid="GPU-aaaa",
            name="NVIDIA H100 80GB HBM3",
            memory_total_bytes=80 * GIB,
            memory_free_bytes=79 * GIB,
            power_draw_w=250.0,
            power_limit_w=700.0,
            temperature_c=45,
            ecc_uncorrected=0,
            ecc_corrected=0,
        ),
        GpuInfo(
            index=1,
            uuid="GPU-bbbb",
            name="NVIDIA H100 80GB HBM3",
            memory_total_bytes=80 * GIB,
            memory_free_bytes=10 * GIB,
            power_draw_w=612.345,
            power_limit_w=700.0,
            temperature_c=71,
            ecc_uncorrected=0,
            ecc_corrected=3,  # corrected errors alone do not quarantine
        ),
    ]
    assert not any(g.quarantined for g in fp.gpus)
    assert fp.gpu_driver == "550.54.15"
    assert fp.cuda_driver == "12.4"
    assert fp.gpu_error is None
    assert fake.calls == ["init", "event set create", "event set free", "shutdown"]


@pytest.mark.parametrize(
    ("number", "text"), [(12040, "12.4"), (11080, "11.8"), (12000, "12.0"), (12100, "12.10")]
)
def test_cuda_driver_version_is_written_major_dot_minor(
    monkeypatch: pytest.MonkeyPatch, number: int, text: str
) -> None:
    FakeNvml([], cuda=number).install(monkeypatch)
    assert fingerprint.collect().cuda_driver == text


def test_bytes_from_older_bindings_are_decoded(monkeypatch: pytest.MonkeyPatch) -> None:
    gpus = [FakeGpu(b"GPU-cccc", b"NVIDIA GeForce RTX 4090", 24 * GIB, 20 * GIB)]
    FakeNvml(gpus, driver=b"535.104.05").install(monkeypatch)
    fp = fingerprint.collect()
    assert [(g.uuid, g.name) for g in fp.gpus] == [("GPU-cccc", "NVIDIA GeForce RTX 4090")]
    assert isinstance(fp.gpus[0].uuid, str)
    assert fp.gpu_driver == "535.104.05"
    assert fp.gpu_error is None


def test_no_gpus_with_a_driver_is_not_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    FakeNvml([]).install(monkeypatch)
    fp = fingerprint.collect()
    assert (fp.gpus, fp.gpu_driver, fp.gpu_error) == ([], "550.54.15", None)


def test_ecc_not_supported_leaves_counts_none_and_does_not_quarantine(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    gpus = [FakeGpu("GPU-cccc", "NVIDIA GeForce RTX 4090", 24 * GIB, 20 * GIB, ecc=None)]
    FakeNvml(gpus).install(monkeypatch)
    (gpu,) = fingerprint.collect().gpus
    assert (gpu.ecc_uncorrected, gpu.ecc_corrected) == (None, None)
    assert gpu.quarantined is False
    assert gpu.quarantine_reason is None


def test_uncorrected_ecc_errors_quarantine_that_gpu_only(monkeypatch: pytest.MonkeyPatch) -> None:
    gpus = two_gpus()
    gpus[1].ecc = (2, 7)
    FakeNvml(gpus).install(monkeypatch)
    healthy, broken = fingerprint.collect().gpus
    assert (broken.ecc_uncorrected, broken.ecc_corrected) == (2, 7)
    assert broken.quarantined is True
    assert broken.quarantine_reason == "uncorrected ECC errors: 2"
    assert healthy.quarantined is False


def test_power_and_temperature_not_supported_leave_those_fields_none(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    gpus = [
        FakeGpu(
            "GPU-dddd",
            "NVIDIA T4",
            16 * GIB,
            15 * GIB,
            power_mw=None,
            power_limit_mw=None,
            temperature_c=None,
        )
    ]
    FakeNvml(gpus).install(monkeypatch)
    fp = fingerprint.collect()
    (gpu,) = fp.gpus
    assert (gpu.power_draw_w, gpu.power_limit_w, gpu.temperature_c) == (None, None, None)
    assert gpu.memory_total_bytes == 16 * GIB
    assert gpu.quarantined is False
    assert fp.gpu_error is None


def test_a_driver_without_the_cuda_version_call_leaves_cuda_driver_none(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    FakeNvml(two_gpus(), cuda=None).install(monkeypatch)
    fp = fingerprint.collect()
    assert fp.cuda_driver is None
    assert fp.gpu_driver == "550.54.15"
    assert len(fp.gpus) == 2


# --- XID events ------------------------------------------------------------------------------


def test_a_critical_xid_quarantines_that_gpu_and_it_stays_quarantined(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fake = FakeNvml(two_gpus()).install(monkeypatch)
    with GpuWatch() as watch:
        first = watch.collect()
        assert not any(g.quarantined for g in first.gpus)
        assert fake.registered == {0, 1}

        fake.raise_xid(1, 79)
        second = watch.collect()
        assert second.gpus[0].quarantined is False
        assert second.gpus[1].quarantined is True
        assert second.gpus[1].quarantine_reason == "XID 79 (GPU has fallen off the bus)"
        assert second.gpus[1].xids == [79]

        third = watch.collect()  # no new event: the XID is not forgotten
        assert third.gpus[1].quarantined is True
        assert third.gpus[1].quarantine_reason == "XID 79 (GPU has fallen off the bus)"
        assert third.gpus[0].quarantined is False
    assert fake.waits
    assert set(fake.waits) == {0}  # polled, never blocking


def test_xids_are_listed_once_each_in_order_and_unknown_ones_by_number(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fake = FakeNvml(two_gpus()).install(monkeypatch)
    with GpuWatch() as watch:
        watch.collect()
        for xid in (48, 48, 200, 48):
            fake.raise_xid(0, xid)
        gpu = watch.collect().gpus[0]
    assert gpu.xids == [48, 200]
    assert gpu.quarantine_reason == "XID 48 (Double Bit ECC Error); XID 200"


def test_xid_and_ecc_reasons_are_both_given(monkeypatch: pytest.MonkeyPatch) -> None:
    gpus = two_gpus()
    fake = FakeNvml(gpus).install(monkeypatch)
    with GpuWatch() as watch:
        watch.collect()
        fake.raise_xid(0, 94)
        gpus[0].ecc = (1, 0)
        gpu = watch.collect().gpus[0]
    assert gpu.quarantine_reason == "XID 94 (Contained ECC error); uncorrected ECC errors: 1"


def test_events_not_supported_still_gives_a_full_fingerprint(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fake = FakeNvml(two_gpus(), events=False).install(monkeypatch)
    with GpuWatch() as watch:
        fp = watch.collect()
        fake.raise_xid(0, 79)  # nobody is listening
        again = watch.collect()
    assert [g.uuid for g in fp.gpus] == ["GPU-aaaa", "GPU-bbbb"]
    assert not any(g.quarantined for g in again.gpus)
    assert fake.waits == []
    assert fake.calls == ["init", "shutdown"]  # no event set to free


WELL_KNOWN_XIDS = [13, 31, 43, 45, 48, 61, 62, 63, 64, 74, 79, 92, 94, 95, 119, 120]


@pytest.mark.parametrize("xid", WELL_KNOWN_XIDS)
def test_each_well_known_xid_is_described_with_its_meaning(xid: int) -> None:
    description = fingerprint.describe_xid(xid)
    assert description == f"XID {xid} ({fingerprint.XID_MEANINGS[xid]})"
    assert fingerprint.XID_MEANINGS[xid].strip()


# --- failures ------------------------------------------------------------------------------


def test_failed_init_reports_no_nvidia_gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = FakeNvml(two_gpus(), init_error=pynvml.NVML_ERROR_LIBRARY_NOT_FOUND)
    fake.install(monkeypatch)
    fp = fingerprint.collect()
    assert fp.gpus == []
    assert fp.gpu_driver is None
    assert fp.cuda_driver is None
    assert fp.gpu_error == "no NVIDIA GPU: NVML Shared Library Not Found"
    assert fake.calls == ["init"]  # nothing to shut down when init failed


def test_a_watch_finds_a_driver_loaded_after_it_started(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = FakeNvml(two_gpus(), init_error=pynvml.NVML_ERROR_DRIVER_NOT_LOADED)
    fake.install(monkeypatch)
    with GpuWatch() as watch:
        assert watch.collect().gpu_error == "no NVIDIA GPU: Driver Not Loaded"
        fake.init_error = None
        fp = watch.collect()
    assert fp.gpu_error is None
    assert [g.uuid for g in fp.gpus] == ["GPU-aaaa", "GPU-bbbb"]
    assert fake.calls == ["init", "init", "event set create", "event set free", "shutdown"]


def test_a_gpu_nvml_cannot_read_is_reported_quarantined_beside_the_others(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fake = FakeNvml(two_gpus()).install(monkeypatch)
    with GpuWatch() as watch:
        watch.collect()
        fake.lost.add(1)
        fp = watch.collect()
    healthy, lost = fp.gpus
    assert healthy.uuid == "GPU-aaaa"
    assert healthy.quarantined is False
    assert (lost.index, lost.uuid, lost.name) == (1, "GPU-bbbb", "NVIDIA H100 80GB HBM3")
    assert lost.quarantined is True
    assert lost.quarantine_reason == "NVML error: GPU is lost"
    assert fp.gpu_error is None
    assert capacity_of(fp) == 80 * GIB


def test_a_gpu_lost_before_any_read_is_still_counted_and_quarantined(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fake = FakeNvml(two_gpus())
    fake.lost.add(1)
    fake.install(monkeypatch)
    fp = fingerprint.collect()
    assert [(g.index, g.uuid, g.quarantined) for g in fp.gpus] == [
        (0, "GPU-aaaa", False),
        (1, "", True),
    ]
    assert fp.gpus[1].quarantine_reason == "NVML error: GPU is lost"
    assert fake.calls == ["init", "event set create", "event set free", "shutdown"]


def test_nvml_is_shut_down_even_when_an_unexpected_error_escapes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fake = FakeNvml(two_gpus()).install(monkeypatch)

    def broken(_handle: object) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr(pynvml, "nvmlDeviceGetMemoryInfo", broken)
    with pytest.raises(RuntimeError, match="boom"):
        fingerprint.collect()
    assert fake.calls == ["init", "event set create", "event set free", "shutdown"]


# --- closing -------------------------------------------------------------------------------


def test_close_frees_the_event_set_then_shuts_nvml_down_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fake = FakeNvml(two_gpus()).install(monkeypatch)
    watch = GpuWatch()
    watch.collect()
    watch.collect()
    assert fake.calls == ["init", "event set create"]  # held open between collections
    watch.close()
    watch.close()
    assert fake.calls == ["init", "event set create", "event set free", "shutdown"]
    with pytest.raises(RuntimeError, match="closed"):
        watch.collect()


def test_closing_a_watch_that_never_collected_touches_nothing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fake = FakeNvml(two_gpus()).install(monkeypatch)
    GpuWatch().close()
    assert fake.calls == []


# --- the contract --------------------------------------------------------------------------


def test_fingerprint_with_gpus_round_trips_as_json(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = FakeNvml(two_gpus()).install(monkeypatch)
    with GpuWatch() as watch:
        watch.collect()
        fake.raise_xid(0, 79)
        fp = watch.collect()
    assert fp.gpus[0].quarantined
    assert Fingerprint.model_validate_json(fp.model_dump_json()) == fp


def test_an_older_agents_fingerprint_still_validates_with_defaults() -> None:
    old = {
        "hostname": "h",
        "os": "Linux 6",
        "arch": "x86_64",
        "cpu_model": "cpu",
        "cpu_count": 8,
        "memory_total_bytes": 64 * GIB,
        "memory_available_bytes": 32 * GIB,
        "gpus": [
            {
                "index": 0,
                "uuid": "GPU-0",
                "name": "g",
                "memory_total_bytes": 24 * GIB,
                "memory_free_bytes": GIB,
            }
        ],
        "gpu_driver": "535.104.05",
    }
    fp = Fingerprint.model_validate(old)
    (gpu,) = fp.gpus
    assert gpu.quarantined is False
    assert gpu.quarantine_reason is None
    assert gpu.xids == []
    assert (gpu.power_draw_w, gpu.temperature_c, gpu.ecc_uncorrected) == (None, None, None)
    assert (fp.cuda_driver, fp.disk_total_bytes, fp.disk_free_bytes) == (None, None, None)
    assert capacity_of(fp) == 24 * GIB


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


def _gpu(index: int, total: int, free: int = 0, quarantined: bool = False) -> GpuInfo:
    return GpuInfo(
        index=index,
        uuid=f"GPU-{index}",
        name="g",
        memory_total_bytes=total,
        memory_free_bytes=free,
        quarantined=quarantined,
        quarantine_reason="XID 79 (GPU has fallen off the bus)" if quarantined else None,
    )


def test_capacity_is_the_sum_of_gpu_memory_when_gpus_exist() -> None:
    fp = _fp([_gpu(0, 24 * GIB, 1), _gpu(1, 80 * GIB, 2)], ram=512 * GIB)
    assert capacity_of(fp) == 104 * GIB


def test_capacity_counts_total_not_free_gpu_memory() -> None:
    assert capacity_of(_fp([_gpu(0, 16 * GIB, free=GIB)])) == 16 * GIB


def test_capacity_is_ram_on_a_cpu_only_node() -> None:
    assert capacity_of(_fp([], ram=32 * GIB)) == 32 * GIB


def test_capacity_leaves_out_quarantined_gpus() -> None:
    fp = _fp([_gpu(0, 24 * GIB), _gpu(1, 80 * GIB, quarantined=True)], ram=512 * GIB)
    assert capacity_of(fp) == 24 * GIB


def test_capacity_is_zero_not_ram_when_every_gpu_is_quarantined() -> None:
    fp = _fp([_gpu(0, 80 * GIB, quarantined=True), _gpu(1, 80 * GIB, quarantined=True)])
    assert capacity_of(fp) == 0
