#!/usr/bin/env python3
"""Benchmark: frames end to end through the full local stack, per architecture, at 1, 4 and 8
concurrent streams; and the RSS of each service (with Triton and Redis) with all four models loaded.

One stack serves every run; the classifier's A/B policy file is rewritten to send all traffic to
one architecture at a time (it hot-reloads). Baseline in the same run: `Detect` alone (decode +
face detection, no classification or recording), so the ratio shows what classification and
recording add. Writes benchmarks/results/e2e.{json,md}.

Usage: python benchmarks/e2e_bench.py --models models [--seconds 15]
"""

from __future__ import annotations

import argparse
import json
import secrets
import sys
import tempfile
import threading
import time
from pathlib import Path

import grpc
import numpy as np

from ferlite.base.model_metadata import PACK_DIR

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.common import percentiles, write_results
from benchmarks.photos import FRAMES, photo_jpegs
from ferlite.app.client import CameraSession, CameraStream
from ferlite.app.load import tree_rss_kb
from ferlite.app.sample_clip import sample_jpegs
from ferlite.app.stack import LocalStack, StackConfig
from ferlite.base.architectures import ARCHITECTURES

# One session per benchmark run: event ids stay unique across runs (see facedetect.proto).
SESSION = secrets.token_hex(8)

def drive(target: str, streams: int, seconds: float, jpegs: list[bytes], detect_only: bool = False) -> dict:
    latencies: list[float] = []
    errors: dict[str, int] = {}
    lock = threading.Lock()
    stop_at = time.monotonic() + seconds

    def one(k: int) -> None:
        with CameraSession(target, "bench", f"e2e-{k}", retries=0, session_id=SESSION) as camera:
            i = 0
            while time.monotonic() < stop_at:
                frame = jpegs[(i + k) % len(jpegs)]
                t0 = time.perf_counter()
                try:
                    if detect_only:
                        camera.detect(frame)
                    else:
                        camera.process(frame)
                    with lock:
                        latencies.append((time.perf_counter() - t0) * 1000)
                except grpc.RpcError as exc:
                    with lock:
                        errors[exc.code().name] = errors.get(exc.code().name, 0) + 1
                i += 1

    threads = [threading.Thread(target=one, args=(k,)) for k in range(streams)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if not latencies:
        raise RuntimeError(f"no frame was answered: {errors}")
    return {**percentiles(latencies), "frames_per_s": len(latencies) / seconds, "errors": sum(errors.values()),
            "error_codes": errors}


def scrape(url: str) -> dict[tuple[str, tuple], float]:
    """A /metrics page as {(sample name, sorted labels): value}."""
    import urllib.request

    from prometheus_client.parser import text_string_to_metric_families

    with urllib.request.urlopen(url, timeout=5) as reply:
        text = reply.read().decode()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def total(samples: dict, name: str, **labels: str) -> float:
    """Sum of `name` over every series whose labels include `labels`."""
    return sum(v for (n, ls), v in samples.items() if n == name and labels.items() <= dict(ls).items())


def breakdown(stack: LocalStack, jpegs: list[bytes], frames: int = 120) -> dict:
    """Where one frame's time goes, hop by hop: one camera, `frames` frames sent one after the other,
    every service's (and Triton's) own counters read before and after. Means per frame, ms."""
    urls = {k: v for k, v in stack.addresses().items() if k.endswith("metrics")}
    before = {k: scrape(u) for k, u in urls.items()}
    client = []
    with CameraSession(f"127.0.0.1:{stack.config.facedetect_port}", "hops", "hops-1", retries=0,
                       session_id=SESSION) as camera:
        for i in range(frames):
            t0 = time.perf_counter()
            camera.process(jpegs[i % len(jpegs)])
            client.append((time.perf_counter() - t0) * 1000)
    after = {k: scrape(u) for k, u in urls.items()}

    def delta(service: str, name: str, **labels: str) -> float:
        return total(after[service], name, **labels) - total(before[service], name, **labels)

    def per_frame_ms(service: str, name: str, scale: float = 1000.0, **labels: str) -> float:
        return delta(service, name, **labels) * scale / frames

    fd, cl, ag, tr = "facedetect metrics", "classifier metrics", "aggregator metrics", "triton metrics"
    rows = {
        "client round trip (Process)": float(np.mean(client)),
        "facedetect: Process handler": per_frame_ms(fd, "ferlite_facedetect_rpc_duration_seconds_sum",
                                                    method="Process"),
        "facedetect: decode": per_frame_ms(fd, "ferlite_facedetect_pipeline_stage_duration_seconds_sum",
                                           stage="decode"),
        "facedetect: detect + crop": per_frame_ms(fd, "ferlite_facedetect_pipeline_stage_duration_seconds_sum",
                                                  stage="detect"),
        "facedetect: classify call (round trip)": per_frame_ms(
            fd, "ferlite_facedetect_pipeline_stage_duration_seconds_sum", stage="classify"),
        "classifier: Classify handler": per_frame_ms(cl, "ferlite_classifier_rpc_duration_seconds_sum",
                                                     method="Classify"),
        "classifier: Triton round trip": per_frame_ms(cl, "ferlite_classifier_inference_duration_seconds_sum"),
        "triton: request (server side)": per_frame_ms(tr, "nv_inference_request_duration_us_total", 1e-3),
        "triton: queue": per_frame_ms(tr, "nv_inference_queue_duration_us_total", 1e-3),
        "triton: compute (input + infer + output)": sum(
            per_frame_ms(tr, f"nv_inference_compute_{k}_duration_us_total", 1e-3)
            for k in ("input", "infer", "output")),
        "facedetect: record call (round trip)": per_frame_ms(
            fd, "ferlite_facedetect_pipeline_stage_duration_seconds_sum", stage="record"),
        "aggregator: RecordEvents handler": per_frame_ms(ag, "ferlite_aggregator_rpc_duration_seconds_sum",
                                                        method="RecordEvents"),
    }
    rows["= transport camera <-> facedetect"] = (rows["client round trip (Process)"]
                                                 - rows["facedetect: Process handler"])
    rows["= transport facedetect <-> classifier"] = (rows["facedetect: classify call (round trip)"]
                                                     - rows["classifier: Classify handler"])
    rows["= classifier own work (crops, resize, flips, calibration, metrics)"] = (
        rows["classifier: Classify handler"] - rows["classifier: Triton round trip"])
    rows["= Triton client + gRPC + Python-backend IPC"] = (rows["classifier: Triton round trip"]
                                                            - rows["triton: compute (input + infer + output)"]
                                                            - rows["triton: queue"])
    rows["= transport facedetect <-> aggregator"] = (rows["facedetect: record call (round trip)"]
                                                     - rows["aggregator: RecordEvents handler"])
    faces = delta(cl, "ferlite_classifier_batch_size_sum")
    return {"frames": frames, "faces_per_frame": faces / frames, "p50_client_ms": float(np.median(client)),
            "mean_ms": rows, "streamed": streamed(stack, jpegs, frames)}


def streamed(stack: LocalStack, jpegs: list[bytes], frames: int) -> dict:
    """The same camera and frames on ProcessStream (events recorded off the frame's path): the time
    from sending a frame to its labels, and how many frames were acknowledged stored by the end."""
    client = []
    with CameraSession(f"127.0.0.1:{stack.config.facedetect_port}", "hops", "hops-stream", retries=0,
                       session_id=SESSION) as camera:
        stream = CameraStream(camera)
        for i in range(frames):
            t0 = time.perf_counter()
            stream.process(jpegs[i % len(jpegs)])
            client.append((time.perf_counter() - t0) * 1000)
        acknowledged = stream.wait_acknowledged(30)
        stream.close()
    return {"mean_ms": float(np.mean(client)), "p50_ms": float(np.median(client)), "frames": frames,
            "stored": len(stream.stored), "all_acknowledged": acknowledged}


def breakdown_lines(b: dict) -> list[str]:
    lines = ["", f"Per-hop breakdown: one camera, {b['frames']} frames one after another ({b['faces_per_frame']:.1f} "
             f"faces per frame), every service's and Triton's own counters read before and after; mean ms per "
             f"frame (client p50 {b['p50_client_ms']:.1f} ms). Rows starting with = are differences of the rows "
             "above them: the cost of a hop itself.", "", "| hop | mean ms per frame |", "|---|---|"]
    lines += [f"| {k} | {v:.2f} |" for k, v in b["mean_ms"].items()]
    st = b.get("streamed")
    if st:
        lines += ["", f"The same camera and frames on `ProcessStream` (recording off the frame's path), same run: "
                  f"mean {st['mean_ms']:.2f} ms per frame from sending it to its labels (p50 {st['p50_ms']:.1f} ms) "
                  f"against {b['mean_ms']['client round trip (Process)']:.2f} ms with `Process`; "
                  f"{st['stored']} of {st['frames']} frames acknowledged stored by the end."]
    return [*lines, ""]


def write_breakdown(args: argparse.Namespace, b: dict) -> int:
    md = "\n".join([f"# Per-hop breakdown (`{args.models}`, {b['architecture']})", *breakdown_lines(b)])
    write_results("e2e_breakdown", {"models": str(args.models), **b}, md)
    return 0


def route_all_to(policy: Path, arch: str, target: str, jpegs: list[bytes], timeout: float = 30.0) -> None:
    """Send every frame to `arch` (the policy file, which the classifier polls) and wait until a
    frame with faces is answered by it: a cell is never measured on the previous arm."""
    from ferlite.app.client import CameraSession

    policy.write_text(json.dumps({"weights": {arch: 1}, "sticky": False}))
    deadline = time.monotonic() + timeout
    with CameraSession(target, "bench-room", "policy-probe", record=False) as camera:
        while time.monotonic() < deadline:
            for jpeg in jpegs:
                reply = camera.process(jpeg)
                if reply.faces:
                    if reply.model.architecture == arch:
                        return
                    break
            time.sleep(0.2)
    raise RuntimeError(f"the classifier did not switch to {arch} within {timeout:.0f} s")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", type=Path, default=PACK_DIR, help="exported models [the model pack]")
    p.add_argument("--seconds", type=float, default=15.0)
    p.add_argument("--port-offset", type=int, default=3100)
    p.add_argument("--breakdown-arch", default="mobilenet_v2", help="the architecture served during the breakdown")
    p.add_argument("--breakdown-only", action="store_true",
                   help="only the per-hop breakdown (writes benchmarks/results/e2e_breakdown.{json,md})")
    p.add_argument("--frames", choices=["photos", "sample"], default="photos",
                   help="photos: real photographs from registry packages (benchmarks/photos.py: a six-person "
                        "group, two portraits); sample: the demo clip's frames")
    args = p.parse_args()
    jpegs = photo_jpegs() if args.frames == "photos" else sample_jpegs()
    o = args.port_offset
    results: dict = {"per_architecture": {}}
    with tempfile.TemporaryDirectory() as tmp:
        policy = Path(tmp) / "policy.json"
        policy.write_text(json.dumps({"weights": {a: 1 for a in ARCHITECTURES}}))
        # A throughput measurement: lift the per-client frame-rate limit (every client here is 127.0.0.1).
        # and measure every architecture, the one the quality gate keeps from traffic too.
        unlimited = {"FERLITE_FACEDETECT_MAX_FPS_PER_CLIENT": "0", "FERLITE_FACEDETECT_MAX_FPS_PER_PEER": "0",
                     "FERLITE_CLASSIFIER_MIN_VAL_ACCURACY": "0"}
        stack = LocalStack(StackConfig.with_port_offset(o, model_dir=args.models, data_dir=Path(tmp) / "var",
                                                        policy_file=str(policy), extra_env=unlimited)).start()
        target = f"127.0.0.1:{stack.config.facedetect_port}"
        try:
            route_all_to(policy, args.breakdown_arch, target, jpegs)
            drive(target, 2, 3, jpegs)  # warm-up
            results["breakdown"] = {"architecture": args.breakdown_arch, **breakdown(stack, jpegs)}
            print("\n".join(breakdown_lines(results["breakdown"])), flush=True)
            if args.breakdown_only:
                return write_breakdown(args, results["breakdown"])
            results["detect_only"] = {n: drive(target, n, args.seconds, jpegs, detect_only=True) for n in (1, 4, 8)}
            print("detect only: " + ", ".join(f"{n} streams p50 {r['p50_ms']:.1f} ms, {r['frames_per_s']:.1f} fps"
                                              for n, r in results["detect_only"].items()), flush=True)
            for arch in ARCHITECTURES:
                route_all_to(policy, arch, target, jpegs)
                row = {n: drive(target, n, args.seconds, jpegs) for n in (1, 4, 8)}
                results["per_architecture"][arch] = row
                print(f"{arch:<20} " + ", ".join(
                    f"{n} streams p50 {r['p50_ms']:.1f} / p99 {r['p99_ms']:.1f} ms, {r['frames_per_s']:.1f} fps"
                    for n, r in row.items()), flush=True)
            results["rss_mb"] = {s.name: tree_rss_kb(s.proc.pid) / 1024 for s in stack.services}
        finally:
            stack.stop()
    base = results["detect_only"]
    lines = ["# End-to-end benchmark", "",
             f"Frames ({FRAMES[args.frames]}) through the full local stack (`{args.models}`, embedded Triton "
             "and Redis, separate processes), 2-core CPU, each client sending as fast as answered, "
             f"{args.seconds:g} s per cell. Baseline from the same run: `Detect` alone.", "",
             "| architecture | streams | p50 ms | p99 ms | frames/s | p50 vs Detect-only | errors |",
             "|---|---|---|---|---|---|---|"]
    for n, r in base.items():
        lines.append(f"| (Detect only) | {n} | {r['p50_ms']:.1f} | {r['p99_ms']:.1f} | {r['frames_per_s']:.1f} | 1.00 "
                     f"| {r['errors']} |")
    for arch, row in results["per_architecture"].items():
        for n, r in row.items():
            lines.append(f"| {arch} | {n} | {r['p50_ms']:.1f} | {r['p99_ms']:.1f} | {r['frames_per_s']:.1f} | "
                         f"{r['p50_ms'] / base[n]['p50_ms']:.2f} | {r['errors']} |")
    lines += breakdown_lines(results["breakdown"])
    lines += ["", "Resident memory with all four models loaded (service + its children):", "",
              "| service | RSS MB |", "|---|---|", *[f"| {k} | {v:.0f} |" for k, v in results["rss_mb"].items()], ""]
    md = "\n".join(lines)
    write_results("e2e", {"models": str(args.models), **results}, md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
