"""`ferlite demo`: bring the stack up, stream a sample clip of real faces, print the classroom
summary from the aggregator and where the metrics are, shut everything down, exit 0."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
import urllib.request
from collections.abc import Sequence
from pathlib import Path

from ferlite.base.event_rules import RETENTION_SECONDS
from ferlite.base.model_metadata import find_models
from ferlite.services.common.channels import ChannelSecurity

from . import runs
from .photos import GROUP_SOURCE
from .sample_clip import choose_scenes, make_clip
from .stack import StackError
from .stream import classroom_summary, print_summary, resolve_token, run_stream
from .up import (
    CAMERA_TOKEN,
    dashboard_line,
    ensure_models,
    in_own_folder,
    make_config,
    print_addresses,
    running_entry,
    stack_parser,
    start_stack,
    supervise,
)


def main(argv: Sequence[str]) -> int:
    p = stack_parser("ferlite demo", __doc__)
    p.add_argument("--video", default="", help="stream this video instead of the sample clip")
    p.add_argument("--classroom", default="demo-classroom", help="classroom id the demo's events are stored under")
    p.add_argument("--fps", type=float, default=5.0, help="frames per second sent")
    p.add_argument("--output", default="", help="annotated video (default: DATA/demo/annotated.mp4)")
    p.add_argument("--keep-up", action="store_true",
                   help="leave the stack running after the demo, until Ctrl-C or `ferlite stop`, to look at the "
                        "classroom on the dashboard")
    return in_own_folder(p.parse_args(argv), "ferlite demo", _demo)  # its folder, as `up`'s


def keep_running(args: argparse.Namespace, stack) -> int:
    """After the demo, the stack as `ferlite up` runs it (supervised, listed for `ferlite stop`)."""
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    print(f"the stack stays up (Ctrl-C here, or `{runs.command('stop', args.port_offset)}`, stops it): "
          f"{dashboard_line(args, stack.config, args.classroom)}", flush=True)
    entry = running_entry(args, stack)
    runs.register(entry)
    try:
        return supervise(stack, stop)
    finally:
        runs.unregister(entry)


def _demo(args: argparse.Namespace) -> int:
    if not ensure_models(args, "ferlite demo"):
        return 2
    if args.video and not Path(args.video).exists():
        print(f"ferlite demo: error: video not found: {args.video}", file=sys.stderr)
        return 2
    demo_dir = args.data_dir / "demo"  # the sample clip and the annotated video: faces, owner only
    demo_dir.mkdir(parents=True, exist_ok=True)
    demo_dir.chmod(0o700)
    source = args.video
    if not source:
        cache = args.data_dir / "photos"
        scenes, note = choose_scenes("portrait,group", cache)
        if note:
            print(f"sample clip: {note}")
        source = str(make_clip(demo_dir / "sample_clip.mp4", scenes=scenes, cache=cache))
        print(f"sample clip: {scenes} (" + ("the group: " + GROUP_SOURCE + "; " if "group" in scenes else "")
              + "sources and licences in services/app/ferlite/app/photos.py)")
    output = args.output or str(demo_dir / "annotated.mp4")
    try:
        stack = start_stack(make_config(args))
    except (StackError, OSError) as exc:
        print(f"ferlite demo: error: {exc} (logs in {args.data_dir / 'logs'})", file=sys.stderr)
        return 1
    try:
        print("stack is up:")
        print_addresses(stack)
        c = stack.config
        print(dashboard_line(args, c, args.classroom) + ("" if args.keep_up else
              "; the stack stops when the demo ends: --keep-up leaves it running to look"))
        print(f"streaming {source} as classroom {args.classroom!r} ...", flush=True)
        # The teacher's side reads with the admin token; the camera sends with the camera token.
        access = ChannelSecurity(token=resolve_token("", str(args.data_dir / "auth-token")) if args.auth else "")
        camera = ChannelSecurity(token=resolve_token("", str(args.data_dir / CAMERA_TOKEN)) if args.auth else "")
        # Events of earlier demo runs in this classroom are still stored: count only this run's.
        before = classroom_summary(f"{c.host}:{c.aggregator_port}", args.classroom, RETENTION_SECONDS,
                                   access).total_events
        stats = run_stream(source, args.classroom, f"{c.host}:{c.facedetect_port}", fps=args.fps, output=output,
                           security=camera)
        summary = classroom_summary(f"{c.host}:{c.aggregator_port}", args.classroom, RETENTION_SECONDS, access)
        print_summary(stats, summary)
        print(f"annotated video: {output}")
        print("metrics (Prometheus text format):")
        for name, url in stack.addresses().items():
            if "metrics" in name:
                with urllib.request.urlopen(url, timeout=5) as reply:
                    lines = sum(1 for line in reply.read().decode().splitlines() if line and line[0] != "#")
                print(f"  {name:<20} {url}  ({lines} samples)")
        if any(m.synthetic for m in find_models(args.models)):
            print("note: these are demo models trained on synthetic cartoon faces; their labels for real faces "
                  "mean nothing. Train real ones with `ferlite train --data YOUR_FACES --export models`.")
        ok = stats.frames > 0 and summary.total_events - before == stats.recorded_faces
        if not ok:
            print(f"ferlite demo: events this run added to the aggregator ({summary.total_events - before}) "
                  "differ from faces recorded "
                  f"({stats.recorded_faces})", file=sys.stderr)
        if ok and args.keep_up:
            return keep_running(args, stack)
        return 0 if ok else 1
    finally:
        codes = stack.stop()
        print("stopped: " + ", ".join(f"{k} exit {v}" for k, v in codes.items()), flush=True)
