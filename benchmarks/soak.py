#!/usr/bin/env python3
"""Load and soak: N camera streams through the full local stack for a while.

Pass criteria (printed, and the exit code): 0 errors; p99 stable (the last window's p99 at most 1.5x
that of the first window after the warm-up); RSS grows under 5 % from the end of the warm-up to the
end, for every service process alone AND with its children (Triton and its stubs, Redis): both are
judged and reported, the second fails when Redis holds more events, and says so.
Default 8 streams for 10 minutes; CI runs a 30-second version
(tests/test_soak.py). Writes benchmarks/results/soak.{json,md}.

Usage: python benchmarks/soak.py --models models [--streams 8] [--duration 600] [--fps 5]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.common import write_results
from ferlite.app.load import run_load
from ferlite.base.model_metadata import PACK_DIR


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", type=Path, default=PACK_DIR, help="exported models [the model pack]")
    p.add_argument("--streams", type=int, default=8)
    p.add_argument("--duration", type=float, default=600.0, help="seconds [600]")
    p.add_argument("--fps", type=float, default=5.0, help="frames per second per stream; 0 = as fast as possible")
    p.add_argument("--port-offset", type=int, default=3000)
    args = p.parse_args()
    r = run_load(args.models, args.streams, args.duration, args.fps, port_offset=args.port_offset)
    rows = [f"| {w['from_s']:.0f}-{w['to_s']:.0f} s | {w['n']} | {w['p50_ms']:.1f} | {w['p99_ms']:.1f} |"
            for w in r["windows"]]
    md = "\n".join([
        "# Load and soak", "",
        f"{r['streams']} streams x {r['fps_per_stream']:g} fps for {r['duration_s']:.0f} s through the full local "
        f"stack (`{args.models}`), 2-core CPU: {r['frames']} frames ({r['throughput_fps']:.1f}/s), "
        f"{r['errors']} errors.", "",
        "| window | frames | p50 ms | p99 ms |", "|---|---|---|---|", *rows, "",
        "| service process | RSS after warm-up (MB) | RSS at end (MB) | growth | with children (Triton, Redis) |",
        "|---|---|---|---|---|",
        *[f"| {k} | {r['rss_kb_after_warmup'][k] / 1024:.1f} | {r['rss_kb_end'][k] / 1024:.1f} | "
          f"{100 * r['rss_growth'][k]:+.1f} % | {r['with_children_kb_after_warmup'][k] / 1024:.0f} -> "
          f"{r['with_children_kb_end'][k] / 1024:.0f} MB ({100 * r['tree_growth'][k]:+.1f} %) |"
          for k in r["rss_growth"]], "",
        "The 5 % criterion is judged twice: on each service process, and with its children (Triton and its "
        "stubs, Redis). The embedded Redis under the aggregator grows with the events it keeps (bounded by "
        "retention_seconds and stream_maxlen: about 690 bytes an event, benchmarks/results/redis_sizing.md), "
        "so the aggregator's figure with children grows with the run's length by design.", "",
        f"p99 stability: the last window against the first one after the {r['warmup_s']:.0f}-s warm-up: "
        f"{r['p99_last_over_first_after_warmup']:.2f}x (at most 1.5x).", "",
        "Criteria: " + ", ".join(f"{k} {'PASS' if v else 'FAIL'}" for k, v in r["pass"].items()), ""])
    write_results("soak", r, md)
    return 0 if all(r["pass"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())
