"""Token documents: time splits keep context, token files round-trip with their metadata."""

from __future__ import annotations

import pandas as pd
import pytest

from alphaforge.errors import DataError
from alphaforge.models.token_streams import TokenStreams, read_tokens, write_tokens


def streams_of(docs: list[list[int]]) -> TokenStreams:
    frames = [
        pd.DataFrame(
            {
                "symbol": f"S{i}",
                "token": d,
                "timestamp": pd.date_range("2021-01-01", periods=len(d)),
            }
        )
        for i, d in enumerate(docs)
    ]
    return TokenStreams.from_frame(pd.concat(frames).sample(frac=1.0, random_state=0))


def test_streams_split_by_time() -> None:
    s = streams_of([[1, 2, 3, 4, 5], [6, 7], [8, 9, 10, 11]])
    assert s.symbols == ("S0", "S1", "S2") and s.tokens.tolist() == list(range(1, 12))
    train, valid = s.split(pd.Timestamp("2021-01-03"))
    assert train.tokens.tolist() == [1, 2, 3, 6, 7, 8, 9, 10]
    assert valid.symbols == ("S0", "S2") and valid.target_from.tolist() == [3, 3]
    assert valid.tokens[valid.target_mask()].tolist() == [4, 5, 11]
    assert valid.previous().tolist() == [-1, 1, 2, 3, 4, -1, 8, 9, 10]
    with pytest.raises(DataError, match="need both > 0"):
        s.split(pd.Timestamp("2030-01-01"))


def test_token_file_round_trip(tmp_path) -> None:
    s = streams_of([[1, 2, 3], [4, 5]])
    path = write_tokens(tmp_path / "t.parquet", s.to_frame(), {"vocab_size": 8})
    frame, meta = read_tokens(path)
    assert meta == {"vocab_size": 8}
    assert TokenStreams.from_frame(frame).tokens.tolist() == [1, 2, 3, 4, 5]
    with pytest.raises(DataError, match="cannot read tokens"):
        read_tokens(tmp_path / "nope.parquet")
