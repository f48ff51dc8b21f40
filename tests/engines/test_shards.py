"""Networks from shards: windows streamed from a feature dataset, each DDP rank its own parts,
gathered by the in-memory window code (equal windows), trained by ``fit_torch`` under gloo."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from alphaforge.data import synthetic_panel
from alphaforge.engines.dask_features import build_feature_dataset
from alphaforge.engines.shards import ShardWindowSource, assign_parts
from alphaforge.errors import DataError
from alphaforge.features import build_features
from alphaforge.labels import LabelSpec, make_label
from alphaforge.models.windows import SequenceLayout, Standardizer, WindowSource

SCRIPT = Path(__file__).with_name("_shard_script.py")
COLUMNS = ["ret_1", "ret_5", "rv_20", "cs_rank_ret_1"]


@pytest.fixture(scope="module")
def dataset(tmp_path_factory, client) -> tuple[Path, object]:
    panel = synthetic_panel(n_symbols=10, n_bars=300, seed=6, gaps=True)
    root = tmp_path_factory.mktemp("shards") / "features"
    build_feature_dataset(panel, root, label=LabelSpec(), partition_rows=700, client=client)
    return root, panel


def test_windows_equal_the_in_memory_ones(dataset) -> None:
    root, panel = dataset
    stamps = panel.index.get_level_values("timestamp").unique()
    span = (stamps[60], stamps[200])
    X = build_features(panel)[COLUMNS]
    y = make_label(panel, "forward_return", 1)
    ts = X.index.get_level_values("timestamp")
    history = np.asarray(ts <= span[1])
    sample = np.asarray(ts >= span[0])[history] & y[history].notna().to_numpy()
    standardizer = Standardizer.fit(X[history][sample])
    src = ShardWindowSource(root, 12, span=span, features=COLUMNS, standardizer=standardizer)
    assert src.rank_local and len(src) == int(sample.sum())
    # the in-memory windows of the same samples, in the shard source's sample order
    layout = SequenceLayout.build(X[history], standardizer)
    rows = X[history].index.get_indexer(src.index)
    ref = WindowSource(layout, 12, rows=rows, y=y[history].to_numpy()[rows])
    idx = torch.arange(len(src))
    got, want = src.batch(idx), ref.batch(idx)
    torch.testing.assert_close(got["x"], want["x"], rtol=0, atol=0)
    torch.testing.assert_close(got["y"], want["y"], rtol=0, atol=0)
    # fitted here, the standardiser is the in-memory one (up to the order of the sums)
    own = ShardWindowSource(root, 12, span=span, features=COLUMNS).standardizer
    np.testing.assert_allclose(own.mean, standardizer.mean, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(own.std, standardizer.std, rtol=1e-12)


def test_parts_are_dealt_by_size() -> None:
    assert assign_parts([5, 9, 4, 4, 1], 2) == [[1, 3], [0, 2, 4]]  # 13 and 10 rows
    assert sorted(sum(assign_parts([3] * 7, 3), [])) == list(range(7))
    with pytest.raises(DataError, match="2 dataset parts for 3 ranks"):
        assign_parts([1, 1], 3)


def test_unknown_column_or_no_dataset(dataset, tmp_path: Path) -> None:
    root, _ = dataset
    with pytest.raises(DataError, match="not in the dataset"):
        ShardWindowSource(root, 4, features=["nope"])
    with pytest.raises(DataError, match="not a feature dataset"):
        ShardWindowSource(tmp_path, 4)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_ddp_ranks_train_on_their_own_shards(dataset, tmp_path: Path) -> None:
    root, panel = dataset
    stamps = panel.index.get_level_values("timestamp").unique()
    port, out = _free_port(), tmp_path / "rank"
    procs = []
    for r in range(2):  # what torchrun --standalone --nproc_per_node 2 exports
        env = {
            **os.environ,
            "OMP_NUM_THREADS": "1",
            "RANK": str(r),
            "LOCAL_RANK": str(r),
            "WORLD_SIZE": "2",
            "MASTER_ADDR": "127.0.0.1",
            "MASTER_PORT": str(port),
        }
        args = [sys.executable, str(SCRIPT), str(root), str(out), str(stamps[60]), str(stamps[250])]
        procs.append(
            subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        )
    for p in procs:
        text, _ = p.communicate(timeout=180)
        assert p.returncode == 0, text.decode()
    ranks = [json.loads(Path(f"{out}.{r}.json").read_text()) for r in range(2)]
    manifest = json.loads((root / "_dataset.json").read_text())
    assert not set(ranks[0]["parts"]) & set(ranks[1]["parts"])  # each rank its own parts
    assert sorted(ranks[0]["parts"] + ranks[1]["parts"]) == [p["file"] for p in manifest["parts"]]
    assert not set(ranks[0]["symbols"]) & set(ranks[1]["symbols"])
    assert len(ranks[0]["symbols"]) + len(ranks[1]["symbols"]) == 10
    assert ranks[0]["n"] == ranks[1]["n"] and ranks[0]["steps"] == ranks[1]["steps"] > 0
    np.testing.assert_array_equal(ranks[0]["mean"], ranks[1]["mean"])  # one global standardiser
    assert ranks[0]["valid_loss"] == ranks[1]["valid_loss"]  # all-reduced over both ranks
    assert np.isfinite(ranks[0]["valid_loss"]).all()
