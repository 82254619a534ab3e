"""Device choice for parallel searches, checked with a fake NVML (no GPU needed)."""

import sys
import types

import pytest
import torch

from skcnn._device import _gpu_free_memory, _pick_gpu, resolve_device

GIB = 1 << 30


def fake_nvml(free_by_index, uuids=()):
    """A stand-in for the pynvml module: GPU i has free_by_index[i] bytes free."""
    by_uuid = {u: i for i, u in enumerate(uuids)}
    return types.SimpleNamespace(
        nvmlInit=lambda: None,
        nvmlDeviceGetHandleByIndex=lambda i: i,
        nvmlDeviceGetHandleByUUID=lambda u: by_uuid[u],
        nvmlDeviceGetMemoryInfo=lambda h: types.SimpleNamespace(free=free_by_index[h]),
    )


@pytest.fixture
def four_gpus(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 4)
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)


def test_workers_starting_together_get_different_gpus():
    # four idle GPUs, four search workers with consecutive pids
    free = [80 * GIB] * 4
    assert sorted(_pick_gpu(4, free, pid) for pid in range(1000, 1004)) == [0, 1, 2, 3]


def test_busy_gpus_are_avoided():
    free = [80 * GIB, 20 * GIB, 79 * GIB, 5 * GIB]
    assert {_pick_gpu(4, free, pid) for pid in range(100)} == {0, 2}


def test_without_nvml_round_robin_by_pid():
    assert [_pick_gpu(3, None, pid) for pid in range(6)] == [0, 1, 2, 0, 1, 2]


def test_auto_reads_nvml(four_gpus, monkeypatch):
    monkeypatch.setitem(
        sys.modules,
        "pynvml",
        fake_nvml([1 * GIB, 1 * GIB, 70 * GIB, 1 * GIB]),
    )
    assert resolve_device("auto") == "cuda:2"


def test_visible_devices_map_to_nvml_indices_and_uuids(four_gpus, monkeypatch):
    nvml = fake_nvml([1 * GIB, 2 * GIB, 3 * GIB, 40 * GIB], uuids=["a", "b", "c", "d"])
    monkeypatch.setitem(sys.modules, "pynvml", nvml)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3,0")
    assert _gpu_free_memory(2) == [40 * GIB, 1 * GIB]
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "GPU-x,d")
    assert _gpu_free_memory(2) is None  # an unknown UUID: NVML does not match
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "c,d")
    assert _gpu_free_memory(2) == [3 * GIB, 40 * GIB]


def test_no_nvml_module(four_gpus, monkeypatch):
    monkeypatch.setitem(sys.modules, "pynvml", None)  # import fails
    assert _gpu_free_memory(4) is None
    assert resolve_device("auto").startswith("cuda:")


def test_auto_threads_leave_out_busy_cores(monkeypatch, small_digits):
    import os

    import torch
    from skorch.callbacks import Callback

    from skcnn import CNNClassifier, _device

    from .conftest import TINY

    class Threads(Callback):
        def __init__(self, seen=None):
            self.seen = seen

        def on_epoch_begin(self, net, **kwargs):
            self.seen.append(torch.get_num_threads())

    before = torch.get_num_threads()
    cores = os.cpu_count()
    monkeypatch.setattr(torch, "get_num_threads", lambda: cores)
    monkeypatch.setattr(_device, "_cores_busy_elsewhere", lambda: cores - 1.2)
    assert _device.fit_threads("auto") == 1
    monkeypatch.setattr(_device, "_cores_busy_elsewhere", lambda: 0.0)
    assert _device.fit_threads("auto") == cores
    monkeypatch.setattr(_device, "_cores_busy_elsewhere", lambda: None)  # no /proc
    assert _device.fit_threads("auto") == cores
    # pinned counts as given, up to the usable cores (more only slow a fit down)
    assert _device.fit_threads(1) == 1 and _device.fit_threads(None) is None
    assert _device.fit_threads(3) == min(3, _device.usable_cores())
    monkeypatch.undo()

    X, y = small_digits
    seen = []
    CNNClassifier(**TINY, num_threads=1, callbacks=[Threads(seen)]).fit(X, y)
    assert set(seen) == {1}
    assert torch.get_num_threads() == before  # restored after the fit


def test_busy_core_probe_reads_proc_stat():
    from skcnn import _device

    _device._last_probe[:] = [0.0, None]
    busy = _device._cores_busy_elsewhere()
    if busy is not None:  # Linux
        import os

        assert 0 <= busy <= os.cpu_count()


def test_malloc_keeps_freed_memory_on_glibc(monkeypatch):
    """The comparison's processes keep freed memory (glibc); elsewhere the
    call does nothing and says so."""
    import ctypes.util
    import platform

    from skcnn._device import keep_freed_memory

    if platform.libc_ver()[0] != "glibc":
        assert keep_freed_memory() is False
    else:
        assert keep_freed_memory() is True
    monkeypatch.setattr(ctypes.util, "find_library", lambda name: "no-such-libc.so")
    assert keep_freed_memory() is False
