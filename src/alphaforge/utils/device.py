"""The device / precision / distributed seam: the one place that knows CUDA, MPS, AMP and DDP.

Models and :func:`alphaforge.models.training.fit_torch` ask this module which device to use, which
autocast dtype, whether a ``GradScaler`` is needed and whether they run under ``torchrun``; nothing
else in alphaforge reads ``torch.cuda`` or the distributed environment directly. That keeps a later
move to Lightning Fabric (or another launcher) a change to one file.

- Device: ``auto`` picks ``cuda`` (``cuda:LOCAL_RANK`` under torchrun), then ``mps``, then ``cpu``.
- Precision: ``auto`` picks bf16 autocast on CUDA that supports it, fp16 + ``GradScaler`` on older
  CUDA, and plain fp32 on CPU/MPS. ``None`` always means fp32 (no autocast).
- Distributed: ``torchrun`` sets ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR/PORT``;
  :func:`init_distributed` joins the process group from them (nccl on CUDA, gloo on CPU).
- Attention kernels: :func:`sdpa_context` picks the SDPA backends (flash, memory-efficient,
  cuDNN, math) of one attention call from the model's ``attention_backend``, the device, dtype
  and shape (:func:`choose_sdpa_backends`); models ask it instead of reading ``torch.backends``.
- Compilation: :func:`compile_module` applies a ``compile`` setting (``none``, ``default``,
  ``reduce-overhead``, ``max-autotune``; booleans of older configs still work) with a
  persistent inductor cache (``ALPHAFORGE_COMPILE_CACHE``, default ``~/.cache/alphaforge/
  inductor``).
- Measuring: :func:`synchronize`, :func:`reset_peak_memory`, :func:`peak_flops` for MFU.
"""

from __future__ import annotations

import contextlib
import logging
import os
import random
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

from alphaforge.errors import ConfigError

logger = logging.getLogger(__name__)

_PRECISIONS = {"auto", "fp32", "bf16", "fp16"}


def _env_int(name: str, default: int) -> int:
    """An integer torchrun environment variable, or ``default`` when unset."""
    value = os.environ.get(name)
    return int(value) if value not in (None, "") else default


def is_distributed() -> bool:
    """Whether a ``torch.distributed`` process group is initialised with more than one process."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank() -> int:
    """Global rank of this process (0 outside a process group)."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank()
    return 0


def world_size() -> int:
    """Number of processes in the group (1 outside a process group)."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_world_size()
    return 1


def local_rank() -> int:
    """Rank of this process on its machine (``LOCAL_RANK`` from torchrun, else 0)."""
    return _env_int("LOCAL_RANK", 0)


def is_main_process() -> bool:
    """True on rank 0, the only rank that writes files and logs progress."""
    return rank() == 0


def resolve_device(name: str = "auto") -> torch.device:
    """Turn a device name into a ``torch.device``, checking that it exists.

    Args:
        name: ``"auto"``, ``"cpu"``, ``"cuda"``, ``"cuda:N"`` or ``"mps"``. ``"auto"`` and
            ``"cuda"`` map to ``cuda:LOCAL_RANK``, so each torchrun process gets its own GPU.

    Returns:
        The device to put the model and batches on.

    Raises:
        ConfigError: unknown name, or the requested accelerator is not available.
    """
    name = name.strip().lower()
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", local_rank() % torch.cuda.device_count())
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(name)
    except RuntimeError as exc:
        raise ConfigError(f"device: expected auto|cpu|cuda|cuda:N|mps, got {name!r}") from exc
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(f"device: {name!r} requested but CUDA is not available")
        index = local_rank() if device.index is None else device.index
        if index >= torch.cuda.device_count():
            raise ConfigError(
                f"device: {name!r} (index {index}) but only {torch.cuda.device_count()} GPU(s)"
            )
        return torch.device("cuda", index)
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise ConfigError(f"device: {name!r} requested but MPS is not available")
    if device.type not in {"cpu", "cuda", "mps"}:
        raise ConfigError(f"device: expected auto|cpu|cuda|cuda:N|mps, got {name!r}")
    return device


def resolve_precision(device: torch.device, name: str = "auto") -> torch.dtype | None:
    """Pick the autocast dtype for ``device``.

    Args:
        device: Where the model runs.
        name: ``"auto"``, ``"fp32"``, ``"bf16"`` or ``"fp16"``.

    Returns:
        ``torch.bfloat16`` or ``torch.float16`` for mixed precision, ``None`` for plain fp32.

    Raises:
        ConfigError: unknown name, bf16 on a GPU without bf16, or fp16 off CUDA (fp16 without a
            ``GradScaler`` underflows silently, and the scaler is CUDA-only here).
    """
    name = name.strip().lower()
    if name not in _PRECISIONS:
        raise ConfigError(f"precision: expected one of {sorted(_PRECISIONS)}, got {name!r}")
    cuda = device.type == "cuda"
    bf16_ok = (not cuda) or torch.cuda.is_bf16_supported()
    if name == "auto":
        if not cuda:
            return None  # CPU/MPS autocast is rarely faster for small nets and costs accuracy
        return torch.bfloat16 if bf16_ok else torch.float16
    if name == "fp32":
        return None
    if name == "bf16":
        if not bf16_ok:
            raise ConfigError(f"precision: bf16 requested but {device} does not support it")
        return torch.bfloat16
    if not cuda:
        raise ConfigError(f"precision: fp16 needs a CUDA device, got {device}; use bf16 or fp32")
    return torch.float16


def autocast(
    device: torch.device, dtype: torch.dtype | None
) -> contextlib.AbstractContextManager[Any]:
    """Autocast context for ``device`` in ``dtype``; a no-op context when ``dtype`` is ``None``."""
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


def needs_grad_scaler(device: torch.device, dtype: torch.dtype | None) -> bool:
    """Whether training in ``dtype`` on ``device`` needs loss scaling (fp16 on CUDA only)."""
    return device.type == "cuda" and dtype == torch.float16


def init_distributed(backend: str | None = None) -> bool:
    """Join the torchrun process group described by the environment, if there is one.

    Reads ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR`` and ``MASTER_PORT`` (set by
    ``torchrun`` or by hand). Does nothing when ``WORLD_SIZE`` is unset or 1, or when the group is
    already initialised. On CUDA, also binds this process to ``cuda:LOCAL_RANK``.

    Args:
        backend: ``"nccl"``, ``"gloo"``, or ``None`` for nccl when CUDA is available, else gloo.

    Returns:
        True when this call (or an earlier one) set up a group of more than one process.
    """
    if dist.is_initialized():
        return is_distributed()
    if _env_int("WORLD_SIZE", 1) <= 1:
        return False
    if not dist.is_available():
        raise ConfigError("WORLD_SIZE > 1 but this torch build has no torch.distributed")
    if backend is None:
        backend = "nccl" if torch.cuda.is_available() else "gloo"
    if backend == "nccl":
        torch.cuda.set_device(local_rank())  # one GPU per process, before the group exists
    dist.init_process_group(
        backend=backend, rank=_env_int("RANK", 0), world_size=_env_int("WORLD_SIZE", 1)
    )
    logger.info("joined process group: rank %d of %d (%s)", rank(), world_size(), backend)
    return is_distributed()


@contextlib.contextmanager
def distributed_context(backend: str | None = None) -> Iterator[bool]:
    """Join the torchrun group for the duration of the block and leave it afterwards.

    Use in launcher scripts: ``with distributed_context(): fit_torch(...)``. A no-op outside
    torchrun. Only destroys the group if this call created it.

    Args:
        backend: As in :func:`init_distributed`.

    Yields:
        Whether more than one process is training.
    """
    created = not dist.is_initialized()
    active = init_distributed(backend)
    try:
        yield active
        if created and active:
            dist.barrier()  # no rank tears the group down while another still talks through it
    finally:
        if created and dist.is_initialized():
            dist.destroy_process_group()


def wrap_ddp(model: nn.Module, device: torch.device) -> nn.Module:
    """Wrap ``model`` (already on ``device``) in ``DistributedDataParallel`` when distributed.

    DDP broadcasts rank 0's weights at construction, so every rank starts identical, and averages
    gradients across ranks during ``backward``. Returns ``model`` unchanged outside a group.
    """
    if not is_distributed():
        return model
    from torch.nn.parallel import DistributedDataParallel

    device_ids = [device.index] if device.type == "cuda" else None
    return DistributedDataParallel(model, device_ids=device_ids)


def all_reduce_sum(tensor: torch.Tensor) -> torch.Tensor:
    """Sum ``tensor`` over all ranks in place (no-op outside a group); returns it."""
    if is_distributed():
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor


def all_reduce_min(tensor: torch.Tensor) -> torch.Tensor:
    """Minimum of ``tensor`` over all ranks in place (no-op outside a group); returns it."""
    if is_distributed():
        dist.all_reduce(tensor, op=dist.ReduceOp.MIN)
    return tensor


def all_gather_object(obj: Any) -> list[Any]:
    """Gather one picklable object per rank onto every rank (``[obj]`` outside a group).

    In-memory only: used to collect per-rank RNG states before rank 0 writes a checkpoint.
    """
    if not is_distributed():
        return [obj]
    out: list[Any] = [None] * world_size()
    dist.all_gather_object(out, obj)
    return out


def barrier() -> None:
    """Wait for every rank (no-op outside a group)."""
    if is_distributed():
        dist.barrier()


@contextlib.contextmanager
def cudnn_benchmark(device: torch.device, enabled: bool) -> Iterator[None]:
    """Turn on cuDNN autotuning for the block when on CUDA (fixed batch shapes), then restore it.

    With ``drop_last`` every training batch has the same shape, so cuDNN can pick (and cache) its
    fastest kernels, persistent RNN kernels included. A no-op off CUDA or when not ``enabled``.
    """
    if device.type != "cuda" or not enabled:
        yield
        return
    previous = torch.backends.cudnn.benchmark
    torch.backends.cudnn.benchmark = True
    try:
        yield
    finally:
        torch.backends.cudnn.benchmark = previous


def rng_devices(device: torch.device | None) -> list[int]:
    """CUDA device indices whose RNG state ``torch.random.fork_rng`` must save for ``device``.

    Args:
        device: Where the seeded work runs; ``None`` or a non-CUDA device: none.

    Returns:
        ``[index]`` of a CUDA device (the current one when it has no index), else ``[]``.
    """
    if device is None or device.type != "cuda":
        return []
    return [device.index if device.index is not None else torch.cuda.current_device()]


@contextlib.contextmanager
def seeded(seed: int, device: torch.device | None = None) -> Iterator[None]:
    """Run the block with the global torch RNG seeded with ``seed``; restore it on exit.

    Weight init and dropout draw from the global generators; forking them keeps the caller's
    random state untouched, so the same seed gives the same weights whatever ran before.

    Args:
        seed: Seed for ``torch.manual_seed`` inside the block.
        device: The CUDA device whose generator is restored too; ``None``: CPU only.
    """
    with torch.random.fork_rng(devices=rng_devices(device)):
        torch.manual_seed(seed)
        yield


def rng_state(device: torch.device) -> dict[str, Any]:
    """Snapshot every global RNG a training step may draw from, for exact resume.

    Covers torch CPU (dropout on CPU), the CUDA generator of ``device`` (dropout on GPU), NumPy's
    and Python's global generators. Only tensors and plain containers, so a checkpoint holding it
    loads with ``torch.load(weights_only=True)``. (MPS generators are not captured.)

    Args:
        device: The training device.

    Returns:
        ``{"torch", "cuda", "numpy", "python"}`` states; restore with :func:`set_rng_state`.
    """
    _, keys, pos, has_gauss, cached = np.random.get_state()
    version, internal, gauss_next = random.getstate()
    return {
        "torch": torch.get_rng_state(),  # dropout on CPU
        "cuda": torch.cuda.get_rng_state(device) if device.type == "cuda" else None,
        "numpy": {
            "keys": torch.from_numpy(np.asarray(keys, dtype=np.int64)),  # (624,) MT19937 words
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "cached_gaussian": float(cached),
        },
        "python": {"version": version, "state": list(internal), "gauss_next": gauss_next},
    }


def set_rng_state(state: dict[str, Any], device: torch.device) -> None:
    """Inverse of :func:`rng_state`."""
    torch.set_rng_state(state["torch"])
    if device.type == "cuda" and state["cuda"] is not None:
        torch.cuda.set_rng_state(state["cuda"], device)
    npst = state["numpy"]
    np.random.set_state(
        (
            "MT19937",
            npst["keys"].numpy().astype(np.uint32),
            npst["pos"],
            npst["has_gauss"],
            npst["cached_gaussian"],
        )
    )
    py = state["python"]
    random.setstate((py["version"], tuple(py["state"]), py["gauss_next"]))


# ============================================================================ attention backends
ATTENTION_BACKENDS = ("auto", "flash", "efficient", "cudnn", "math")
_SDPA_NAMES = {
    "flash": "FLASH_ATTENTION",
    "efficient": "EFFICIENT_ATTENTION",
    "cudnn": "CUDNN_ATTENTION",
    "math": "MATH",
}


def check_attention_backend(name: str) -> str:
    """``name`` if it is one of :data:`ATTENTION_BACKENDS`.

    Raises:
        ConfigError: any other value.
    """
    if name not in ATTENTION_BACKENDS:
        raise ConfigError(
            f"attention_backend: expected one of {', '.join(ATTENTION_BACKENDS)}, got {name!r}"
        )
    return name


def choose_sdpa_backends(
    device_type: str,
    dtype: torch.dtype,
    backend: str = "auto",
    *,
    head_dim: int,
    masked: bool = False,
    varying_keys: bool = False,
) -> tuple[str, ...] | None:
    """The SDPA kernels an attention call may use, best first; ``None``: torch's own choice.

    The rules, by device, dtype and shape:

    - CPU and MPS: ``auto`` (and a kernel the device lacks: ``efficient``, ``cudnn``) leave the
      choice to torch, so CPU results are those of a plain ``scaled_dot_product_attention``;
      ``flash`` allows torch's CPU flash kernel and math, ``math`` math only.
    - CUDA ``auto``: flash for fp16/bf16 without a mask and a head dim that is a multiple of 8
      up to 256, then memory-efficient, then math. cuDNN is never chosen by ``auto``: it builds
      (and caches) a graph for every new shape, ~10 ms of CPU each, which decoding and
      variable-length calls would pay at every step.
    - CUDA ``cudnn``: cuDNN then math for fixed shapes; calls whose key length changes from call
      to call (``varying_keys``: KV-cache decoding, prompts of different lengths) get ``auto``'s
      kernels instead.
    - CUDA ``flash`` / ``efficient``: that kernel, then math where it cannot run (e.g. flash in
      fp32 or with a mask). ``math``: math only.

    Args:
        device_type: ``"cuda"``, ``"cpu"`` or ``"mps"``.
        dtype: dtype of the queries (the autocast dtype under autocast).
        backend: One of :data:`ATTENTION_BACKENDS`.
        head_dim: Size of one head.
        masked: The call passes an ``attn_mask`` (padding, a cached prefix).
        varying_keys: The key length changes between calls.

    Returns:
        Names among ``flash, efficient, cudnn, math``, or ``None``.

    Raises:
        ConfigError: unknown ``backend``.
    """
    check_attention_backend(backend)
    if device_type != "cuda":
        if backend == "math":
            return ("math",)
        return ("flash", "math") if backend == "flash" and device_type == "cpu" else None
    half = dtype in (torch.float16, torch.bfloat16)
    flash_ok = half and not masked and head_dim % 8 == 0 and head_dim <= 256
    if backend == "cudnn" and varying_keys:
        backend = "auto"
    if backend == "auto":
        return ("flash", "efficient", "math") if flash_ok else ("efficient", "math")
    if backend == "math":
        return ("math",)
    if backend == "flash" and not flash_ok:
        return ("math",)
    return (backend, "math")


def _sdpa_kernel(names: tuple[str, ...]) -> contextlib.AbstractContextManager[Any]:
    """``torch.nn.attention.sdpa_kernel`` over ``names``, in that priority where supported."""
    from torch.nn.attention import SDPBackend, sdpa_kernel

    backends = [getattr(SDPBackend, _SDPA_NAMES[n]) for n in names]
    try:  # torch >= 2.6: the list order is the priority
        return sdpa_kernel(backends, set_priority=True)
    except TypeError:
        return sdpa_kernel(backends)


def sdpa_backend_context(
    device: torch.device, dtype: torch.dtype, backend: str = "auto", **shape: Any
) -> contextlib.AbstractContextManager[Any]:
    """Context in which attention calls on ``device`` in ``dtype`` use the chosen kernels.

    Args:
        device: Where the attention runs.
        dtype: dtype of the queries (the autocast dtype under autocast).
        backend: One of :data:`ATTENTION_BACKENDS` (the model's ``attention_backend``).
        **shape: ``head_dim``, ``masked``, ``varying_keys`` of :func:`choose_sdpa_backends`.

    Returns:
        A context manager; a no-op where torch's own choice stands (CPU ``auto``).
    """
    names = choose_sdpa_backends(device.type, dtype, backend, **shape)
    return contextlib.nullcontext() if names is None else _sdpa_kernel(names)


def sdpa_context(
    q: torch.Tensor, backend: str = "auto", *, masked: bool = False, varying_keys: bool = False
) -> contextlib.AbstractContextManager[Any]:
    """:func:`sdpa_backend_context` for the queries ``q`` ``(..., T, head_dim)`` of one call:
    their device, dtype and head dim decide."""
    return sdpa_backend_context(
        q.device,
        q.dtype,
        backend,
        head_dim=q.shape[-1],
        masked=masked,
        varying_keys=varying_keys,
    )


def autocast_dtype(device: torch.device) -> torch.dtype | None:
    """The autocast dtype active for ``device``'s type in this thread, or ``None`` when off."""
    try:  # torch >= 2.4
        if not torch.is_autocast_enabled(device.type):
            return None
        return torch.get_autocast_dtype(device.type)
    except (TypeError, AttributeError):  # older signatures: CUDA only
        return torch.get_autocast_gpu_dtype() if torch.is_autocast_enabled() else None


def full_precision(device: torch.device) -> contextlib.AbstractContextManager[Any]:
    """Autocast switched off for the block (inputs must then be cast to fp32 by the caller)."""
    return torch.autocast(device_type=device.type, enabled=False)


# ============================================================================ torch.compile
COMPILE_MODES = ("none", "default", "reduce-overhead", "max-autotune")


def resolve_compile_mode(value: bool | str | None) -> str | None:
    """``torch.compile`` mode of a ``compile`` setting; ``None``: do not compile.

    Args:
        value: ``False`` / ``None`` / ``"none"`` (off), ``True`` (``"default"``, the old boolean
            form), ``"default"``, ``"reduce-overhead"`` (CUDA graphs on CUDA) or
            ``"max-autotune"``.

    Raises:
        ConfigError: any other value.
    """
    if value is None or value is False:
        return None
    if value is True:
        return "default"
    if isinstance(value, str) and value in COMPILE_MODES:
        return None if value == "none" else value
    raise ConfigError(
        f"compile: expected true, false or one of {', '.join(COMPILE_MODES)}, got {value!r}"
    )


def user_cache_dir() -> Path:
    """alphaforge's folder in the user's cache directory (platform convention)."""
    home = Path.home()
    if sys.platform == "win32":
        base = Path(os.environ.get("LOCALAPPDATA") or home / "AppData" / "Local")
        return base / "alphaforge" / "Cache"
    if sys.platform == "darwin":
        return home / "Library" / "Caches" / "alphaforge"
    return Path(os.environ.get("XDG_CACHE_HOME") or home / ".cache") / "alphaforge"


def compile_cache_dir() -> Path:
    """Where compiled kernels persist between runs: ``$ALPHAFORGE_COMPILE_CACHE``, else
    ``<user cache dir>/inductor`` (``~/.cache/alphaforge/inductor`` on Linux)."""
    env = os.environ.get("ALPHAFORGE_COMPILE_CACHE")
    return Path(env).expanduser() if env else user_cache_dir() / "inductor"


def enable_compile_cache() -> Path:
    """Point inductor's on-disk caches at :func:`compile_cache_dir`, so a second run starts warm.

    Sets ``TORCHINDUCTOR_CACHE_DIR`` (read by inductor at each compile; set
    ``ALPHAFORGE_COMPILE_CACHE`` to choose another folder) and turns inductor's FX graph cache
    on. Called by :func:`compile_module` before compiling; never at import.

    Returns:
        The cache folder (created).
    """
    path = compile_cache_dir()
    path.mkdir(parents=True, exist_ok=True)
    os.environ["TORCHINDUCTOR_CACHE_DIR"] = str(path)
    try:
        import torch._inductor.config as inductor_config

        inductor_config.fx_graph_cache = True
    except (ImportError, AttributeError):  # a build without inductor: dynamo backends only
        pass
    return path


def compile_module(module: Any, mode: bool | str | None, *, dynamic: bool = False) -> Any:
    """``torch.compile(module)`` in ``mode`` with the persistent cache; ``module`` when off.

    ``dynamic=False``: one graph per input shape; callers keep shapes fixed (training drops the
    last partial batch, inference pads it). A new net of the same shapes, e.g. the next fold's,
    reuses dynamo's graph (parameters are graph inputs) and inductor's cached kernels.
    ``ALPHAFORGE_COMPILE_BACKEND`` picks another ``torch.compile`` backend (default ``inductor``;
    ``eager`` only traces, for tests and debugging).

    Args:
        module: An ``nn.Module`` or function.
        mode: As in :func:`resolve_compile_mode`.
        dynamic: Passed to ``torch.compile``.

    Returns:
        The compiled module, or ``module`` unchanged when ``mode`` is off.
    """
    resolved = resolve_compile_mode(mode)
    if resolved is None:
        return module
    enable_compile_cache()
    backend = os.environ.get("ALPHAFORGE_COMPILE_BACKEND", "inductor")
    kwargs: dict[str, Any] = {"dynamic": dynamic, "backend": backend}
    if backend == "inductor" and resolved != "default":
        kwargs["mode"] = resolved
    return torch.compile(module, **kwargs)


def mark_compiled_step(mode: bool | str | None) -> None:
    """Tell CUDA-graph trees (``reduce-overhead``) that a new training step begins."""
    if resolve_compile_mode(mode) == "reduce-overhead" and hasattr(torch, "compiler"):
        mark = getattr(torch.compiler, "cudagraph_mark_step_begin", None)
        if mark is not None:
            mark()


# ============================================================================ measuring
def synchronize(device: torch.device) -> None:
    """Wait for the device's queued work (CUDA); a no-op elsewhere."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def reset_peak_memory(device: torch.device) -> None:
    """Reset CUDA's peak-memory counter of ``device``; a no-op off CUDA.

    Initialises CUDA first: resetting before the first allocation on a device raises "Invalid
    device argument".
    """
    if device.type != "cuda":
        return
    torch.cuda.init()
    torch.empty(0, device=device)  # creates the device's context and allocator
    torch.cuda.reset_peak_memory_stats(device)


def peak_memory_mib(device: torch.device) -> float:
    """CUDA ``max_memory_allocated`` of ``device`` in MiB; NaN off CUDA."""
    if device.type != "cuda":
        return float("nan")
    return torch.cuda.max_memory_allocated(device) / 2**20


# dense peak TFLOP/s by GPU name: (bf16/fp16, tf32, fp32), without sparsity
_PEAK_TFLOPS = {
    "H100 PCIe": (756.0, 378.0, 51.0),
    "H200": (989.0, 494.0, 67.0),
    "H100": (989.0, 494.0, 67.0),  # SXM
    "A100": (312.0, 156.0, 19.5),
    "L40S": (362.0, 183.0, 91.6),
    "A10G": (70.0, 35.0, 31.2),
    "L4": (121.0, 60.0, 30.3),
}


def peak_flops(device: torch.device, dtype: torch.dtype | None) -> float | None:
    """Dense peak FLOP/s of ``device`` for matmuls in ``dtype``, the denominator of MFU.

    fp16/bf16 use the tensor-core peak; fp32 the TF32 peak when torch allows TF32 matmuls, else
    the plain fp32 peak.

    Returns:
        FLOP/s, or ``None`` off CUDA or for a GPU not in the table.
    """
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    peaks = next((v for k, v in _PEAK_TFLOPS.items() if k in name), None)
    if peaks is None:
        return None
    if dtype in (torch.float16, torch.bfloat16):
        return 1e12 * peaks[0]
    return 1e12 * (peaks[1] if torch.backends.cuda.matmul.allow_tf32 else peaks[2])


def cuda_graphs_supported(device: torch.device) -> bool:
    """Whether one-step CUDA graph capture can be used on ``device`` (CUDA only)."""
    return device.type == "cuda" and hasattr(torch.cuda, "CUDAGraph")
