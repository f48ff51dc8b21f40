"""TorchForecaster: the one estimator layer between BaseForecaster and every sequence network.

- Network apart from estimator (nanoGPT + darts): a forecaster names its ``nn.Module`` class
  (``Net``) and a ``Config`` composed (:func:`~alphaforge.models.params.compose_params`) from
  that net's frozen config, :class:`~alphaforge.models.training.TrainConfig` and the window
  fields of :class:`SequenceFields`; ``fit`` builds the net config once the channel count is
  known (``config.net_config(n_features=..., **net_fixed)``) and the training settings with
  ``config.train_config()``.
- One training loop: ``fit`` hands the net, two :class:`~alphaforge.models.windows.WindowSource`
  batch sources and a loss to :func:`~alphaforge.models.training.fit_torch`, which owns the
  optimiser, schedule, AMP, early stopping and checkpoints. Nothing here loops over epochs.
- Backward-only windows: the standardiser is fitted on training rows only; the valid window's
  lookback reaches back into the training rows (layout built on train + valid, loss on valid
  rows only); ``predict`` reads earlier rows of its own X as history (the run passes them).
- Early stopping reads the valid loss, or with ``early_stopping_metric="rank_ic"`` the valid
  window's mean per-timestamp Rank IC of the predicted head (the valid rows predicted once per
  epoch as in ``predict``; see :mod:`~alphaforge.models.early_stopping`).
- Targets are standardised (``(y - mean) / scale`` on training labels) so the loss is O(1)
  whatever the label's units; predictions are mapped back.
- Multi-task nets (``multitask = True``) output ``(return, volatility)``; trained with
  MSE(return) + QLIKE (or Gaussian NLL) on the volatility head. On a volatility label only the
  volatility head is trained and it is the prediction.
- Determinism: the net is initialised and trained inside ``torch.random.fork_rng`` seeded from
  ``random_state``, so the global RNG is untouched and the same seed gives the same CPU
  predictions. Inference runs fixed-size batches (the last one padded) so a row's prediction does
  not depend on how many rows are predicted with it.
- Saving: ``weights.pt`` (a plain ``state_dict`` loaded with ``weights_only=True``, written
  atomically) plus the net config, standardiser and target scaling in ``meta.json``.
"""

from __future__ import annotations

import dataclasses
import io
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal

import numpy as np
import numpy.typing as npt
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from alphaforge.errors import ConfigError, DataError
from alphaforge.models.base import BaseForecaster, Capabilities, Valid, require
from alphaforge.models.early_stopping import RankIC
from alphaforge.models.params import ComposedParams
from alphaforge.models.training import ValidMetricFn, fit_torch
from alphaforge.models.windows import SequenceLayout, Standardizer, WindowSource
from alphaforge.utils.device import autocast, resolve_device, resolve_precision, seeded
from alphaforge.utils.io import atomic_write_bytes

if TYPE_CHECKING:
    import optuna

logger = logging.getLogger(__name__)

WEIGHTS_FILE = "weights.pt"
VOL_FLOOR = 1e-4  # smallest volatility the head can output, in target-scale units

__all__ = [
    "MULTITASK_CAPS",
    "MultiTaskFields",
    "SEQUENCE_CAPS",
    "SequenceFields",
    "TorchForecaster",
    "check_window",
    "multitask_loss",
    "suggest_multitask",
    "suggest_training",
]


@dataclass(frozen=True)
class SequenceFields:
    """Window and inference fields of every sequence forecaster (the rest of its params come
    from its network config and :class:`~alphaforge.models.training.TrainConfig`)."""

    lookback: int = 64  # T: bars per window, the row's own bar last
    loss: Literal["mse", "huber"] = "mse"  # return loss on standardised targets
    missing_mask: bool = False  # add a per-feature "was NaN" channel to every bar
    clip: float = 10.0  # standardised features are clipped to [-clip, clip]
    predict_batch_size: int = 4096  # rows per inference batch

    def __post_init__(self) -> None:
        require(self.lookback >= 1, self, "lookback", "an int >= 1")
        require(self.clip > 0, self, "clip", "> 0")
        require(self.predict_batch_size >= 1, self, "predict_batch_size", "an int >= 1")


@dataclass(frozen=True)
class MultiTaskFields:
    """Extra config fields of multi-task (return + volatility) forecasters."""

    target: Literal["auto", "return", "volatility"] = "auto"  # auto: from the fit's LabelSpec
    vol_loss: Literal["qlike", "nll"] = "qlike"  # loss of the volatility head
    vol_weight: float = 1.0  # weight of the volatility loss against the return loss

    def __post_init__(self) -> None:
        require(self.vol_weight > 0, self, "vol_weight", "> 0")


SEQUENCE_CAPS = Capabilities(
    family="neural",
    supports_valid=True,
    early_stopping=True,
    needs_sequence=True,
    checkpointable=True,
)
MULTITASK_CAPS = dataclasses.replace(SEQUENCE_CAPS, multi_output=True)


def check_window(params: Any) -> None:
    """Cross-part check of windowed nets: the positional table covers the lookback window.

    Raises:
        ConfigError: ``max_len < lookback``.
    """
    require(params.max_len >= params.lookback, params, "max_len", f">= lookback={params.lookback}")


def suggest_training(trial: optuna.Trial) -> dict[str, Any]:
    """Optuna suggestions for the training fields every sequence model tunes.

    Returns:
        ``lr`` (log 1e-4..3e-3), ``lookback`` (16..128), ``batch_size`` (128..1024),
        ``weight_decay`` (log 1e-4..0.1).
    """
    return {
        "lr": trial.suggest_float("lr", 1e-4, 3e-3, log=True),
        "lookback": trial.suggest_categorical("lookback", [16, 32, 64, 128]),
        "batch_size": trial.suggest_categorical("batch_size", [128, 256, 512, 1024]),
        "weight_decay": trial.suggest_float("weight_decay", 1e-4, 0.1, log=True),
    }


def suggest_multitask(trial: optuna.Trial) -> dict[str, Any]:
    """Optuna suggestion for the multi-task loss: ``vol_weight`` (log 0.1..10)."""
    return {"vol_weight": trial.suggest_float("vol_weight", 0.1, 10.0, log=True)}


@dataclass(frozen=True)
class FitRows:
    """What a sequence model's batch sources are built from: one layout over train + valid.

    Attributes:
        layout: Packed features of every row below (training rows first, in ``y``'s order,
            then the valid rows not already among them), so a valid row's window reaches back
            into the training rows.
        index: The layout's rows, ``(timestamp, symbol)``.
        y: Training labels (NaN rows are context only).
        valid_rows: Layout rows of the valid window, or ``None``.
        valid_y: Their labels, or ``None``.
    """

    layout: SequenceLayout
    index: pd.Index
    y: pd.Series
    valid_rows: npt.NDArray[np.intp] | None
    valid_y: npt.NDArray[np.float64] | None


class TorchForecaster(BaseForecaster):
    """Estimator over a sequence network: windows in, one forecast per row out.

    Subclasses set class attributes only: ``Config`` (composed by
    :func:`~alphaforge.models.params.compose_params` from the net's config with role
    ``"net"``, ``TrainConfig`` and :class:`SequenceFields`), ``Net`` (the ``nn.Module``),
    ``net_fixed`` (net config fields fixed by the class, e.g. ``{"cell": "gru"}``; excluded
    from the params) and ``multitask`` (two outputs; the net config gets ``multitask=True``).

    Learned state: ``net_`` (the trained module, in eval mode), ``net_config_``,
    ``standardizer_``, ``target_`` (``"return"`` or ``"volatility"``), ``target_mean_`` and
    ``target_scale_`` (label units), ``history_`` (``DataFrame``: epoch, train_loss,
    valid_loss, valid_metric, lr, epoch_time_s; ``valid_metric`` is the valid Rank IC with
    ``early_stopping_metric="rank_ic"``, NaN otherwise).
    """

    Config: ClassVar[type[ComposedParams]]
    Net: ClassVar[type[nn.Module]]
    net_fixed: ClassVar[dict[str, Any]] = {}
    multitask: ClassVar[bool] = False
    capabilities: ClassVar[Capabilities] = SEQUENCE_CAPS
    _keep_unlabelled_rows = True  # unlabelled rows are still history for later windows

    # ------------------------------------------------------------------ fit
    def _fit(self, X: pd.DataFrame, y: pd.Series, valid: Valid | None) -> None:
        c = self.config_
        device = resolve_device(c.device)
        self._fit_target(y)
        self.standardizer_ = Standardizer.fit(X, clip=c.clip)

        # one layout over train + valid so a valid row's window reaches back into train rows
        X_all, valid_rows = X, None
        if valid is not None:
            X_valid = valid[0]
            new = ~X_valid.index.isin(X.index)
            X_all = pd.concat([X, X_valid[new]]) if new.any() else X
            valid_rows = X_all.index.get_indexer(X_valid.index)
        layout = self._layout(X_all, device)
        valid_y = None if valid is None else valid[1].to_numpy(np.float64)
        rows = FitRows(layout, X_all.index, y, valid_rows, valid_y)
        train, valid_src = self._sources(rows)
        valid_metric = self._valid_metric(rows) if valid_src is not None else None

        self.net_config_ = self._net_config(layout.n_channels)
        with seeded(self.seed_, device):  # weight init; the global RNG is restored on exit
            net = self.Net(self.net_config_)
            history = fit_torch(
                net,
                train,
                self._loss_fn(),
                c.train_config(),
                valid=valid_src,
                seed=self.seed_,
                checkpoint_dir=self.checkpoint_dir,
                resume=self.resume and self.checkpoint_dir is not None,
                extra_loss=self._extra_loss(),
                on_epoch=self.iteration_callback if valid is not None else None,
                valid_metric=valid_metric,
            )
        self.net_ = net.eval()
        self.history_ = history.to_frame()
        logger.info(
            "%s: %d epochs, %d parameters",
            type(self).__name__,
            len(self.history_),
            sum(p.numel() for p in net.parameters()),
        )

    def _fit_target(self, y: pd.Series) -> None:
        """Set ``target_``, ``target_mean_`` and ``target_scale_`` from the training labels."""
        self.target_ = self._resolve_target(y)
        y_train = y.to_numpy(np.float64)[y.notna().to_numpy()]
        self.target_mean_ = 0.0 if self.target_ == "volatility" else float(y_train.mean())
        scale = float(np.sqrt(np.mean((y_train - self.target_mean_) ** 2)))
        self.target_scale_ = scale if scale > 0 else 1.0

    def _sources(self, rows: FitRows) -> tuple[Any, Any]:
        """Training and valid batch sources (the valid one ``None`` without a valid window)."""
        lookback = self.config_.lookback
        labelled = rows.y.notna().to_numpy()
        train = WindowSource(
            rows.layout,
            lookback,
            rows=np.flatnonzero(labelled),
            y=self._targets(rows.y.to_numpy(np.float64)[labelled]),
        )
        if rows.valid_rows is None or rows.valid_y is None:
            return train, None
        valid = WindowSource(
            rows.layout, lookback, rows=rows.valid_rows, y=self._targets(rows.valid_y)
        )
        return train, valid

    def _extra_loss(self) -> Any:
        """``extra_loss`` for :func:`fit_torch` (None: the loss alone)."""
        return None

    def _valid_metric(self, rows: FitRows) -> ValidMetricFn | None:
        """``valid_metric`` for :func:`fit_torch`: the valid Rank IC of the predicted head.

        ``None`` with ``early_stopping_metric="loss"`` or without valid rows. Predictions stay
        in target-scale units: the positive affine map to label units leaves ranks unchanged.

        Raises:
            ConfigError: ``rank_ic`` and no valid timestamp has two or more symbols.
        """
        if self.config_.early_stopping_metric == "loss" or rows.valid_rows is None:
            return None
        stamps = np.asarray(rows.index.get_level_values("timestamp"))[rows.valid_rows]
        score = RankIC(stamps, rows.valid_y, model=type(self).__name__)
        source = WindowSource(rows.layout, self.config_.lookback, rows=rows.valid_rows)
        head = self._head()
        return lambda net: score(self._net_outputs(net, source)[:, head])

    def _resolve_target(self, y: pd.Series) -> str:
        target = self.config_.target if self.multitask else "return"
        if target == "auto":
            target = "volatility" if self.label_.label_kind == "volatility" else "return"
        if target == "volatility" and (y.dropna() < 0).any():
            raise DataError(
                f"{type(self).__name__}: a volatility label must be >= 0, got "
                f"min {float(y.min()):g}"
            )
        return target

    def _targets(self, y: npt.NDArray[np.float64]) -> npt.NDArray[np.float32]:
        """Labels -> standardised training targets: ``(n,)``, or ``(n, 2)`` for multitask."""
        z = (y - self.target_mean_) / self.target_scale_
        if not self.multitask:
            return z.astype(np.float32)
        if self.target_ == "volatility":  # no return label: the return head is not trained
            return np.stack([np.zeros_like(z), z], axis=1).astype(np.float32)
        return np.stack([z, np.abs(z)], axis=1).astype(np.float32)  # |r - mean|: realised vol

    def _net_config(self, n_channels: int) -> Any:
        """The net's config: the params' net fields, the channel count, ``net_fixed`` and, for
        multi-task forecasters, ``multitask=True`` (every multi-task net config has it)."""
        fixed = {**self.net_fixed, "multitask": True} if self.multitask else self.net_fixed
        return self.config_.net_config(n_features=n_channels, **fixed)

    def _loss_fn(self) -> Callable[[nn.Module, dict[str, torch.Tensor]], torch.Tensor]:
        c = self.config_
        if not self.multitask:
            point = F.huber_loss if c.loss == "huber" else F.mse_loss
            return lambda net, batch: point(net(batch["x"])[:, 0].float(), batch["y"])
        return_weight = 0.0 if self.target_ == "volatility" else 1.0
        # without a return label the NLL has no mean to centre on: QLIKE on the vol label
        vol_loss = "qlike" if self.target_ == "volatility" else c.vol_loss
        return lambda net, batch: multitask_loss(
            net(batch["x"]).float(),
            batch["y"],
            return_weight=return_weight,
            vol_weight=c.vol_weight,
            vol_loss=vol_loss,
            huber=c.loss == "huber",
        )

    def _layout(self, X: pd.DataFrame, device: torch.device) -> SequenceLayout:
        return SequenceLayout.build(
            X, self.standardizer_, device=device, missing=self.config_.missing_mask
        )

    # ------------------------------------------------------------------ predict
    def _outputs(self, X: pd.DataFrame) -> npt.NDArray[np.float64]:
        """Raw net outputs for every row of X, ``(R, K)``, in target-scale units."""
        device = next(self.net_.parameters()).device
        source = WindowSource(self._layout(X, device), self.config_.lookback)
        return self._net_outputs(self.net_, source)

    def _net_outputs(self, net: nn.Module, source: WindowSource) -> npt.NDArray[np.float64]:
        """``net``'s outputs for every sample of ``source``, ``(R, K)``, in eval mode; leaves
        ``net`` in eval mode (``fit_torch`` restores training mode after its valid metric)."""
        device, size = source.device, self.config_.predict_batch_size
        out = np.empty((len(source), self._n_outputs()), dtype=np.float64)
        precision = resolve_precision(device, self.config_.precision)
        net.eval()
        with torch.inference_mode(), autocast(device, precision):
            for lo in range(0, len(source), size):
                idx = torch.arange(lo, lo + size, device=device)
                n = min(size, len(source) - lo)
                # fixed batch shape: the last batch is padded with row 0, whose output is dropped
                idx = torch.where(idx < len(source), idx, 0)
                pred = net(source.batch(idx)["x"]).float()  # (size, K)
                out[lo : lo + n] = pred[:n].cpu().numpy()
        return out

    def _n_outputs(self) -> int:
        return 2 if self.multitask else getattr(self.net_config_, "n_outputs", 1)

    def _head(self) -> int:
        """The output column :meth:`predict` returns: the volatility head of a multi-task net
        on a volatility label, else column 0."""
        return 1 if self.multitask and self.target_ == "volatility" else 0

    def _predict(self, X: pd.DataFrame) -> npt.NDArray[np.float64]:
        out = self._outputs(X)[:, self._head()]
        if self.multitask and self.target_ == "volatility":
            return out * self.target_scale_
        return out * self.target_scale_ + self.target_mean_

    def predict_volatility(self, X: pd.DataFrame) -> pd.Series:
        """Volatility forecast of the multi-task head (multi-task models only).

        Args:
            X: Features with the columns seen in ``fit``; row ``(t, s)`` reads rows of symbol
                ``s`` at or before ``t`` only.

        Returns:
            Positive float series ``"vol_pred"`` on X's index, in the label's units: the
            standard deviation of the return label around its mean (return labels), or the
            volatility label itself.

        Raises:
            ConfigError: the model has no volatility head.
            NotFittedError: before ``fit``.
        """
        if not self.multitask:
            raise ConfigError(
                f"{type(self).__name__} has no volatility head; use a multitask "
                f"model (multitask_lstm, multitask_transformer)"
            )
        X = self._checked_X(X)
        vol = self._outputs(X)[:, 1] * self.target_scale_
        return pd.Series(vol, index=X.index, name="vol_pred")

    # ------------------------------------------------------------------ save / load
    def _save_state(self, path: Path) -> dict[str, Any]:
        buf = io.BytesIO()
        torch.save({k: v.detach().cpu() for k, v in self.net_.state_dict().items()}, buf)
        atomic_write_bytes(path / WEIGHTS_FILE, buf.getvalue())
        return {
            "net_config": dataclasses.asdict(self.net_config_),
            "standardizer": self.standardizer_.to_dict(),
            "target": self.target_,
            "target_mean": self.target_mean_,
            "target_scale": self.target_scale_,
            "history": self.history_.to_dict(orient="list"),
        }

    def _load_state(self, path: Path, state: dict[str, Any]) -> None:
        self.net_config_ = self.Config.part_class("net")(**state["net_config"])
        self.standardizer_ = Standardizer.from_dict(state["standardizer"])
        self.target_ = state["target"]
        self.target_mean_ = float(state["target_mean"])
        self.target_scale_ = float(state["target_scale"])
        self.history_ = pd.DataFrame(state["history"])
        weights = torch.load(path / WEIGHTS_FILE, map_location="cpu", weights_only=True)
        net = self.Net(self.net_config_)
        net.load_state_dict(weights)
        self.net_ = net.to(resolve_device(self.config_.device)).eval()


def multitask_loss(
    pred: torch.Tensor,
    y: torch.Tensor,
    *,
    return_weight: float = 1.0,
    vol_weight: float = 1.0,
    vol_loss: str = "qlike",
    huber: bool = False,
) -> torch.Tensor:
    """Return loss plus volatility loss of a two-headed net.

    Args:
        pred: ``(B, 2)``: return forecast, positive volatility forecast ``sigma``.
        y: ``(B, 2)``: return target, realised volatility target (same scale as ``sigma``).
        return_weight: Weight of the return loss (0 when there is no return label).
        vol_weight: Weight of the volatility loss.
        vol_loss: ``"qlike"``: ``v^2 / sigma^2 + log sigma^2``, minimised by
            ``sigma^2 = E[v^2]`` (Patton 2011); ``"nll"``: Gaussian NLL of the return target
            around the (detached) return forecast.
        huber: Huber instead of MSE for the return loss.

    Returns:
        Scalar loss.
    """
    mu, sigma = pred[:, 0], pred[:, 1]  # (B,), (B,)
    point = F.huber_loss if huber else F.mse_loss
    total = return_weight * point(mu, y[:, 0]) if return_weight else pred.new_zeros(())
    realised = (y[:, 0] - mu.detach()) ** 2 if vol_loss == "nll" else y[:, 1] ** 2
    var = sigma**2
    return total + vol_weight * (realised / var + torch.log(var)).mean()


def positive(h: torch.Tensor) -> torch.Tensor:
    """Volatility head activation: softplus plus a floor, ``(...) -> (...) > 0``."""
    return F.softplus(h) + VOL_FLOOR
