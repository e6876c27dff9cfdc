"""`ferlite stream`: send a video source through the pipeline, one Process call per frame.

Tracks faces across frames under pseudonymous ids (the service matches boxes to the tracks we
send back), smooths each track's expression over time (exponential moving average of the class
probabilities), and says "uncertain" instead of guessing when the smoothed confidence is low.
Retries a frame on UNAVAILABLE with the same frame index, so its events never count twice.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import grpc
import numpy as np
from tqdm import tqdm

from ferlite.base.cli import HelpFormatter
from ferlite.base.event_rules import safe_name
from ferlite.base.labels import EMOTIONS
from ferlite.services.common.channels import ChannelSecurity, open_channel
from ferlite.v1 import aggregator_pb2, aggregator_pb2_grpc
from ferlite.v1 import facedetect_pb2 as pb

from . import readable, runs
from .client import CameraSession, CameraStream, Smoother
from .stack import StackConfig


@dataclass
class StreamStats:
    frames: int = 0
    faces: int = 0
    recorded_faces: int = 0
    failed_frames: int = 0
    labels: Counter = field(default_factory=Counter)
    models: Counter = field(default_factory=Counter)  # faces labelled by each architecture
    tracks: set = field(default_factory=set)
    started: float = field(default_factory=time.monotonic)

    def to_dict(self) -> dict:
        seconds = time.monotonic() - self.started
        return {"frames": self.frames, "faces": self.faces, "recorded_faces": self.recorded_faces,
                "failed_frames": self.failed_frames, "tracks": len(self.tracks),
                "smoothed_labels": {k: self.labels.get(k, 0) for k in [*EMOTIONS, "uncertain"]},
                "models": dict(self.models.most_common()),
                "seconds": round(seconds, 2), "fps": round(self.frames / seconds, 2) if seconds else 0.0}


def open_source(source: str) -> cv2.VideoCapture:
    capture = cv2.VideoCapture(int(source)) if source.isdigit() else cv2.VideoCapture(source)
    if not capture.isOpened():
        raise FileNotFoundError(f"cannot open video source {source!r} (a file, a camera index or an RTSP URL)")
    return capture


def frames(capture: cv2.VideoCapture, fps: float, live: bool, max_frames: int | None):
    """(index, timestamp, BGR frame) at about `fps` frames per second of video."""
    src_fps = capture.get(cv2.CAP_PROP_FPS) or 0.0
    step = max(1, round(src_fps / fps)) if (src_fps > 0 and not live) else 1
    start_wall = time.time()
    n = read = 0
    while max_frames is None or n < max_frames:
        ok, frame = capture.read()
        if not ok:
            return
        read += 1
        if (read - 1) % step:
            continue
        if live:
            due = start_wall + n / fps
            if time.time() < due:
                time.sleep(due - time.time())
            timestamp = time.time()
        else:
            timestamp = start_wall + capture.get(cv2.CAP_PROP_POS_MSEC) / 1000.0
        yield n, timestamp, frame
        n += 1


MODEL_TAGS = {"mobilenet_v2": "MNv2", "mobilenet_v3_small": "MNv3-S", "mobilenet_v3_large": "MNv3-L",
              "efficientnet_b0": "EffB0"}


# Label colours on the dark band: contrast ratios 12:1 (certain) and 9:1 (uncertain), above WCAG's 4.5:1.
LABEL_BAND, CERTAIN, UNCERTAIN = (20, 20, 20), (80, 220, 80), (190, 190, 190)


def label_scale(frame_height: int) -> float:
    """Font scale for a frame: about 2.5 % of its height per line (a 1080p frame gets ~25 px text,
    not the 13 px of a fixed scale), never below what a 480p frame gets."""
    return max(0.55, 0.9 * frame_height / 1080)


def annotate(frame: np.ndarray, faces: list[tuple[pb.LabelledFace, str, float]], model: str = "") -> np.ndarray:
    """Boxes and labels drawn on a copy of the frame; each label names the model that answered, on a
    dark band so it stays legible on any background, sized to the frame, kept whole inside it (on a
    frame narrower than the text, the text shrinks to fit)."""
    out = frame.copy()
    h, w = out.shape[:2]
    tag = MODEL_TAGS.get(model, model)
    base_scale = label_scale(h)
    for face, label, confidence in faces:
        b = face.box
        p0, p1 = (int(b.x), int(b.y)), (int(b.x + b.width), int(b.y + b.height))
        colour = UNCERTAIN if label == "uncertain" else CERTAIN
        cv2.rectangle(out, p0, p1, colour, max(2, round(base_scale * 2)))
        text = f"{label} {confidence:.2f}" + (f" [{tag}]" if tag else "")
        scale = base_scale
        while True:  # on a frame narrower than the label, shrink the text rather than cut it
            thickness = max(1, round(scale * 2.2))
            (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, thickness)
            pad = max(2, th // 5)
            if tw + 2 * pad + 2 <= w or scale < 0.2:
                break
            scale *= 0.9
        x = min(max(0, p0[0]), max(0, w - 1 - tw - 2 * pad))  # (the band's right edge is drawn too)
        y = p0[1] - 2 * pad if p0[1] - th - base - 3 * pad >= 0 else min(h - base - pad, p1[1] + th + 2 * pad)
        y = max(y, th + pad)
        cv2.rectangle(out, (x, y - th - pad), (x + tw + 2 * pad, y + base), LABEL_BAND, cv2.FILLED)
        cv2.putText(out, text, (x + pad, y), cv2.FONT_HERSHEY_SIMPLEX, scale, colour, thickness, cv2.LINE_AA)
    return out


def private_file(path: str | Path) -> None:
    """Create (or truncate) `path` readable by its owner only, before a writer fills it with face
    pixels: opening an existing file keeps its mode, whatever the umask."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, 0o600)
    finally:
        os.close(fd)


# A refused credential fails every frame alike: the stream stops at the first one instead of
# printing the same refusal once per frame.
REFUSED = (grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED)


class CredentialRefused(Exception):
    """The service refused this client's token (or its classroom for that token)."""

    def __init__(self, exc: grpc.RpcError) -> None:
        super().__init__(f"{exc.code().name}: {exc.details()}")
        self.code = exc.code()


def run_stream(source: str, classroom: str, target: str, fps: float = 5.0, stream_id: str = "",
               max_frames: int | None = None, output: str = "", record: bool = True, alpha: float = 0.6,
               uncertain_below: float = 0.0, progress: bool = True,
               security: ChannelSecurity | None = None, off_path: bool = True) -> StreamStats:
    """Send a video's frames to face detection. `off_path` (when recording): on one ProcessStream,
    so each frame's labels come back before its events are stored (on 2 cores 16 vs 21 ms a frame,
    benchmarks/e2e_bench.py); the run ends once every frame is acknowledged stored (frames of a
    broken stream are sent again on a new one). Else one Process call per frame."""
    capture = open_source(source)
    live = source.isdigit() or "://" in source
    stream_id = stream_id or safe_name(f"{classroom}-{Path(source).stem if not live else 'live'}")
    smoother = Smoother(alpha, uncertain_below)
    stats = StreamStats()
    writer = None
    total = int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) if not live else 0
    src_fps = capture.get(cv2.CAP_PROP_FPS) or fps
    expected = (total // max(1, round(src_fps / fps))) if total else None
    if max_frames and expected:
        expected = min(expected, max_frames)
    with CameraSession(target, classroom, stream_id, security=security, record=record) as camera:
        stream = CameraStream(camera) if off_path and record else None
        faces_of: dict[int, int] = {}  # frame index -> faces, to count what the acks say is stored
        bar = tqdm(total=expected, unit="frame", disable=not progress, desc=f"streaming {stream_id}")
        for index, timestamp, frame in frames(capture, fps, live, max_frames):
            try:
                reply = stream.process(frame, timestamp) if stream else camera.process(frame, timestamp)
            except ValueError:
                stats.failed_frames += 1
                continue
            except (grpc.RpcError, TimeoutError) as exc:
                if isinstance(exc, grpc.RpcError) and exc.code() in REFUSED:
                    raise CredentialRefused(exc) from None  # no later frame would pass: stop at once
                stats.failed_frames += 1
                detail = f"{exc.code().name}: {exc.details()}" if isinstance(exc, grpc.RpcError) else str(exc)
                tqdm.write(f"frame {index}: {detail}", file=sys.stderr)
                if stream:
                    stream.reopen()  # the frames it had not acknowledged go again on a new stream
                continue
            stats.frames += 1
            stats.faces += len(reply.faces)
            faces_of[camera.index - 1] = len(reply.faces)
            stats.recorded_faces += len(reply.faces) if reply.recorded else 0
            if reply.faces:
                stats.models[reply.model.architecture or "unknown"] += len(reply.faces)
            shown = []
            for face in reply.faces:
                label, confidence = smoother.update(face.track_id, face.classification.probabilities,
                                                    face.uncertain)
                stats.labels[label] += 1
                stats.tracks.add(face.track_id)
                shown.append((face, label, confidence))
            if output:
                if writer is None:
                    h, w = frame.shape[:2]
                    private_file(output)  # it shows faces: nobody else may read it
                    writer = cv2.VideoWriter(output, cv2.VideoWriter_fourcc(*"mp4v"), fps, (w, h))
                writer.write(annotate(frame, shown, reply.model.architecture))
            bar.update(1)
            bar.set_postfix(faces=stats.faces, fps=f"{stats.frames / (time.monotonic() - stats.started):.1f}")
        bar.close()
        if stream:
            if not stream.wait_acknowledged(30):
                tqdm.write(f"{len(stream.pending)} frame(s) not acknowledged stored: "
                           f"{sorted(stream.pending)[:10]}", file=sys.stderr)
            stream.close()
            stats.recorded_faces = sum(faces_of.get(i, 0) for i in stream.stored)
    capture.release()
    if writer is not None:
        writer.release()
    return stats


# Summaries end this far past now: file sources stamp frames up to a few seconds ahead of the wall
# clock, and a summary that ended at the current minute would miss the run's last events.
SUMMARY_LEAD_SECONDS = 60.0


def classroom_summary(target: str, classroom: str, window: float,
                      security: ChannelSecurity | None = None) -> aggregator_pb2.ClassroomSummary:
    end = time.time() + SUMMARY_LEAD_SECONDS
    with open_channel(target, security) as channel:
        stub = aggregator_pb2_grpc.AggregatorStub(channel)
        return stub.GetSummary(aggregator_pb2.SummaryRequest(classroom_id=classroom, window_seconds=window,
                                                             end_time=end), timeout=10)


def aggregator_beside(target: str) -> str:
    """The aggregator of the stack whose face detection is `target` (same host, same port offset)."""
    from .stack import StackConfig

    host, _, port = target.rpartition(":")
    d = StackConfig()
    return f"{host}:{int(port) + d.aggregator_port - d.facedetect_port}" if port.isdigit() else ""


def call_failed(prog: str, exc: Exception) -> int:
    """One line on stderr for a failed call to a service, and the exit code: 2 when the caller's
    input or credential is at fault (INVALID_ARGUMENT, UNAUTHENTICATED, PERMISSION_DENIED), else 1."""
    if isinstance(exc, grpc.RpcError):
        print(f"{prog}: error: {exc.code().name}: {exc.details()}", file=sys.stderr)
        return 2 if exc.code() in (grpc.StatusCode.INVALID_ARGUMENT, *REFUSED) else 1
    print(f"{prog}: error: {exc}", file=sys.stderr)
    return 1


def check_reachable(target: str, timeout: float = 3.0, security: ChannelSecurity | None = None) -> None:
    """One clear line when nothing listens at `target`, instead of an UNAVAILABLE per frame."""
    with open_channel(target, security) as channel:
        try:
            grpc.channel_ready_future(channel).result(timeout=timeout)
        except grpc.FutureTimeoutError:
            raise ConnectionError(f"nothing answers at {target}: start the stack with `ferlite up` "
                                  "(or pass the HOST:PORT of a running service)") from None


def add_access_flags(p: argparse.ArgumentParser, token_name: str = runs.ADMIN_TOKEN, who: str = "the stack's admin "
                     "token (summaries)") -> None:
    """How a client finds the local stack, proves who it is and checks the services: the stack's
    port offset, bearer token and TLS/mTLS files."""
    p.add_argument("--port-offset", type=int, default=None,
                   help="the local stack started with `ferlite up --port-offset N`: its addresses and token files "
                        "are found from any folder (default: the stack at offset 0, else ./var)")
    p.add_argument("--token", default="", help=f"bearer token sent on every call: {who} (default: $FERLITE_TOKEN, "
                                               "else the one in --token-file)")
    p.add_argument("--token-file", default=None,
                   help=f"token file written by `ferlite up` (default: the stack's run folder's {token_name})")
    p.set_defaults(token_name=token_name)
    p.add_argument("--tls-ca", default="", help="CA (PEM) to verify the services: TLS (scripts/make_certs.sh)")
    p.add_argument("--tls-cert", default="", help="client certificate (PEM) for mTLS")
    p.add_argument("--tls-key", default="", help="client key (PEM) for mTLS")
    p.add_argument("--tls-server-name", default="", help="name to check in the server certificate")


def find_stack(args: argparse.Namespace, prog: str) -> tuple[StackConfig, Path]:
    """The local stack the client means: its ports and run folder (from the running stacks' registry,
    so from any folder; ./var or ./var-N when it is not listed), and --token-file filled in from it.
    When --port-offset names a stack that is not running: one line, exit 1."""
    offset = args.port_offset or 0
    stack = runs.locate(offset)
    if stack is None and args.port_offset is not None:
        print(f"{prog}: error: no ferlite stack is running with --port-offset {offset} (`ferlite status` lists the "
              f"running ones; start one with `{runs.command('up', offset)}`)", file=sys.stderr)
        raise SystemExit(1)
    data = stack.data if stack else runs.default_data_dir(offset)
    if args.token_file is None:
        args.token_file = str(data / args.token_name)
    return StackConfig.with_port_offset(offset), data


def access_from(args: argparse.Namespace) -> ChannelSecurity:
    """The flags of `add_access_flags` as the channel settings every call of this client uses."""
    if (args.tls_cert or args.tls_key) and not args.tls_ca:
        raise SystemExit("--tls-cert and --tls-key need --tls-ca")
    return ChannelSecurity(args.tls_ca, args.tls_cert, args.tls_key, args.tls_server_name,
                           token=resolve_token(args.token, args.token_file))


def resolve_token(token: str, token_file: str) -> str:
    """--token, else FERLITE_TOKEN, else the file (`ferlite up` writes auth-token in its run folder)."""
    if token or os.environ.get("FERLITE_TOKEN"):
        return token or os.environ["FERLITE_TOKEN"]
    path = Path(token_file)
    return path.read_text().strip() if token_file and path.is_file() else ""


def print_summary(stats: StreamStats, summary: aggregator_pb2.ClassroomSummary | None) -> None:
    """This run's figures (its expressions, smoothed per face over time, as shares), then the classroom's
    stored history as one line that says what it covers."""
    d = stats.to_dict()
    print(f"\nthis run: {d['frames']} frames ({d['failed_frames']} failed), {d['faces']} faces, {d['tracks']} "
          f"tracks, {d['fps']} frames/s")
    print("this run's expressions (smoothed per face): " + readable.shares(d["smoothed_labels"]))
    if d["models"]:
        total = sum(d["models"].values())
        print("answered by: " + ", ".join(f"{arch} {n / total:.0%} ({n} faces)" for arch, n in d["models"].items()))
    if summary is not None:
        print(readable.classroom_line(summary))


def main(argv: Sequence[str]) -> int:
    p = argparse.ArgumentParser(prog="ferlite stream", description=__doc__,
                                formatter_class=HelpFormatter)
    p.add_argument("--source", required=True, help="video file, camera index (0) or RTSP URL")
    p.add_argument("--classroom", required=True, help="classroom id the events are stored under")
    p.add_argument("--target", default=None,
                   help="face-detection service (default: the local stack's, 127.0.0.1:50051 at offset 0)")
    p.add_argument("--aggregator", default=None,
                   help="aggregator, for the final summary (default: the one beside --target); '' skips the summary")
    p.add_argument("--stream-id", default="", help="stream id (default: <classroom>-<file name>)")
    p.add_argument("--fps", type=float, default=5.0, help="frames per second sent")
    p.add_argument("--max-frames", type=int, help="stop after N frames")
    p.add_argument("--output", default="", help="write an annotated video (MP4) here")
    p.add_argument("--smoothing", type=float, default=0.6, help="EMA weight of the past, 0..1")
    p.add_argument("--uncertain-below", type=float, default=0.0,
                   help="smoothed confidence under this: uncertain (0: the served model's own threshold)")
    p.add_argument("--no-record", dest="record", action="store_false", help="classify only, store nothing")
    p.add_argument("--record-off-path", action=argparse.BooleanOptionalAction, default=True,
                   help="one ProcessStream: each frame's labels come back before its events are stored, which "
                        "the service acknowledges after; the run ends when every frame is acknowledged "
                        "(default; --no-record-off-path: one Process call per frame, answered once stored)")
    p.add_argument("--json", action="store_true",
                   help="print the run's summary as JSON on stdout instead of text (as `ferlite summary --json`)")
    p.add_argument("--json-file", default="", metavar="PATH", help="also write the run's JSON summary to PATH")
    add_access_flags(p, runs.CAMERA_TOKEN, "a camera token, good for its classrooms' frames only")
    p.add_argument("--summary-token-file", default=None,
                   help="admin token file for the final summary (a camera token reads nothing; without this file "
                        "the --token is tried) (default: the stack's run folder's auth-token)")
    args = p.parse_args(argv)
    ports, data = find_stack(args, "ferlite stream")
    args.target = args.target or f"{ports.host}:{ports.facedetect_port}"
    args.summary_token_file = args.summary_token_file or str(data / runs.ADMIN_TOKEN)
    security = access_from(args)
    if args.fps <= 0 or not 0 <= args.smoothing < 1:
        p.error("--fps must be > 0 and --smoothing in [0, 1)")
    if args.aggregator is None:
        args.aggregator = aggregator_beside(args.target)
    try:
        check_reachable(args.target, security=security)
        stats = run_stream(args.source, args.classroom, args.target, args.fps, args.stream_id, args.max_frames,
                           args.output, args.record, args.smoothing, args.uncertain_below, security=security,
                           off_path=args.record_off_path)
    except FileNotFoundError as exc:
        print(f"ferlite stream: error: {exc}", file=sys.stderr)
        return 2
    except CredentialRefused as exc:
        how = ("pass a camera token of this classroom (--token-file; `ferlite up` writes camera-token in its run "
               "folder and prints the command)" if exc.code == grpc.StatusCode.PERMISSION_DENIED else
               "pass the stack's --port-offset (the command `ferlite up` prints finds its camera token), "
               "--token-file or --token")
        print(f"ferlite stream: error: the service refused this client's token ({exc}); {how}", file=sys.stderr)
        return 2
    except ConnectionError as exc:
        print(f"ferlite stream: error: {exc}", file=sys.stderr)
        return 1
    except grpc.RpcError as exc:
        print(f"ferlite stream: error: {exc.code().name}: {exc.details()}", file=sys.stderr)
        return 1
    summary = None
    if args.aggregator and args.record:
        try:
            # The admin token reads; without its file, the frames' token is tried (it may be the admin's).
            admin = dataclasses.replace(security, token=resolve_token("", args.summary_token_file) or security.token)
            summary = classroom_summary(args.aggregator, args.classroom, stats.to_dict()["seconds"] + 3600, admin)
        except grpc.RpcError as exc:
            print(f"(no classroom summary: {exc.code().name})", file=sys.stderr)
    payload = stats.to_dict()
    if summary is not None:
        payload["aggregator_total_events"] = summary.total_events
        payload["aggregator_distribution"] = {c.label: c.count for c in summary.distribution}
    if args.json:
        print(json.dumps(payload, indent=1))
    else:
        print_summary(stats, summary)
    if args.json_file:
        Path(args.json_file).write_text(json.dumps(payload, indent=1))
    return 0 if stats.frames else 1


def summary_main(argv: Sequence[str]) -> int:
    """`ferlite summary`: a classroom's expression summary, read from the aggregator."""
    p = argparse.ArgumentParser(formatter_class=HelpFormatter, prog="ferlite summary", description=summary_main.__doc__)
    p.add_argument("--classroom", required=True, help="classroom id")
    p.add_argument("--window", type=float, default=3600.0, help="seconds back from now")
    p.add_argument("--aggregator", default=None,
                   help="aggregator service (default: the local stack's, 127.0.0.1:50053 at offset 0)")
    p.add_argument("--json", action="store_true", help="print JSON instead of text")
    add_access_flags(p)
    args = p.parse_args(argv)
    ports, _ = find_stack(args, "ferlite summary")
    args.aggregator = args.aggregator or f"{ports.host}:{ports.aggregator_port}"
    security = access_from(args)
    try:
        check_reachable(args.aggregator, security=security)
        s = classroom_summary(args.aggregator, args.classroom, args.window, security)
    except (ConnectionError, grpc.RpcError) as exc:
        return call_failed("ferlite summary", exc)
    counts = {c.label: c.count for c in s.distribution}
    if args.json:
        print(json.dumps({"classroom": s.classroom_id, "start": s.start_time, "end": s.end_time,
                          "events": s.total_events, "distribution": counts, "dominant": s.dominant_label,
                          "uncertain_share": s.uncertain_share}))
    else:
        print(readable.classroom_line(s))
    return 0
