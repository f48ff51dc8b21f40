"""Fixed-shape decoding shared by the market GPT and Kronos: static caches and CUDA graphs.

As in gpt-fast (Meta's PyTorch Labs, 2023): a decode step whose every tensor has the same shape
and address at every step can be captured once as a CUDA graph and replayed for one launch per
step instead of one per kernel. What makes the step fixed-shape is the model's business
(keys written into a preallocated cache at a position held in a tensor, attention over the whole
cache with a mask); this module holds the parts that do not know the model:

- :func:`resolve_decode`: the ``decode`` setting (``auto``, ``eager``, ``static``, ``graph``) for
  a device. ``auto`` is ``graph`` on CUDA and ``eager`` (the growing cache) elsewhere, so CPU
  results do not change.
- :class:`GraphedStep`: capture ``step()`` (a closure over static tensors) once on CUDA, replay
  it; autocast's weight-cast cache is off during capture, so no captured kernel reads a cast
  that is freed when the caller's autocast region ends.
- :class:`DecoderCache`: a few captured decoders per module, keyed by shape and settings, and
  dropped when the module's weights move (``.to(...)``): a graph reads the weights at the
  addresses it was captured with.
"""

from __future__ import annotations

import contextlib
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Any

import torch
from torch import nn

from alphaforge.errors import ConfigError
from alphaforge.utils import device as dev

__all__ = ["DECODE_MODES", "DecoderCache", "GraphedStep", "bucket", "resolve_decode"]

DECODE_MODES = ("auto", "eager", "static", "graph")


def resolve_decode(decode: str, device: torch.device) -> str:
    """``eager``, ``static`` or ``graph`` for a ``decode`` setting on ``device``.

    Args:
        decode: ``auto`` (``graph`` on CUDA, else ``eager``), ``eager`` (a cache that grows by
            one position per step), ``static`` (a preallocated cache, fixed-shape steps) or
            ``graph`` (``static`` with each step replayed from a CUDA graph; CUDA only).
        device: Where the model runs.

    Raises:
        ConfigError: an unknown setting, or ``graph`` off CUDA.
    """
    if decode not in DECODE_MODES:
        raise ConfigError(f"decode: expected one of {', '.join(DECODE_MODES)}, got {decode!r}")
    graphs = dev.cuda_graphs_supported(device)
    if decode == "auto":
        return "graph" if graphs else "eager"
    if decode == "graph" and not graphs:
        raise ConfigError(f"decode: 'graph' needs a CUDA device, got {device}; use 'static'")
    return decode


def bucket(n: int, step: int, cap: int) -> int:
    """``n`` rounded up to a multiple of ``step``, at most ``cap`` (fewer distinct shapes)."""
    return min(cap, -(-n // step) * step)


class GraphedStep:
    """A fixed-shape step captured once as a CUDA graph; calling it replays the graph.

    Args:
        step: Reads and writes only tensors that live as long as this object (static inputs,
            caches, outputs); what it returns is ignored (write results into static outputs).
        device: The CUDA device.
        warmup: Eager runs on a side stream before capture (lazy initialisation, autotuning).
            They execute ``step`` for real: callers capture when a real step is due anyway.
    """

    def __init__(self, step: Callable[[], Any], device: torch.device, warmup: int = 2) -> None:
        self.step, self.device = step, device
        amp = dev.autocast_dtype(device)
        # autocast's cast cache lives until the caller's autocast region ends: a captured
        # kernel must not read a cached cast that is freed then
        nocache = (
            torch.autocast(device.type, dtype=amp, cache_enabled=False)
            if amp is not None
            else contextlib.nullcontext()
        )
        side = torch.cuda.Stream(device)
        side.wait_stream(torch.cuda.current_stream(device))
        with torch.cuda.stream(side), nocache:
            for _ in range(warmup):
                step()
        torch.cuda.current_stream(device).wait_stream(side)
        self.graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self.graph), nocache:
            step()

    def __call__(self) -> None:
        self.graph.replay()


class DecoderCache:
    """Per-module store of decoders (static caches + captured steps), at most ``size`` of them.

    Keyed by the caller's key (shapes, dtype, sampling settings) plus the addresses of the
    module's parameters: moving or replacing the weights makes every stored decoder stale, and
    they are dropped. Copies of a module (``copy.deepcopy``) start with an empty store.
    """

    def __init__(self, size: int = 4) -> None:
        self.size = size
        self._items: OrderedDict[Hashable, Any] = OrderedDict()
        self._weights: tuple[int, ...] = ()

    def get(self, module: nn.Module, key: Hashable, build: Callable[[], Any]) -> Any:
        """The decoder stored under ``key``, built with ``build()`` on a miss (LRU eviction)."""
        weights = tuple(p.data_ptr() for p in module.parameters())
        if weights != self._weights:
            self._items.clear()
            self._weights = weights
        if key in self._items:
            self._items.move_to_end(key)
            return self._items[key]
        value = self._items[key] = build()
        while len(self._items) > self.size:
            self._items.popitem(last=False)
        return value

    def clear(self) -> None:
        """Drop every stored decoder (frees their caches and graph memory pools)."""
        self._items.clear()

    def __len__(self) -> int:
        return len(self._items)

    def __deepcopy__(self, memo: dict[int, Any]) -> DecoderCache:
        return DecoderCache(self.size)
