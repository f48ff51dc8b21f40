"""One fitted copy of a model per symbol, each with that symbol's tuned parameters.

- :class:`PerSymbolForecaster` (``per_symbol``): the member model is fitted once per symbol on
  that symbol's rows only and predicts that symbol's rows only; nothing is shared across symbols.
- Tuned parameters: with ``params_from`` (a directory such as ``hyperparams/best``, written by
  :mod:`alphaforge.tuning`), each symbol's record ``<params_from>/<safe_filename(SYMBOL)>.json``
  is read at fit time and its ``params`` are merged *under* the member's own params (the config
  wins on overlap). A symbol without a record uses the member's params and the fit logs it.
- What was used is learned state: ``params_`` (the params of each symbol's model) and
  ``params_source_`` (the record file, or ``None`` for the member's own params), saved in
  ``meta.json`` so a saved model says which tuned parameters it was fitted with.
- Saved as one sub-directory per symbol (``safe_filename(symbol)``), each a saved member model;
  never pickled.

The member is a registry name or a mapping ``{name, params, features, label}`` as in
:mod:`alphaforge.models.ensemble`; ensembles and cross-sectional models (which read other
symbols at the same timestamp) cannot be members.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import numpy.typing as npt
import pandas as pd

from alphaforge.errors import ConfigError, DataError
from alphaforge.models.base import BaseForecaster, Capabilities, Valid
from alphaforge.models.ensemble import ENSEMBLE_CAPS, Member, parse_member
from alphaforge.utils.integrity import read_json
from alphaforge.utils.io import safe_filename

logger = logging.getLogger(__name__)

__all__ = ["PerSymbolConfig", "PerSymbolForecaster", "read_tuned_params", "symbol_rows"]


def symbol_rows(index: pd.MultiIndex) -> dict[str, npt.NDArray[np.intp]]:
    """Row positions of each symbol of a ``(timestamp, symbol)`` index, in one vectorised pass.

    Args:
        index: A ``(timestamp, symbol)`` MultiIndex.

    Returns:
        ``{symbol: positions}`` in order of first appearance; each ``positions`` array is
        increasing, so ``frame.iloc[positions]`` keeps the frame's row order.
    """
    codes, uniques = pd.factorize(index.get_level_values("symbol"))
    order = np.argsort(codes, kind="stable")  # rows grouped by symbol, original order within
    bounds = np.cumsum(np.bincount(codes, minlength=len(uniques)))[:-1]
    return {str(s): rows for s, rows in zip(uniques, np.split(order, bounds), strict=True)}


def read_tuned_params(path: Path, symbol: str, model: str) -> dict[str, Any]:
    """The ``params`` of one tuned-hyperparameter record (``hyperparams/best/{SYMBOL}.json``).

    Args:
        path: The record file.
        symbol: The symbol it must describe (checked when the record names one).
        model: The registry name it must be for (checked when the record names one).

    Returns:
        The record's ``params`` mapping (config overrides for ``from_params``).

    Raises:
        DataError: unreadable or invalid JSON, not a mapping, no ``params`` mapping, or a record
            of another model or symbol; the message names the file.
    """
    record = read_json(path, what="tuned params")  # a sealed record must match its seal
    if not isinstance(record, Mapping):
        raise DataError(
            f"tuned params must be a JSON object, got {type(record).__name__}", path=str(path)
        )
    params = record.get("params")
    if not isinstance(params, Mapping):
        raise DataError(
            f"tuned params: expected a 'params' object, got {params!r:.80}", path=str(path)
        )
    if record.get("model", model) != model:
        raise DataError(
            f"tuned params are for model {record['model']!r}, expected {model!r}", path=str(path)
        )
    if record.get("symbol", symbol) != symbol:
        raise DataError(
            f"tuned params are for symbol {record['symbol']!r}, expected {symbol!r}",
            path=str(path),
        )
    return dict(params)


@dataclass(frozen=True)
class PerSymbolConfig:
    """The member to fit per symbol and where its tuned per-symbol params live."""

    member: Any = "lightgbm"  # member spec: registry name or {name, params, features, label}
    params_from: str | None = None  # directory of tuned {SYMBOL}.json records; None: member's

    def __post_init__(self) -> None:
        parse_member(self.member)  # unknown model, keys or an ensemble: ConfigError
        if self.params_from is not None and not (
            isinstance(self.params_from, str) and self.params_from.strip()
        ):
            raise ConfigError(
                f"PerSymbolConfig.params_from must be a directory path or None, "
                f"got {self.params_from!r}"
            )


class PerSymbolForecaster(BaseForecaster):
    """One member model per symbol, fitted on that symbol's rows with its tuned params.

    ``fit``: for each symbol of ``X`` with at least one label, the member is built with
    ``{**tuned, **member_params}`` (``tuned`` from ``params_from``, empty without it), seeded
    with ``seed_``, and fitted on the symbol's rows, early-stopping on the symbol's rows of
    ``valid`` when the member supports it. ``predict`` routes each row to its symbol's model;
    the rows passed in are the symbol's context too, so sequence members read their own history.

    Attributes (after fit): ``models_`` (``{symbol: fitted member}``), ``params_``
    (``{symbol: params used}``), ``params_source_`` (``{symbol: record path or None}``).
    """

    Config: ClassVar[type] = PerSymbolConfig
    capabilities: ClassVar[Capabilities] = ENSEMBLE_CAPS
    _keep_unlabelled_rows = True  # context rows for sequence members; each member drops its own

    def _fit(self, X: pd.DataFrame, y: pd.Series, valid: Valid | None) -> None:
        member = parse_member(self.config_.member)
        proto = member.build(self.seed_)  # the member's own params are checked here
        if proto.capabilities.cross_sectional:
            raise ConfigError(
                f"per_symbol: member {member.name!r} is cross-sectional (reads other symbols "
                f"at the same timestamp); it cannot be fitted one symbol at a time"
            )
        tuned = self._tuned_params(member, X)
        valid_rows = symbol_rows(valid[0].index) if valid is not None else {}
        labelled = y.notna().to_numpy()
        self.models_: dict[str, BaseForecaster] = {}
        self.params_: dict[str, dict[str, Any]] = {}
        self.params_source_: dict[str, str | None] = {}
        for symbol, rows in symbol_rows(X.index).items():
            if not labelled[rows].any():
                logger.warning("per_symbol: symbol %r has no labelled training rows", symbol)
                continue
            params, source = tuned.get(symbol, ({}, None))
            params = {**params, **member.params}  # the config's own params win
            model = self._build(member, params, source)
            Xs, ys = member.view(X.iloc[rows]), y.iloc[rows]
            vrows = valid_rows.get(symbol)
            if valid is not None and vrows is not None and model.capabilities.supports_valid:
                window = (member.view(valid[0].iloc[vrows]), valid[1].iloc[vrows])
                model.fit(Xs, ys, valid=window, label=self.label_)
            else:
                model.fit(Xs, ys, label=self.label_)
            self.models_[symbol] = model
            self.params_[symbol] = params
            self.params_source_[symbol] = source
        if not self.models_:
            raise DataError("per_symbol: no symbol has labelled training rows")

    def _tuned_params(
        self, member: Member, X: pd.DataFrame
    ) -> dict[str, tuple[dict[str, Any], str | None]]:
        """``{symbol: (tuned params, record path)}`` for the symbols of ``X`` with a record."""
        directory = self.config_.params_from
        if directory is None:
            return {}
        root = Path(directory)
        if not root.is_dir():
            raise DataError(
                "per_symbol: params_from is not a directory of tuned params", path=str(root)
            )
        out = {}
        for symbol in pd.unique(X.index.get_level_values("symbol")):
            path = root / f"{safe_filename(str(symbol))}.json"
            if not path.is_file():
                logger.warning(
                    "per_symbol: no tuned params for symbol %r (%s); using %s's own params",
                    symbol,
                    path,
                    member.name,
                )
                continue
            out[str(symbol)] = (read_tuned_params(path, str(symbol), member.name), str(path))
        return out

    def _build(self, member: Member, params: dict[str, Any], source: str | None) -> BaseForecaster:
        """The member with ``params``; a tuned record that does not fit it names its file."""
        built = Member(member.name, params, member.features, member.key)
        try:
            return built.build(self.seed_)
        except ConfigError as exc:
            if source is None:
                raise
            raise DataError(f"tuned params do not fit {member.name!r}: {exc}", path=source) from exc

    def _predict(self, X: pd.DataFrame) -> npt.NDArray[np.float64]:
        member = parse_member(self.config_.member)
        groups = symbol_rows(X.index)
        unseen = [s for s in groups if s not in self.models_]
        if unseen:
            raise DataError(
                f"per_symbol: no model for {len(unseen)} symbol(s) {unseen[:10]}; fitted on "
                f"{sorted(self.models_)[:10]}",
                symbol=unseen[0],
            )
        out = np.empty(len(X), dtype=np.float64)
        for symbol, rows in groups.items():
            pred = self.models_[symbol].predict(member.view(X.iloc[rows]))
            out[rows] = pred.to_numpy(np.float64)
        return out

    def _save_state(self, path: Path) -> dict[str, Any]:
        for symbol, model in self.models_.items():
            model.save(path / safe_filename(symbol))
        return {
            "symbols": list(self.models_),
            "params": self.params_,
            "params_source": self.params_source_,
        }

    def _load_state(self, path: Path, state: dict[str, Any]) -> None:
        symbols = [str(s) for s in state["symbols"]]
        self.models_ = {s: BaseForecaster.load(path / safe_filename(s)) for s in symbols}
        self.params_ = {s: dict(state["params"][s]) for s in symbols}
        self.params_source_ = {s: state["params_source"][s] for s in symbols}

    @classmethod
    def test_params(cls) -> dict[str, Any]:
        tiny = {"n_estimators": 15, "num_leaves": 7, "min_child_samples": 10, "n_jobs": 1}
        return {"member": {"name": "lightgbm", "params": tiny}}
