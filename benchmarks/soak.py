#!/usr/bin/env python3
"""Load and soak: N camera streams through the full local stack for a while.

Pass criteria (printed, and the exit code): 0 errors; p99 stable (last window's p99 at most 1.5x
the first's); RSS of every service process grows under 5 % from the end of the warm-up to the end (Redis
and Triton, their children, are reported beside them: Redis grows with the data it holds).
Default 8 streams for 10 minutes; CI runs a 30-second version
(tests/test_soak.py). Writes benchmarks/results/soak.{json,md}.

Usage: python benchmarks/soak.py --models models [--streams 8] [--duration 600] [--fps 5]
"""

from __future__ import annotations

import argparse
import secrets
import sys
import tempfile
import threading
import time
from pathlib import Path

import cv2
import grpc
import numpy as np

from ferlite.model_metadata import PACK_DIR

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import itertools

from benchmarks.common import percentiles, write_results
from ferlite.sample_clip import _astronaut_frames, _classroom_frames
from ferlite.stack import LocalStack, StackConfig
from ferlite.v1 import facedetect_pb2 as pb
from ferlite.v1 import facedetect_pb2_grpc as pb_grpc

# One session per benchmark run: event ids stay unique across runs (see facedetect.proto).
SESSION = secrets.token_hex(8)

def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def tree_rss_kb(pid: int) -> int:
    """RSS of a process and all its descendants, from /proc."""
    total, todo = 0, [pid]
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    while todo:
        p = todo.pop()
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            continue
        todo += children.get(p, [])
    return total


def frames() -> list[bytes]:
    images = _astronaut_frames(10) + _classroom_frames(10)
    return [cv2.imencode(".jpg", cv2.cvtColor(f, cv2.COLOR_RGB2BGR))[1].tobytes() for f in images]


def run(models: Path, streams: int = 8, duration: float = 600.0, fps: float = 5.0, windows: int = 10,
        port_offset: int = 3000, warmup: float | None = None) -> dict:
    warmup = min(30.0, duration * 0.2) if warmup is None else warmup
    jpegs = frames()
    with tempfile.TemporaryDirectory() as tmp:
        config = StackConfig.with_port_offset(port_offset, model_dir=models, data_dir=Path(tmp))
        stack = LocalStack(config).start()
        target = f"127.0.0.1:{config.facedetect_port}"
        samples: list[tuple[float, float]] = []   # (seconds since start, latency ms)
        errors: list[str] = []
        per_stream = [0] * streams
        lock = threading.Lock()
        start = time.monotonic()
        stop_at = start + duration

        def stream(k: int) -> None:
            tracks: list[pb.Track] = []
            with grpc.insecure_channel(target) as channel:
                stub = pb_grpc.FaceDetectionStub(channel)
                i = 0
                while time.monotonic() < stop_at:
                    due = start + i / fps if fps > 0 else 0
                    if fps > 0 and time.monotonic() < due:
                        time.sleep(due - time.monotonic())
                    t0 = time.perf_counter()
                    try:
                        reply = stub.Process(pb.ProcessRequest(
                            frame=pb.Frame(encoded=jpegs[i % len(jpegs)]), classroom_id=f"room-{k % 2}",
                            stream_id=f"soak-{k}", frame_index=i, previous_tracks=tracks, record=True,
                            session_id=SESSION), timeout=10)
                        tracks = [pb.Track(track_id=f.track_id, box=f.box) for f in reply.faces]
                        ms = (time.perf_counter() - t0) * 1000
                        with lock:
                            samples.append((time.monotonic() - start, ms))
                            per_stream[k] += 1
                    except grpc.RpcError as exc:
                        with lock:
                            errors.append(f"{exc.code().name}: {exc.details()}")
                    i += 1

        threads = [threading.Thread(target=stream, args=(k,)) for k in range(streams)]
        for t in threads:
            t.start()
        time.sleep(min(warmup, duration))
        rss_start = {s.name: rss_kb(s.proc.pid) for s in stack.services}
        tree_start = {s.name: tree_rss_kb(s.proc.pid) for s in stack.services}
        for t in threads:
            t.join()
        rss_end = {s.name: rss_kb(s.proc.pid) for s in stack.services}
        tree_end = {s.name: tree_rss_kb(s.proc.pid) for s in stack.services}
        alive = not stack.dead()
        codes = stack.stop()
    edges = np.linspace(0, duration, windows + 1)
    by_window = []
    for lo, hi in itertools.pairwise(edges):
        lat = [ms for t, ms in samples if lo <= t < hi]
        if lat:
            by_window.append({"from_s": round(float(lo), 1), "to_s": round(float(hi), 1), **percentiles(lat)})
    growth = {k: (rss_end[k] - rss_start[k]) / rss_start[k] for k in rss_start}
    p99_ratio = by_window[-1]["p99_ms"] / by_window[0]["p99_ms"] if len(by_window) > 1 else 1.0
    return {
        "streams": streams, "duration_s": duration, "fps_per_stream": fps, "frames": len(samples),
        "frames_per_stream": per_stream, "errors": len(errors), "error_examples": errors[:5],
        "throughput_fps": len(samples) / duration, "latency": percentiles([ms for _, ms in samples]) if samples else {},
        "windows": by_window, "p99_last_over_first": p99_ratio, "rss_kb_after_warmup": rss_start,
        "rss_kb_end": rss_end, "rss_growth": growth, "with_children_kb_after_warmup": tree_start,
        "with_children_kb_end": tree_end, "services_alive": alive, "exit_codes": codes,
        "pass": {"no_errors": not errors, "p99_stable": p99_ratio <= 1.5,
                 "rss_growth_under_5pct": all(g < 0.05 for g in growth.values()),
                 "clean_exit": set(codes.values()) == {0}},
    }


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", type=Path, default=PACK_DIR, help="exported models [the model pack]")
    p.add_argument("--streams", type=int, default=8)
    p.add_argument("--duration", type=float, default=600.0, help="seconds [600]")
    p.add_argument("--fps", type=float, default=5.0, help="frames per second per stream; 0 = as fast as possible")
    p.add_argument("--port-offset", type=int, default=3000)
    args = p.parse_args()
    r = run(args.models, args.streams, args.duration, args.fps, port_offset=args.port_offset)
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
          f"{r['with_children_kb_end'][k] / 1024:.0f} MB |" for k in r["rss_growth"]], "",
        "The 5 % criterion applies to the service processes; the embedded Redis under the aggregator grows "
        "with the events it stores (bounded by retention_seconds and stream_maxlen).", "",
        "Criteria: " + ", ".join(f"{k} {'PASS' if v else 'FAIL'}" for k, v in r["pass"].items()), ""])
    write_results("soak", r, md)
    return 0 if all(r["pass"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())
