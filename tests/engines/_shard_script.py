"""One torchrun-style rank training on its own shards of a feature dataset (the DDP test).

Usage: python _shard_script.py DATASET OUT FIRST LAST

Joins the gloo group when ``WORLD_SIZE`` > 1, builds a ``ShardWindowSource`` over the samples
from FIRST to LAST (timestamps), trains a tiny net for 2 epochs with ``fit_torch`` and writes
``{"symbols", "n", "parts", "mean", "history"}`` of this rank to ``OUT.<rank>.json``.
"""

from __future__ import annotations

import json
import sys

import torch
from torch import nn

from alphaforge.engines.shards import ShardWindowSource
from alphaforge.models.training import TrainConfig, fit_torch
from alphaforge.utils.device import distributed_context, rank


def loss_fn(net: nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    return nn.functional.mse_loss(net(batch["x"]).squeeze(-1), batch["y"])


def main() -> None:
    dataset, out, first, last = sys.argv[1:5]
    torch.set_num_threads(1)
    with distributed_context("gloo"):
        source = ShardWindowSource(dataset, 8, span=(first, last), features=["ret_1", "rv_20"])
        torch.manual_seed(0)
        net = nn.Sequential(nn.Flatten(), nn.Linear(8 * 3, 1))  # (B, T, C) -> (B, 1)
        config = TrainConfig(batch_size=32, max_epochs=2, lr=1e-3, device="cpu", patience=0)
        history = fit_torch(net, source, loss_fn, config, valid=source, seed=1)
        record = {
            "symbols": source.symbols,
            "n": len(source),
            "parts": source.parts,
            "mean": source.standardizer.mean.tolist(),
            "steps": history.steps,
            "valid_loss": history.valid_loss,
        }
        with open(f"{out}.{rank()}.json", "w", encoding="utf-8") as fh:
            json.dump(record, fh)


if __name__ == "__main__":
    main()
