"""Forecaster configs composed from the configs of the parts they set: each setting declared once.

A torch forecaster's ``Config`` is the flat, frozen dataclass users fill from YAML ``params:``
(``{"hidden": 32, "lr": 3e-3, "lookback": 16}``). It is not written by hand:
:func:`compose_params` generates it from the fields of the parts it configures — the network's
config (``RNNConfig``, ``GPTConfig`` ...), :class:`~alphaforge.models.training.TrainConfig` and
small field groups (the lookback window, the multi-task loss). So:

- every field keeps the name, type and default of the one part that declares it; a forecaster
  overrides a part's default only where its own differs, in ``defaults`` (listed in the
  generated docstring);
- every field is validated in one place, its part's ``__post_init__``: constructing the params
  constructs every part; checks that span parts (``max_len >= lookback``) go in ``check``;
- :meth:`ComposedParams.net_config` / :meth:`~ComposedParams.train_config` /
  :meth:`~ComposedParams.build` construct the parts explicitly. A part field is either a params
  field or excluded and passed at build time (derived in ``fit``, like ``n_features``, or fixed
  by the forecaster class, like ``cell="gru"``): none is dropped or defaulted by accident.

Unknown keys fail in :meth:`~alphaforge.models.base.BaseForecaster.from_params`, which lists the
generated fields.
"""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, ClassVar

from alphaforge.errors import ConfigError
from alphaforge.models.training import TrainConfig

__all__ = ["ComposedParams", "Part", "compose_params"]


@dataclass(frozen=True)
class Part:
    """One config a params class is composed from.

    Attributes:
        cls: The frozen config dataclass (a network config, ``TrainConfig``, a field group).
        role: The name :meth:`ComposedParams.build` builds it by (``"net"``, ``"train"``, ...).
        exclude: Fields that are not params: derived in ``fit`` (``n_features``) or fixed by
            the forecaster class (``cell``); they are passed to :meth:`ComposedParams.build`.
        keys: ``{part field: params key}`` when the params name some fields differently
            (``{"hidden": "vq_hidden"}``); only these fields are params then, the part's
            other fields keep their defaults or are passed at build time. ``None``: every
            field not in ``exclude``, under its own name.
    """

    cls: type
    role: str
    exclude: tuple[str, ...] = ()
    keys: Mapping[str, str] | None = None

    def __post_init__(self) -> None:
        names = {f.name for f in dataclasses.fields(self.cls)}
        unknown = sorted((set(self.exclude) | set(self.keys or {})) - names)
        if unknown:
            raise TypeError(f"Part({self.cls.__name__}): no fields {unknown}")

    def params_keys(self) -> dict[str, str]:
        """``{part field: params key}`` of every part field set through the params."""
        if self.keys is not None:
            return dict(self.keys)
        return {f.name: f.name for f in dataclasses.fields(self.cls) if f.name not in self.exclude}


class ComposedParams:
    """Base of the classes :func:`compose_params` generates (frozen dataclasses).

    Class attributes: ``parts`` (``{role: Part}``, in field order) and ``default_overrides``
    (the defaults that differ from the parts').
    """

    parts: ClassVar[Mapping[str, Part]] = MappingProxyType({})
    default_overrides: ClassVar[Mapping[str, Any]] = MappingProxyType({})

    def build(self, role: str, **fixed: Any) -> Any:
        """Construct the part ``role`` from these params plus ``fixed`` values.

        Args:
            role: A key of :attr:`parts`.
            **fixed: Values of the part's excluded fields (``n_features=12``, ``cell="gru"``).

        Returns:
            The part's config instance (validated by its ``__post_init__``).

        Raises:
            TypeError: ``fixed`` names a field the params set, or misses a required one.
            ConfigError: a fixed value is invalid.
        """
        part = self.parts[role]
        keys = part.params_keys()
        clash = sorted(set(fixed) & set(keys))
        if clash:
            raise TypeError(
                f"{type(self).__name__}.build({role!r}): {clash} are set by the params, not fixed"
            )
        return part.cls(**{name: getattr(self, key) for name, key in keys.items()}, **fixed)

    def net_config(self, **fixed: Any) -> Any:
        """The network's config: the params' net fields plus ``fixed`` (``n_features=...``)."""
        return self.build("net", **fixed)

    def train_config(self) -> TrainConfig:
        """The :func:`~alphaforge.models.training.fit_torch` settings of these params."""
        return self.build("train")

    @classmethod
    def part_class(cls, role: str) -> type:
        """The config class of part ``role`` (e.g. to rebuild a saved ``net_config``)."""
        return cls.parts[role].cls

    def _validate(self) -> None:
        """Construct every part (each validates its own fields), then the cross-part checks."""
        for part in self.parts.values():
            try:
                self.build(part.role, **_placeholders(part))
            except ConfigError as exc:
                renamed = {k: v for k, v in part.params_keys().items() if k != v}
                note = f" (params keys for {part.cls.__name__}: {renamed})" if renamed else ""
                raise ConfigError(f"{type(self).__name__}: {exc}{note}") from None
        self.check()

    def check(self) -> None:
        """Checks across parts; :func:`compose_params` installs its ``check`` here."""


def compose_params(
    name: str,
    *,
    module: str,
    net: Part | type | None = None,
    train: Part | type = TrainConfig,
    extra: Sequence[Part | type] = (),
    defaults: Mapping[str, Any] | None = None,
    check: Callable[[Any], None] | None = None,
    doc: str = "",
) -> type[ComposedParams]:
    """Generate a forecaster's flat, frozen params dataclass from the configs it sets.

    Args:
        name: Class name (``"RNNParams"``).
        module: ``__name__`` of the module that defines it (for repr, docs and type hints).
        net: The network's config (role ``"net"``); a bare class takes every field.
        train: The training config (role ``"train"``), ``TrainConfig`` by default.
        extra: Further field groups (role: their class name unless a :class:`Part` says
            otherwise); fields come first, in this order, then the net's, then training's.
        defaults: ``{params key: default}`` where this forecaster's default differs from the
            part's.
        check: ``check(params)`` run after the parts validated: constraints across parts;
            raise ``ConfigError`` (:func:`~alphaforge.models.base.require`).
        doc: First paragraph of the class docstring; the field sources are appended.

    Returns:
        A frozen dataclass subclassing :class:`ComposedParams`.

    Raises:
        TypeError: two parts declare the same params key, or ``defaults`` names no field.
    """
    parts = [_as_part(p, p.__name__ if isinstance(p, type) else "") for p in extra]
    if net is not None:
        parts.append(_as_part(net, "net"))
    parts.append(_as_part(train, "train"))
    overrides = dict(defaults or {})
    specs: dict[str, tuple[Any, Any]] = {}  # params key -> (type, default)
    for part in parts:
        hints = typing.get_type_hints(part.cls)
        by_name = {f.name: f for f in dataclasses.fields(part.cls)}
        for field_name, key in part.params_keys().items():
            if key in specs:
                raise TypeError(f"compose_params({name}): {key!r} is declared by two parts")
            specs[key] = (hints[field_name], _default(by_name[field_name]))
    unknown = sorted(set(overrides) - set(specs))
    if unknown:
        raise TypeError(f"compose_params({name}): defaults for unknown fields {unknown}")
    fields = [
        (key, hint, field(default=overrides.get(key, default)))
        for key, (hint, default) in specs.items()
    ]
    namespace: dict[str, Any] = {
        "parts": MappingProxyType({p.role: p for p in parts}),
        "default_overrides": MappingProxyType(overrides),
        "__post_init__": ComposedParams._validate,
        "__doc__": _docstring(doc, parts, overrides),
    }
    if check is not None:
        namespace["check"] = check
    cls = dataclasses.make_dataclass(
        name, fields, bases=(ComposedParams,), frozen=True, namespace=namespace
    )
    cls.__module__ = module
    cls()  # the defaults themselves must be valid
    return cls


def _as_part(p: Part | type, role: str) -> Part:
    return p if isinstance(p, Part) else Part(p, role)


def _default(f: dataclasses.Field[Any]) -> Any:
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    raise TypeError(f"field {f.name!r} has no default: exclude it and pass it at build time")


def _placeholders(part: Part) -> dict[str, Any]:
    """Values for a part's required excluded fields (counts such as ``n_features``) so the
    part can be validated before ``fit`` knows them."""
    keys = part.params_keys()
    return {
        f.name: 1
        for f in dataclasses.fields(part.cls)
        if f.name not in keys
        and f.default is dataclasses.MISSING
        and f.default_factory is dataclasses.MISSING
    }


def _docstring(doc: str, parts: Sequence[Part], overrides: Mapping[str, Any]) -> str:
    lines = [
        doc.strip() or "Forecaster params.",
        "",
        "Generated by :func:`~alphaforge.models.params.compose_params`; each field is "
        "declared (name, type, default, validation) by one part:",
        "",
    ]
    for part in parts:
        keys = part.params_keys()
        shown = ", ".join(k if k == v else f"{v} (its {k})" for k, v in keys.items())
        role = "" if part.role == part.cls.__name__ else f" ({part.role})"
        lines.append(f"- ``{part.cls.__name__}``{role}: {shown or '(none)'}")
    if overrides:
        changed = ", ".join(f"{k}={v!r}" for k, v in overrides.items())
        lines += ["", f"Defaults that differ from the parts': {changed}."]
    return "\n".join(lines) + "\n"
