"""The 30-second version of the load and soak benchmark (benchmarks/soak.py): 8 streams through
the full local stack of real processes, zero errors, every stream served, clean shutdown."""

from __future__ import annotations

from ferlite.app.load import run_load
from ferlite.app.stack import free_port_offset


def test_eight_streams_for_thirty_seconds(exported_models) -> None:
    result = run_load(exported_models, streams=8, duration=30.0, fps=4.0, port_offset=free_port_offset(), warmup=8.0)
    assert result["errors"] == 0, result["error_examples"]
    assert all(n >= 60 for n in result["frames_per_stream"]), result["frames_per_stream"]  # ~4 fps x 30 s each
    assert result["services_alive"] and set(result["exit_codes"].values()) == {0}
    # A 30-second run is mostly warm-up; the 5 % criterion belongs to the 10-minute soak.
    assert all(g < 0.25 for g in result["rss_growth"].values()), result["rss_growth"]
