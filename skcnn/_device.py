"""Where and how tensors run: device, precision, the CPU fallback, inference.

One home for everything that depends on the hardware: choosing the device
(``"auto"`` spreads parallel search workers over GPUs), the CPU threads of a
fit (``"auto"`` leaves out the cores other processes keep busy), mapping the
``precision`` parameter to an autocast dtype, what happens when a model made
on a GPU meets a machine without one, eval mode, and batched inference.
"""

from __future__ import annotations

import contextlib
import os
import time

import numpy as np
import torch

__all__ = [
    "MAX_THREADS",
    "autocast",
    "cudnn_benchmark",
    "eval_mode",
    "gpu_missing",
    "infer_batches",
    "intra_op_threads",
    "keep_freed_memory",
    "resolve_device",
    "resolve_precision",
    "usable_cores",
]


def _gpu_free_memory(n):
    """Free memory of the ``n`` visible GPUs, read through NVML (which creates
    no CUDA context on them); None when NVML is missing or does not answer."""
    try:
        import pynvml

        pynvml.nvmlInit()
        visible = os.environ.get("CUDA_VISIBLE_DEVICES")
        names = (
            [v.strip() for v in visible.split(",")][:n]
            if visible
            else [str(i) for i in range(n)]
        )
        handles = [
            pynvml.nvmlDeviceGetHandleByIndex(int(v))
            if v.isdigit()
            else pynvml.nvmlDeviceGetHandleByUUID(v)
            for v in names
        ]
        return [pynvml.nvmlDeviceGetMemoryInfo(h).free for h in handles]
    except Exception:  # noqa: BLE001 - NVML missing or not matching
        return None


def _pick_gpu(n, free=None, pid=None):
    """A GPU for this process: among those with nearly the most free memory
    (all of them without NVML), one by process id. Search workers start
    together and read the same free memory; consecutive worker pids then land
    on different GPUs instead of all on the emptiest one."""
    pid = os.getpid() if pid is None else pid
    if free is None or len(free) != n:
        candidates = np.arange(n)
    else:
        free = np.asarray(free, dtype=float)
        candidates = np.flatnonzero(free >= 0.9 * free.max())
    return int(candidates[pid % len(candidates)])


def _device_known(device):
    try:
        torch.device(device)
    except (RuntimeError, ValueError):
        return False
    return True


def resolve_device(device):
    """'auto' is CUDA when present (respecting CUDA_VISIBLE_DEVICES), else CPU.

    With several visible GPUs, 'auto' picks one per process (see
    :func:`_pick_gpu`), so parallel search workers spread over the GPUs.
    """
    if device is None or device == "auto":
        if not torch.cuda.is_available():
            return "cpu"
        n = torch.cuda.device_count()
        return "cuda" if n == 1 else f"cuda:{_pick_gpu(n, _gpu_free_memory(n))}"
    if isinstance(device, torch.device):
        device = str(device)
    if not isinstance(device, str):
        raise TypeError(
            f"device must be a string like 'cpu', 'cuda' or 'auto'; got {device!r}."
        )
    if not _device_known(device):
        raise ValueError(
            f"device={device!r} is not a device torch knows; use 'auto', 'cpu', "
            "'cuda' or 'cuda:N'."
        )
    if gpu_missing(device):
        raise ValueError(
            f"device={device!r} was requested but CUDA is not available; use 'auto' or 'cpu'."
        )
    kind = torch.device(device).type
    if kind == "cuda":
        index = torch.device(device).index
        if index is not None and index >= torch.cuda.device_count():
            raise ValueError(
                f"device={device!r} was requested but only "
                f"{torch.cuda.device_count()} CUDA device(s) are visible."
            )
    elif kind == "mps":
        if not torch.backends.mps.is_available():
            raise ValueError(
                "device='mps' was requested but MPS is not available; use 'auto' or 'cpu'."
            )
    elif kind != "cpu":
        raise ValueError(
            f"device={device!r} is not supported; use 'auto', 'cpu', 'cuda' or 'mps'."
        )
    return device


def gpu_missing(device):
    """True when ``device`` names CUDA and this machine has none: a model
    fitted on a GPU and unpickled or loaded elsewhere then runs on the CPU."""
    return (
        isinstance(device, str)
        and device.startswith("cuda")
        and not torch.cuda.is_available()
    )


PRECISIONS = ("auto", "32", "bf16", "fp16")
_FLUSH_BYTES = 256 << 20


def resolve_precision(precision, device, *, strict=True):
    """Map the ``precision`` parameter to an autocast dtype (or None = float32).

    ``strict=False`` is for models loaded where their GPU is missing: fp16
    (CUDA-only here) falls back to float32 instead of raising.
    """
    if precision in ("32", 32, "fp32", "float32", None):
        return None
    is_cuda = device.startswith("cuda")
    if precision == "auto":
        if not is_cuda:
            return None
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if precision in ("bf16", "bfloat16"):
        return torch.bfloat16
    if precision in ("fp16", "16", 16, "float16"):
        if not is_cuda:
            if not strict:
                return None
            raise ValueError(
                "precision='fp16' needs a CUDA device; use 'bf16' or '32' on CPU."
            )
        return torch.float16
    raise ValueError(f"precision must be one of {list(PRECISIONS)}; got {precision!r}.")


def autocast(device, amp_dtype):
    """Mixed precision on ``device`` with ``amp_dtype`` (no-op for None)."""
    if amp_dtype is None:
        return contextlib.nullcontext()
    device_type = "cuda" if str(device).startswith("cuda") else "cpu"
    return torch.autocast(device_type=device_type, dtype=amp_dtype)


_PROBE_S = 0.02  # how long the idle cores are watched
_PROBE_KEEP_S = 2.0  # a reading is reused this long (loops of small fits)
_last_probe = [0.0, None]


def _cpu_ticks():
    """(busy, total) jiffies of all CPUs from /proc/stat (Linux)."""
    with open("/proc/stat") as f:
        values = [int(v) for v in f.readline().split()[1:]]
    idle = values[3] + (values[4] if len(values) > 4 else 0)  # idle + iowait
    return sum(values) - idle, sum(values)


def _cores_busy_elsewhere():
    """Cores other processes keep busy, watched for ``_PROBE_S`` while this
    process waits (its own CPU time in that window is subtracted)."""
    now = time.monotonic()
    if now - _last_probe[0] < _PROBE_KEEP_S:
        return _last_probe[1]
    try:
        busy0, total0 = _cpu_ticks()
        own0 = time.process_time()
        time.sleep(_PROBE_S)
        busy1, total1 = _cpu_ticks()
        own = time.process_time() - own0
    except (OSError, ValueError, IndexError):
        busy = None
    else:
        ticks = max(1, total1 - total0)
        cores = os.cpu_count() or 1
        busy = max(0.0, (busy1 - busy0) / ticks * cores - own / _PROBE_S)
    _last_probe[:] = [now, busy]
    return busy


# A bound on num_threads: far above any machine's cores, far below the
# counts at which the OpenMP runtime aborts the process (10**6 did).
MAX_THREADS = 1024


def usable_cores():
    """The CPU cores this process may run on (its affinity, else all)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def fit_threads(num_threads):
    """The intra-op thread count of a fit: an int as given, at most the
    usable cores (the estimator warns at fit); "auto": the process's limit
    (``torch.get_num_threads()``, which joblib / loky workers and
    OMP_NUM_THREADS lower) minus the cores other processes keep busy, at
    least 1; None: leave torch as it is."""
    if num_threads is None:
        return None
    if num_threads != "auto":
        return min(int(num_threads), usable_cores())
    limit = torch.get_num_threads()
    busy = _cores_busy_elsewhere() if limit > 1 else None
    if busy is None:
        return limit
    free = (os.cpu_count() or limit) - busy
    return max(1, min(limit, int(free + 0.5)))


# glibc's malloc, as a whole-process job on the CPU wants it (mallopt
# parameters): blocks up to this size from the heap, not mmap, and freed
# memory kept for the next batch instead of given back to the system.
_MMAP_THRESHOLD = 256 << 20
_TRIM_THRESHOLD = 512 << 20
_TOP_PAD = 64 << 20


def keep_freed_memory():
    """Let glibc's malloc keep the memory torch frees for the next batch.

    By default a block over 32 MB (a batch's activations at 64 px, 256
    images) is mmapped and unmapped each time, and the top of the heap is
    trimmed: the next batch page-faults its memory in again. With one torch
    thread, EfficientNet-Lite0 features of 4,800 digits at 64 px took 0.60x
    the time (system CPU 4.6 -> 0.5 s, peak memory 1,145 -> 1,387 MB) and
    predicting them through a fine-tuned Lite0 0.77x; training a CNN the
    same (benchmarks/bench_allocator.py). A whole-process setting: the
    comparison calls it in its process and its lanes, an estimator never
    does.
    Returns whether the settings took (glibc only; elsewhere nothing)."""
    import ctypes
    import ctypes.util

    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError, TypeError):
        return False  # not glibc (macOS, musl, Windows)
    m_trim_threshold, m_top_pad, m_mmap_threshold = -1, -2, -3
    # the threshold first: fixing the trim threshold alone also fixes the
    # mmap threshold at 128 KB (every batch mmapped: twice as slow)
    if mallopt(m_mmap_threshold, _MMAP_THRESHOLD) != 1:
        return False
    return bool(
        mallopt(m_trim_threshold, _TRIM_THRESHOLD) and mallopt(m_top_pad, _TOP_PAD)
    )


@contextlib.contextmanager
def intra_op_threads(num_threads):
    """torch's intra-op threads set for a fit (or a prediction), restored
    afterwards. With two threads on a 2-core machine where another process
    keeps one core busy, a digits fit took 3-4x as long as with one."""
    n = fit_threads(num_threads)
    before = torch.get_num_threads()
    if n is None or n == before:
        yield
        return
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def cudnn_benchmark(device):
    """cudnn's autotuner for the duration of a CUDA fit, restored afterwards."""
    if not str(device).startswith("cuda"):
        return contextlib.nullcontext()
    return torch.backends.cudnn.flags(
        enabled=torch.backends.cudnn.enabled,
        benchmark=True,
        deterministic=torch.backends.cudnn.deterministic,
        allow_tf32=torch.backends.cudnn.allow_tf32,
    )


@contextlib.contextmanager
def eval_mode(module):
    """Evaluation mode inside the block; the module's own mode restored after."""
    was_training = module.training
    module.eval()
    try:
        yield module
    finally:
        module.train(was_training)


def infer_batches(module, batches, *, device, amp_dtype=None, progress=None):
    """Outputs of ``module`` over ``batches``, eval mode, no autograd.

    Outputs stay on the device and are copied to the host in few large
    pieces (one synchronisation per piece instead of one per batch); a piece
    is flushed once it holds ``_FLUSH_BYTES``, so wide features never fill
    the GPU. ``progress`` wraps the iterable (e.g. a tqdm bar).
    """
    done, pending, pending_bytes = [], [], 0
    batches = progress(batches) if progress is not None else batches
    with eval_mode(module), torch.inference_mode(), autocast(device, amp_dtype):
        for xb in batches:
            out = module(xb).float()
            pending.append(out)
            pending_bytes += out.element_size() * out.nelement()
            if pending_bytes >= _FLUSH_BYTES:
                done.append(torch.cat(pending).cpu())
                pending, pending_bytes = [], 0
    if pending:
        done.append(torch.cat(pending).cpu())
    return torch.cat(done).numpy()
