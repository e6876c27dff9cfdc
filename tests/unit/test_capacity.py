"""Issue 27 (capacity): the chart's defaults fit a school of 20 classrooms. With the per-event
costs measured on a real Redis (benchmarks/redis_sizing.py: the marker and the stream entry) and
the formula of docs/kubernetes.md, a school's events (one camera a classroom, 1 frame/s, 25 faces:
500 faces/s, 7-hour days, 7 days kept) stay under the 80 % of `redis.maxmemory` where
FerliteRedisMemoryHigh fires. The defaults before (2-day markers, 200,000 events a classroom)
needed ~29 GB for the same school against 640 MB."""

from __future__ import annotations

import json

import yaml

from tests.support.procs import ROOT

CLASSROOMS, FACES_PER_SECOND, MINUTE_BYTES = 20, 500.0, 300.0


def test_the_default_redis_holds_a_twenty_classroom_school() -> None:
    values = yaml.safe_load((ROOT / "helm" / "ferlite" / "values.yaml").read_text())
    measured = json.loads((ROOT / "benchmarks" / "results" / "redis_sizing.json").read_text())
    agg = values["aggregator"]
    markers = measured["marker_bytes_per_event"] * FACES_PER_SECOND * agg["eventMarkerSeconds"]
    streams = measured["retained_bytes_per_event"] * CLASSROOMS * agg["streamMaxlen"]
    minutes = CLASSROOMS * (7 * 60) * (agg["retentionSeconds"] / 86400) * MINUTE_BYTES
    need = markers + streams + minutes
    maxmemory = int(values["redis"]["maxmemory"].removesuffix("mb")) * 2**20
    assert need < 0.8 * maxmemory, f"{need / 2**20:.0f} MiB needed, maxmemory {maxmemory / 2**20:.0f} MiB"
    # and Redis's pod may hold maxmemory plus the headroom a rewrite's fork needs
    limit = values["redis"]["resources"]["limits"]["memory"]
    assert limit.endswith("Gi") and float(limit[:-2]) * 1024 >= 1.5 * maxmemory / 2**20
