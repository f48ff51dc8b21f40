"""fit_torch: the ONE training loop every torch model in alphaforge goes through.

- AdamW, no weight decay on biases / norm weights / any 1-D parameter (nanoGPT's rule)
- lr schedules stepped per optimizer step: linear warmup + cosine decay (``LambdaLR``), OneCycleLR,
  or constant
- gradient clipping (after ``GradScaler.unscale_``), autocast in bf16/fp16 from ``utils/device.py``
- NaN/inf guard: a step whose loss or gradient norm is non-finite is skipped, and
  ``max_bad_steps`` consecutive skips abort with :class:`TrainingError`
- early stopping on the (sample-weighted) valid loss, or on a caller's valid metric (higher is
  better, e.g. the valid window's Rank IC), best weights restored on return
- ``last.pt`` / ``best.pt`` checkpoints (``torch.load(weights_only=True)``-safe, written atomically
  with a SHA-256 trailer) and exact resume: stop after k steps, resume in a fresh process, get
  bit-identical weights on CPU; a truncated or altered ``last.pt`` is reported and training
  starts again
- unchanged under ``torchrun``: DDP, per-rank shards of one shared permutation, all-reduced losses

Data never goes through a DataLoader: a :class:`BatchSource` already lives on a device and hands
out batches by index, so a GPU run does no host-to-device copies of features.
"""

from __future__ import annotations

import contextlib
import io
import logging
import math
import os
import pickle
import time
import warnings
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol, runtime_checkable

import numpy as np
import pandas as pd
import torch
from torch import nn

from alphaforge.errors import AlphaforgeError, ConfigError, DataError
from alphaforge.models.base import require
from alphaforge.models.early_stopping import EARLY_STOPPING_METRICS, EarlyStoppingMetric
from alphaforge.utils import device as dev
from alphaforge.utils.integrity import open_blob, seal_blob
from alphaforge.utils.io import atomic_write_bytes

logger = logging.getLogger(__name__)

LossFn = Callable[[nn.Module, dict[str, torch.Tensor]], torch.Tensor]
ExtraLossFn = Callable[[nn.Module, int], torch.Tensor]
ValidMetricFn = Callable[[nn.Module], float]

_CHECKPOINT_FORMAT = 1
# GradScaler starts at 2**16 and halves per overflow: ~17 skips may be calibration, not NaNs.
_SCALER_GRACE = 17


class TrainingError(AlphaforgeError):
    """Training cannot go on: repeated non-finite losses/gradients, or an unusable checkpoint."""


@runtime_checkable
class BatchSource(Protocol):
    """Samples addressable by index, already on a device (features, windows, targets...)."""

    def __len__(self) -> int:
        """Number of samples."""
        ...

    def batch(self, idx: torch.Tensor) -> dict[str, torch.Tensor]:
        """Tensors for samples ``idx`` (1-D LongTensor on :attr:`device`); first axis len(idx)."""
        ...

    @property
    def device(self) -> torch.device:
        """Where the samples (and the indices passed to :meth:`batch`) live."""
        ...


class TensorSource:
    """A :class:`BatchSource` over equally long tensors, e.g. ``{"x": (N, F), "y": (N,)}``.

    Args:
        tensors: Name -> tensor; every tensor's first axis is the sample axis.
        device: Where to keep the tensors (moved once here); ``None`` keeps them where they are.

    Raises:
        ConfigError: no tensors, or first axes of different lengths.
    """

    def __init__(
        self, tensors: Mapping[str, torch.Tensor], device: str | torch.device | None = None
    ) -> None:
        if not tensors:
            raise ConfigError("TensorSource: expected at least one tensor, got none")
        # device None: all on the first tensor's device
        target = torch.device(device) if device is not None else next(iter(tensors.values())).device
        self.tensors = {k: v.to(target) for k, v in tensors.items()}
        lengths = {k: v.shape[0] for k, v in self.tensors.items()}
        if len(set(lengths.values())) != 1:
            raise ConfigError(f"TensorSource: tensors must share their first axis, got {lengths}")
        self._n = next(iter(lengths.values()))
        self._device = next(iter(self.tensors.values())).device

    def __len__(self) -> int:
        return self._n

    @property
    def device(self) -> torch.device:
        """Where the tensors live."""
        return self._device

    def batch(self, idx: torch.Tensor) -> dict[str, torch.Tensor]:
        """Rows ``idx`` of every tensor: ``{"x": (N, F)} -> {"x": (len(idx), F)}``."""
        # index_select: one gather kernel per tensor, no host sync
        return {k: v.index_select(0, idx) for k, v in self.tensors.items()}


@dataclass(frozen=True)
class TrainConfig:
    """How :func:`fit_torch` optimises (what it optimises, net and loss, comes from the caller).

    Attributes:
        max_epochs: Passes over the training samples; also sets the lr schedule's length.
        batch_size: Samples per optimizer step *per process* (global: batch_size * world size).
        lr: Peak learning rate.
        weight_decay: AdamW decoupled weight decay on >= 2-D weights only.
        schedule: ``cosine`` (linear warmup then cosine decay to 0), ``onecycle`` (OneCycleLR with
            ``pct_start=warmup_frac``) or ``constant``.
        warmup_frac: Fraction of all steps spent warming up (cosine / onecycle).
        grad_clip: Max global gradient L2 norm; 0 disables clipping.
        patience: Epochs without a valid-score improvement before stopping; 0 disables.
        min_delta: Improvement must beat the best valid score by more than this.
        device: ``auto|cpu|cuda|cuda:N|mps``.
        precision: ``auto|fp32|bf16|fp16`` (auto: bf16 on CUDA that has it, else fp16 with a
            GradScaler on CUDA, fp32 on CPU/MPS).
        compile: ``torch.compile`` mode of the training forward/backward: ``none``,
            ``default``, ``reduce-overhead`` (CUDA graphs on CUDA) or ``max-autotune``;
            ``True`` / ``False`` mean ``default`` / ``none``. Compiled training keeps one batch
            shape: each epoch's last partial batch is dropped (as with ``drop_last``), so one
            graph serves every step; kernels persist in the compile cache
            (:func:`~alphaforge.utils.device.compile_module`).
        max_bad_steps: Consecutive non-finite steps tolerated before :class:`TrainingError`.
        drop_last: Drop each epoch's last partial batch: fixed shapes (cuDNN autotuning on GPU).
        early_stopping_metric: What early stopping and best-weight selection read: ``loss``
            (the valid loss) or ``rank_ic`` (the valid window's mean per-timestamp Spearman
            correlation of predictions with labels; the forecaster passes it to
            :func:`fit_torch` as ``valid_metric``).
    """

    max_epochs: int = 20
    batch_size: int = 256
    lr: float = 1e-3  # peak AdamW learning rate
    weight_decay: float = 0.01
    schedule: Literal["cosine", "onecycle", "constant"] = "cosine"
    warmup_frac: float = 0.05  # share of steps spent warming the learning rate up
    grad_clip: float = 1.0  # max global grad norm; 0 disables clipping
    patience: int = 5  # epochs without valid improvement before stopping; 0: never stop early
    min_delta: float = 0.0
    device: str = "auto"  # "auto", "cpu", "cuda", "cuda:1", "mps"
    precision: str = "auto"  # "auto", "fp32", "bf16", "fp16"
    # torch.compile mode for training: none|default|reduce-overhead|max-autotune (or a bool)
    compile: bool | Literal["none", "default", "reduce-overhead", "max-autotune"] = False
    max_bad_steps: int = 10
    drop_last: bool = False
    early_stopping_metric: EarlyStoppingMetric = "loss"  # "rank_ic": valid Rank IC, maximised

    def __post_init__(self) -> None:
        require(self.max_epochs >= 1, self, "max_epochs", "an int >= 1")
        require(self.batch_size >= 1, self, "batch_size", "an int >= 1")
        require(self.lr > 0, self, "lr", "> 0")
        require(self.weight_decay >= 0, self, "weight_decay", ">= 0")
        require(
            self.schedule in ("cosine", "onecycle", "constant"),
            self,
            "schedule",
            "one of 'cosine', 'onecycle', 'constant'",
        )
        require(0 <= self.warmup_frac < 1, self, "warmup_frac", "in [0, 1)")
        require(self.grad_clip >= 0, self, "grad_clip", ">= 0 (0: no clipping)")
        require(self.patience >= 0, self, "patience", "an int >= 0 (0: no early stopping)")
        require(self.min_delta >= 0, self, "min_delta", ">= 0")
        require(self.max_bad_steps >= 1, self, "max_bad_steps", "an int >= 1")
        require(
            isinstance(self.compile, bool) or self.compile in dev.COMPILE_MODES,
            self,
            "compile",
            f"true, false or one of {', '.join(map(repr, dev.COMPILE_MODES))}",
        )
        require(
            self.early_stopping_metric in EARLY_STOPPING_METRICS,
            self,
            "early_stopping_metric",
            f"one of {', '.join(map(repr, EARLY_STOPPING_METRICS))}",
        )


@dataclass
class History:
    """What happened during :func:`fit_torch`, one list entry per completed epoch (0-based).

    ``valid_loss`` holds NaN when there was no valid source; ``valid_metric`` the ``valid_metric``
    score of :func:`fit_torch` (higher is better), NaN when none was given; ``lr`` is the rate of
    the epoch's last step; ``best_epoch`` is the epoch whose weights the model holds on return
    (-1 before any epoch).
    """

    train_loss: list[float] = field(default_factory=list)
    valid_loss: list[float] = field(default_factory=list)
    valid_metric: list[float] = field(default_factory=list)
    lr: list[float] = field(default_factory=list)
    epoch_time_s: list[float] = field(default_factory=list)
    best_epoch: int = -1
    steps: int = 0
    stopped_early: bool = False
    skipped_steps: int = 0

    def __post_init__(self) -> None:
        # a checkpoint written before valid_metric was recorded: NaN for its epochs
        self.valid_metric += [math.nan] * (len(self.train_loss) - len(self.valid_metric))

    def to_frame(self) -> pd.DataFrame:
        """Per-epoch table with columns ``epoch, train_loss, valid_loss, valid_metric, lr,
        epoch_time_s``."""
        columns = ("train_loss", "valid_loss", "valid_metric", "lr", "epoch_time_s")
        return pd.DataFrame(
            {"epoch": np.arange(len(self.train_loss)), **{c: getattr(self, c) for c in columns}}
        )


def warmup_cosine(step: int, total_steps: int, warmup_steps: int) -> float:
    """LR multiplier for optimizer step ``step`` (0-based): linear warmup, then cosine to 0.

    Step ``s < warmup_steps`` uses ``(s + 1) / warmup_steps``; later steps follow
    ``0.5 * (1 + cos(pi * (s - warmup_steps) / (total_steps - warmup_steps)))``.
    """
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    progress = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
    return 0.5 * (1.0 + math.cos(math.pi * progress))


def _make_optimizer(
    model: nn.Module, config: TrainConfig, device: torch.device
) -> torch.optim.AdamW:
    """AdamW with two groups: decay on >= 2-D weights (matmuls, embeddings), none on the rest."""
    params = [p for p in model.parameters() if p.requires_grad]
    decay = [p for p in params if p.ndim >= 2]
    no_decay = [p for p in params if p.ndim < 2]  # biases, norm gains, per-feature gates
    groups = [
        {"params": ps, "weight_decay": wd}
        for ps, wd in ((decay, config.weight_decay), (no_decay, 0.0))
        if ps
    ]
    if not groups:
        raise TrainingError("fit_torch: the model has no trainable parameters")
    if device.type == "cuda":
        try:  # fused: one kernel for the whole update
            return torch.optim.AdamW(groups, lr=config.lr, fused=True)
        except (RuntimeError, ValueError, TypeError) as exc:
            logger.info("fused AdamW unavailable (%s); using foreach", exc)
    return torch.optim.AdamW(groups, lr=config.lr)


def _make_scheduler(
    opt: torch.optim.Optimizer, config: TrainConfig, total_steps: int
) -> torch.optim.lr_scheduler.LRScheduler:
    """Per-optimizer-step schedule spanning ``total_steps`` = steps per epoch * max_epochs."""
    if config.schedule == "onecycle":
        pct = config.warmup_frac
        if abs(pct * total_steps - 1.0) < 1e-9:  # OneCycleLR divides by zero on a 1-step ramp
            pct += 0.5 / total_steps
        return torch.optim.lr_scheduler.OneCycleLR(opt, config.lr, total_steps, pct_start=pct)
    if config.schedule == "cosine":
        warmup = round(config.warmup_frac * total_steps)
        return torch.optim.lr_scheduler.LambdaLR(
            opt, lambda s: warmup_cosine(s, total_steps, warmup)
        )
    return torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0)


def _to_device(batch: dict[str, torch.Tensor], device: torch.device) -> dict[str, torch.Tensor]:
    """Move a batch to the model's device when its source lives elsewhere."""
    return {
        k: v if v.device == device else v.to(device, non_blocking=True) for k, v in batch.items()
    }


@dataclass
class _State:
    """Everything besides model/optimizer/scheduler/scaler that exact resume needs."""

    perm_state: torch.Tensor  # permutation generator state at the start of the current epoch
    epoch: int = 0
    step: int = 0  # global optimizer steps taken (skipped ones included)
    step_in_epoch: int = 0
    loss_sum: float = 0.0  # this epoch so far: sum of loss * batch size over finite steps
    loss_count: int = 0
    epoch_elapsed_s: float = 0.0
    bad_run: int = 0  # consecutive non-finite steps
    best_state: dict[str, torch.Tensor] | None = None  # CPU copy of the best weights
    best_score: float = math.inf  # valid loss, or -valid metric: lower is better
    bad_epochs: int = 0  # epochs since the last valid improvement
    history: History = field(default_factory=History)


@dataclass
class _Run:
    """The fixed pieces of one :func:`fit_torch` call, shared by its helpers."""

    model: nn.Module  # the bare module: state dicts, evaluation, extra_loss
    net: nn.Module  # what loss_fn trains through: model, or its DDP / compiled wrapper
    opt: torch.optim.Optimizer
    sched: torch.optim.lr_scheduler.LRScheduler
    scaler: torch.amp.GradScaler | None
    config: TrainConfig
    device: torch.device
    dtype: torch.dtype | None
    loss_fn: LossFn
    extra_loss: ExtraLossFn | None
    valid_metric: ValidMetricFn | None  # higher is better; replaces the valid loss when set
    ckpt_dir: Path | None
    meta: dict[str, Any]  # n_train, steps_per_epoch, world_size: a resumed run must match them
    steps_per_epoch: int  # optimizer steps per epoch on this rank
    n_shard: int  # training samples this rank sees per epoch
    drop_last: bool  # each epoch's last partial batch is dropped (fixed batch shape)


def _share(source: BatchSource) -> tuple[int, int, int]:
    """``(start, stop, step)`` of this rank's samples: rank, len, world size; every sample of a
    ``rank_local`` source, which holds this rank's shards only (``engines.shards``)."""
    local = getattr(source, "rank_local", False)
    return (0, len(source), 1) if local else (dev.rank(), len(source), dev.world_size())


@torch.no_grad()
def _evaluate(run: _Run, source: BatchSource) -> float:
    """Sample-weighted mean of ``loss_fn`` over ``source``, eval mode, all-reduced over ranks."""
    model, loss_fn, device, dtype = run.model, run.loss_fn, run.device, run.dtype
    batch_size = run.config.batch_size
    was_training = model.training
    model.eval()
    # rank r scores samples r, r+W, r+2W...: disjoint shards covering the source once
    idx = torch.arange(*_share(source), device=source.device)
    total = torch.zeros(2, dtype=torch.float64, device=device)  # (sum of loss * n, n)
    for start in range(0, len(idx), batch_size):
        chunk = idx[start : start + batch_size]
        with dev.autocast(device, dtype):
            loss = loss_fn(model, _to_device(source.batch(chunk), device))
        total[0] += loss.detach().double() * len(chunk)
        total[1] += len(chunk)
    dev.all_reduce_sum(total)
    model.train(was_training)
    loss_sum, count = total.tolist()
    return loss_sum / count if count > 0 else float("nan")


def _save(path: Path, payload: dict[str, Any]) -> None:
    """Atomic, checksummed ``torch.save``: the bytes and a SHA-256 trailer go to a temp file in
    the same directory, fsync, ``os.replace``."""
    buf = io.BytesIO()
    torch.save(payload, buf)
    atomic_write_bytes(path, seal_blob(buf.getvalue()))


def _read_checkpoint(path: Path) -> dict[str, Any] | None:
    """``last.pt``'s content; None (with a warning, the file removed) when it is damaged."""
    try:
        payload = open_blob(path.read_bytes(), path, what="checkpoint")
        return torch.load(io.BytesIO(payload), map_location="cpu", weights_only=True)
    except (DataError, OSError, RuntimeError, pickle.UnpicklingError) as exc:
        logger.warning("%s; starting this training again from its first epoch", exc)
        path.unlink(missing_ok=True)
        return None


def _save_last(run: _Run, st: _State) -> None:
    """Write ``last.pt``. Collective: every rank sends its RNG state, then rank 0 writes."""
    rng = dev.all_gather_object(dev.rng_state(run.device))
    if run.ckpt_dir is None or not dev.is_main_process():
        return
    payload = {
        "format": _CHECKPOINT_FORMAT,
        "model": run.model.state_dict(),
        "optimizer": run.opt.state_dict(),
        "scheduler": run.sched.state_dict(),
        "scaler": run.scaler.state_dict() if run.scaler is not None else None,
        **{k: v for k, v in vars(st).items() if k != "history"},
        "history": asdict(st.history),
        "rng": rng,  # one dict per rank
        "config": asdict(run.config),
        **run.meta,
    }
    _save(run.ckpt_dir / "last.pt", payload)


def _load_last(run: _Run, st: _State, ck: dict[str, Any], path: Path) -> None:
    """Restore every piece of state from ``ck`` (read from ``path``, ``last.pt``) for an exact
    continuation."""
    got = {k: ck[k] for k in ("n_train", "steps_per_epoch")}
    want = {k: run.meta[k] for k in got}
    if got != want:
        raise TrainingError(
            f"fit_torch: {path} was written for {got} samples/steps; this run has {want}"
        )
    changed = sorted(k for k, v in asdict(run.config).items() if ck["config"].get(k) != v)
    if changed:
        logger.warning(
            "resuming %s with changed settings %s: not an exact continuation", path, changed
        )
    run.model.load_state_dict(ck["model"])
    run.opt.load_state_dict(ck["optimizer"])  # moves moments onto the parameters' device
    run.sched.load_state_dict(ck["scheduler"])
    if run.scaler is not None and ck["scaler"] is not None:
        run.scaler.load_state_dict(ck["scaler"])
    for key in _State.__dataclass_fields__:
        setattr(st, key, History(**ck[key]) if key == "history" else ck[key])
    dev.set_rng_state(
        ck["rng"][dev.rank() % len(ck["rng"])], run.device
    )  # dropout continues exactly
    logger.info("resumed from %s at epoch %d, step %d", path, st.epoch, st.step)


def _train_step(run: _Run, st: _State, batch: dict[str, torch.Tensor], acc: torch.Tensor) -> float:
    """One optimizer step with the NaN/inf guard; adds ``(loss * n, n)`` to ``acc``; returns lr."""
    cfg, opt, scaler = run.config, run.opt, run.scaler
    n = next(iter(batch.values())).shape[0]
    dev.mark_compiled_step(cfg.compile)  # CUDA-graph trees: the last step's outputs are done
    with dev.autocast(run.device, run.dtype):
        loss = run.loss_fn(run.net, batch)  # () scalar, the reported part
        total = loss + run.extra_loss(run.model, st.step) if run.extra_loss is not None else loss
    total = total.float()
    # always backward, even on a NaN loss: under DDP every rank must join the gradient all-reduce
    if scaler is not None:
        scaler.scale(total).backward()
        scaler.unscale_(opt)  # clip and check the true gradients, not the scaled ones
    else:
        total.backward()
    params = [p for g in opt.param_groups for p in g["params"]]
    norm = torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip or math.inf)  # () global L2 norm
    ok = (torch.isfinite(total.detach()) & torch.isfinite(norm)).float()
    dev.all_reduce_min(ok)  # skip on every rank if any rank saw a non-finite value
    lr = opt.param_groups[0]["lr"]
    if ok.item():  # the one host sync per step
        if scaler is not None:
            scaler.step(opt)  # grads already unscaled and finite: it steps
            scaler.update()
        else:
            opt.step()
        acc[0] += loss.detach().double() * n
        acc[1] += n
        st.bad_run = 0
    else:
        if scaler is not None:
            scaler.update()  # an overflow lowers the loss scale
        st.bad_run += 1
        st.history.skipped_steps += 1
        limit = cfg.max_bad_steps + (_SCALER_GRACE if scaler is not None else 0)
        if st.bad_run >= limit:
            raise TrainingError(
                f"fit_torch: {st.bad_run} consecutive non-finite steps at epoch {st.epoch}, step "
                f"{st.step} (loss {total.item():.4g}, grad norm {norm.item():.4g}); lower lr (now "
                f"{cfg.lr:g}), set grad_clip, use precision='fp32', or check inputs for NaN/inf"
            )
    opt.zero_grad(set_to_none=True)
    with warnings.catch_warnings() if st.bad_run else contextlib.nullcontext():
        # a skipped first step makes torch warn that the scheduler ran before the optimizer
        warnings.filterwarnings("ignore", message=r".*lr_scheduler\.step\(\)")
        run.sched.step()
    st.step += 1
    return lr


@torch.no_grad()
def _score_valid_metric(run: _Run) -> float:
    """``run.valid_metric`` of the bare model in eval mode (every rank computes it itself)."""
    assert run.valid_metric is not None
    was_training = run.model.training
    run.model.eval()
    try:
        return float(run.valid_metric(run.model))
    finally:
        run.model.train(was_training)


def _epoch_score(run: _Run, hist: History) -> float:
    """The last epoch's early-stopping score, lower is better: valid loss or -valid metric."""
    return hist.valid_loss[-1] if run.valid_metric is None else -hist.valid_metric[-1]


def _end_epoch(run: _Run, st: _State, valid: BatchSource | None, lr: float) -> None:
    """Close an epoch: record losses, update best weights and patience, write ``best.pt``."""
    hist, cfg = st.history, run.config
    total = torch.tensor([st.loss_sum, st.loss_count], dtype=torch.float64, device=run.device)
    loss_sum, count = dev.all_reduce_sum(total).tolist()
    hist.train_loss.append(loss_sum / count if count > 0 else math.nan)
    v = math.nan if valid is None else _evaluate(run, valid)
    scored = valid is not None and run.valid_metric is not None
    m = _score_valid_metric(run) if scored else math.nan
    hist.valid_loss.append(v)
    hist.valid_metric.append(m)
    hist.lr.append(lr)
    hist.epoch_time_s.append(st.epoch_elapsed_s)
    if valid is not None:
        score = _epoch_score(run, hist)
        if score < st.best_score - cfg.min_delta:  # NaN never improves
            st.best_score, st.bad_epochs, hist.best_epoch = score, 0, st.epoch
            st.best_state = {
                k: t.detach().to("cpu", copy=True) for k, t in run.model.state_dict().items()
            }
            if run.ckpt_dir is not None and dev.is_main_process():
                best = {"model": st.best_state, "epoch": st.epoch, "step": st.step}
                _save(run.ckpt_dir / "best.pt", {**best, "valid_loss": v, "valid_metric": m})
        else:
            st.bad_epochs += 1
            hist.stopped_early = cfg.patience > 0 and st.bad_epochs >= cfg.patience
    if dev.is_main_process():
        msg = "epoch %d: train %.6g valid %.6g metric %.6g lr %.3g (%.2fs)" + (
            " early stop" * hist.stopped_early
        )
        logger.info(msg, st.epoch, hist.train_loss[-1], v, m, lr, st.epoch_elapsed_s)
    st.epoch += 1
    st.step_in_epoch, st.loss_sum, st.loss_count, st.epoch_elapsed_s = 0, 0.0, 0, 0.0


def fit_torch(
    model: nn.Module,
    train: BatchSource,
    loss_fn: LossFn,
    config: TrainConfig,
    *,
    valid: BatchSource | None = None,
    seed: int = 0,
    checkpoint_dir: str | os.PathLike[str] | None = None,
    resume: bool = False,
    max_steps: int | None = None,
    extra_loss: ExtraLossFn | None = None,
    on_epoch: Callable[[int, float], None] | None = None,
    valid_metric: ValidMetricFn | None = None,
) -> History:
    """Train ``model`` in place on ``train``; early-stop on ``valid``; return the :class:`History`.

    Each epoch draws one permutation of ``train`` from a CPU ``torch.Generator`` seeded with
    ``seed`` and takes consecutive ``batch_size`` slices of it. Under torchrun every rank draws the
    same permutation, keeps ``perm[rank::world_size]`` truncated to ``len(train) // world_size``
    (dropping at most world_size - 1 samples per epoch) and slices its batches from that shard, so
    one DDP step over W ranks sees exactly the samples one process with ``batch_size * W`` would.
    Dropout draws from the global torch RNG, seeded with ``seed + rank`` inside a forked RNG scope:
    the caller's global torch RNG is left as it was.

    Args:
        model: The network. Moved to the configured device; holds the best-valid-score weights
            on return (the last weights when ``valid`` is None or never gave a finite score).
        train: Training samples.
        loss_fn: ``loss_fn(net, batch) -> scalar`` loss. In training ``net`` may be a DDP or
            compiled wrapper of ``model``: call it (``net(x)``) rather than its other methods. Also
            gives the valid loss, on ``model`` in eval mode under ``no_grad``.
        config: Optimisation settings.
        valid: Samples for early stopping and best-weight selection.
        seed: Seeds the batch order and dropout.
        checkpoint_dir: Where rank 0 writes ``last.pt`` (each epoch, and where ``max_steps`` stops
            mid-epoch) and ``best.pt`` (``{"model", "epoch", "step", "valid_loss",
            "valid_metric"}``) when the valid score improves. Must be visible to all ranks for
            resume.
        resume: Continue from ``checkpoint_dir/last.pt`` exactly where it stopped (bit-identical on
            CPU); starts fresh, with a log line, when there is no ``last.pt`` yet.
        max_steps: Stop once this many optimizer steps were taken in total, counted from the run's
            first step (not this call's). Does not change the lr schedule's length.
        extra_loss: ``extra_loss(model, step) -> scalar`` added to the optimised loss (e.g. a gate
            L1 with warm-up); left out of the reported train and valid losses.
        on_epoch: ``on_epoch(epoch, score)`` after each finished epoch (after ``last.pt`` is
            written); ``score`` is the valid loss, or minus the ``valid_metric``: lower is better
            either way. It may raise to stop training, e.g. ``optuna.TrialPruned``; the
            exception propagates and ``model`` keeps its last weights.
        valid_metric: ``valid_metric(model) -> score``, higher is better (e.g. the valid
            window's Rank IC), called once per epoch on the bare ``model`` in eval mode under
            ``no_grad``, after the valid loss. When given (with ``valid``), it replaces the valid
            loss for early stopping and best-weight selection; the valid loss is still
            recorded. Under torchrun every rank calls it and must get the same value (score the
            whole valid window on every rank). Required when ``config.early_stopping_metric``
            is not ``"loss"``.

    Returns:
        The per-epoch history.

    Raises:
        TrainingError: ``max_bad_steps`` consecutive non-finite steps; empty sources; a checkpoint
            written for other data.
        ConfigError: unusable device or precision; ``early_stopping_metric`` other than
            ``"loss"`` with a ``valid`` source but no ``valid_metric``.
    """
    losses = (loss_fn, extra_loss, valid_metric)
    run = _start_run(model, train, valid, losses, config, checkpoint_dir, resume)
    st = _State(perm_state=torch.Generator().manual_seed(seed).get_state())
    # dropout draws from the global RNG: seeded per rank, the caller's state restored on exit
    with (
        dev.seeded(seed + dev.rank(), run.device),
        dev.cudnn_benchmark(run.device, run.drop_last),
    ):
        last = run.ckpt_dir / "last.pt" if run.ckpt_dir is not None else None
        ck = _read_checkpoint(last) if resume and last is not None and last.exists() else None
        if ck is not None:
            _load_last(run, st, ck, last)
        elif resume:
            logger.info("resume=True but no %s yet: starting fresh", last)
        _train_epochs(run, st, train, valid, max_steps, on_epoch)

    hist = st.history
    hist.steps = st.step
    if st.best_state is not None:
        model.load_state_dict(st.best_state)
    else:
        hist.best_epoch = len(hist.train_loss) - 1
    return hist


def _drops_last(config: TrainConfig, n_shard: int) -> bool:
    """Whether each epoch's last partial batch is dropped: asked for, or compiled training with
    at least one full batch (one batch shape, one graph)."""
    compiled = dev.resolve_compile_mode(config.compile) is not None
    return config.drop_last or (compiled and n_shard >= config.batch_size)


def _start_run(
    model: nn.Module,
    train: BatchSource,
    valid: BatchSource | None,
    losses: tuple[LossFn, ExtraLossFn | None, ValidMetricFn | None],
    config: TrainConfig,
    checkpoint_dir: str | os.PathLike[str] | None,
    resume: bool,
) -> _Run:
    """Check the sources, move ``model`` to its device and build optimizer and schedule.

    ``losses`` is ``(loss_fn, extra_loss, valid_metric)`` as passed to :func:`fit_torch`.
    """
    device = dev.resolve_device(config.device)
    dtype = dev.resolve_precision(device, config.precision)
    n_ranks, bs = dev.world_size(), config.batch_size
    n_shard = len(train) // _share(train)[2]  # samples this rank sees per epoch
    drop_last = _drops_last(config, n_shard)
    steps_per_epoch = n_shard // bs if drop_last else -(-n_shard // bs)
    if steps_per_epoch == 0:
        raise TrainingError(
            f"fit_torch: {len(train)} training samples give no batch of {bs} per rank "
            f"(world size {n_ranks}, drop_last={config.drop_last})"
        )
    if valid is not None and len(valid) == 0:
        raise TrainingError("fit_torch: the valid source is empty; pass valid=None instead")
    if resume and checkpoint_dir is None:
        raise TrainingError("fit_torch: resume=True needs a checkpoint_dir")
    if valid is not None and losses[2] is None and config.early_stopping_metric != "loss":
        raise ConfigError(
            f"fit_torch: early_stopping_metric={config.early_stopping_metric!r} needs a "
            f"valid_metric (the forecaster builds it); got None"
        )

    model.to(device)
    # DDP first, then compile: DDPOptimizer splits the graph at gradient-bucket boundaries
    net = dev.compile_module(dev.wrap_ddp(model, device), config.compile)
    opt = _make_optimizer(model, config, device)
    return _Run(
        model=model,
        net=net,
        opt=opt,
        sched=_make_scheduler(opt, config, steps_per_epoch * config.max_epochs),
        scaler=torch.amp.GradScaler("cuda") if dev.needs_grad_scaler(device, dtype) else None,
        config=config,
        device=device,
        dtype=dtype,
        loss_fn=losses[0],
        extra_loss=losses[1],
        valid_metric=losses[2],
        ckpt_dir=Path(checkpoint_dir) if checkpoint_dir is not None else None,
        meta={"n_train": len(train), "steps_per_epoch": steps_per_epoch, "world_size": n_ranks},
        steps_per_epoch=steps_per_epoch,
        n_shard=n_shard,
        drop_last=drop_last,
    )


def _train_epochs(
    run: _Run,
    st: _State,
    train: BatchSource,
    valid: BatchSource | None,
    max_steps: int | None,
    on_epoch: Callable[[int, float], None] | None,
) -> None:
    """Epochs until ``max_epochs``, early stopping or ``max_steps``; ``last.pt`` after each."""

    def done() -> bool:
        return st.history.stopped_early or (max_steps is not None and st.step >= max_steps)

    lr = run.opt.param_groups[0]["lr"]
    while not done() and st.epoch < run.config.max_epochs:
        t0 = time.perf_counter()
        perm, next_perm_state = _epoch_order(run, st, train)
        lr = _run_steps(run, st, train, perm, max_steps, lr)
        st.epoch_elapsed_s += time.perf_counter() - t0
        if st.step_in_epoch < run.steps_per_epoch:  # max_steps hit mid-epoch: keep it open
            _save_last(run, st)
            break
        _end_epoch(run, st, valid, lr)
        st.perm_state = next_perm_state
        _save_last(run, st)
        if on_epoch is not None:
            on_epoch(st.epoch - 1, _epoch_score(run, st.history))


def _epoch_order(run: _Run, st: _State, train: BatchSource) -> tuple[torch.Tensor, torch.Tensor]:
    """This rank's sample order for the current epoch, and the generator state after drawing it.

    Every rank draws the same permutation from ``st.perm_state`` (a resumed epoch redraws the
    same one) and keeps ``perm[rank::world_size]`` truncated to ``n_shard``.
    """
    gen = torch.Generator()
    gen.set_state(st.perm_state)
    perm = torch.randperm(len(train), generator=gen)  # (N,) identical on every rank
    next_perm_state = gen.get_state()
    n_ranks = dev.world_size()
    if _share(train)[2] > 1:
        perm = perm[dev.rank() :: n_ranks][: run.n_shard]  # (N // W,) this rank's shard
    return perm.to(train.device), next_perm_state


def _run_steps(
    run: _Run, st: _State, train: BatchSource, perm: torch.Tensor, max_steps: int | None, lr: float
) -> float:
    """The epoch's remaining optimizer steps over ``perm``; returns the last step's lr."""
    bs, device = run.config.batch_size, run.device
    acc = torch.tensor([st.loss_sum, st.loss_count], dtype=torch.float64, device=device)
    run.net.train()
    for s in range(st.step_in_epoch, run.steps_per_epoch):
        batch = _to_device(train.batch(perm[s * bs : (s + 1) * bs]), device)
        lr = _train_step(run, st, batch, acc)
        st.step_in_epoch = s + 1
        if max_steps is not None and st.step >= max_steps:
            break
    st.loss_sum, count = acc.tolist()
    st.loss_count = int(count)
    return lr
