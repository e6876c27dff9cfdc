"""Load on a local stack: N camera streams for a while, with latency per window and process memory.

The engine of the soak benchmark (benchmarks/soak.py) and of its 30-second test; the streams are
`CameraSession`s, the same client `ferlite stream` uses.
"""

from __future__ import annotations

import itertools
import secrets
import tempfile
import threading
import time
from pathlib import Path

import grpc
import numpy as np

from .client import CameraSession
from .sample_clip import sample_jpegs
from .stack import LocalStack, StackConfig


def percentiles(samples_ms: list[float]) -> dict[str, float]:
    a = np.asarray(samples_ms)
    return {"p50_ms": float(np.percentile(a, 50)), "p90_ms": float(np.percentile(a, 90)),
            "p99_ms": float(np.percentile(a, 99)), "mean_ms": float(a.mean()), "n": len(a)}


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def process_children() -> dict[int, list[tuple[int, str]]]:
    """Every process's children, from /proc/*/stat: parent pid -> [(pid, command name)]."""
    children: dict[int, list[tuple[int, str]]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
                ppid = int(stat.rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append((int(entry.name), stat[stat.index("(") + 1:stat.rindex(")")]))
    return children


def tree_rss_kb(pid: int) -> int:
    """RSS of a process and all its descendants, from /proc."""
    total, todo = 0, [pid]
    children = process_children()
    while todo:
        p = todo.pop()
        try:
            total += rss_kb(p)
        except OSError:
            continue
        todo += [child for child, _ in children.get(p, [])]
    return total


def run_load(models: Path, streams: int = 8, duration: float = 600.0, fps: float = 5.0, windows: int = 10,
        port_offset: int = 3000, warmup: float | None = None) -> dict:
    """N camera streams through a fresh local stack for `duration` seconds: latency per time window,
    errors, RSS of each service after the warm-up and at the end, exit codes (the soak's criteria)."""
    warmup = min(30.0, duration * 0.2) if warmup is None else warmup
    jpegs = sample_jpegs()
    session = secrets.token_hex(8)  # one per run: event ids stay unique across runs
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
            with CameraSession(target, f"room-{k % 2}", f"soak-{k}", retries=0, session_id=session) as camera:
                i = 0
                while time.monotonic() < stop_at:
                    due = start + i / fps if fps > 0 else 0
                    if fps > 0 and time.monotonic() < due:
                        time.sleep(due - time.monotonic())
                    t0 = time.perf_counter()
                    try:
                        camera.process(jpegs[i % len(jpegs)])
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
    tree_growth = {k: (tree_end[k] - tree_start[k]) / tree_start[k] for k in tree_start}
    # Stability is judged after the warm-up: the first full window that starts once it is over,
    # against the last window (a warm-up window's slow first calls would flatter the ratio).
    settled = [w for w in by_window if w["from_s"] >= warmup] or by_window
    p99_ratio = settled[-1]["p99_ms"] / settled[0]["p99_ms"] if len(settled) > 1 else 1.0
    return {
        "streams": streams, "duration_s": duration, "fps_per_stream": fps, "frames": len(samples),
        "frames_per_stream": per_stream, "errors": len(errors), "error_examples": errors[:5],
        "throughput_fps": len(samples) / duration, "latency": percentiles([ms for _, ms in samples]) if samples else {},
        "windows": by_window, "warmup_s": warmup, "p99_last_over_first_after_warmup": p99_ratio,
        "rss_kb_after_warmup": rss_start, "tree_growth": tree_growth,
        "rss_kb_end": rss_end, "rss_growth": growth, "with_children_kb_after_warmup": tree_start,
        "with_children_kb_end": tree_end, "services_alive": alive, "exit_codes": codes,
        "pass": {"no_errors": not errors, "p99_stable": p99_ratio <= 1.5,
                 "rss_growth_under_5pct": all(g < 0.05 for g in growth.values()),
                 # with children (Triton and its stubs, Redis): Redis grows with the events it keeps
                 "rss_growth_with_children_under_5pct": all(g < 0.05 for g in tree_growth.values()),
                 "clean_exit": set(codes.values()) == {0}},
    }
