"""`ferlite status` (which local stacks run, where, and whether each part answers) and
`ferlite stop` (end one, as Ctrl-C in its terminal would). Both find stacks by their port offset,
from any folder (runs.py)."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import sys
import time
from collections.abc import Sequence

from ferlite.base.cli import HelpFormatter

from . import runs
from .stack import http_ok, serving


def _age(seconds: float) -> str:
    minutes = int(seconds // 60)
    return f"{int(seconds)} s" if minutes < 1 else f"{minutes} min" if minutes < 120 else f"{minutes // 60} h"


def health(stack: runs.RunningStack) -> dict[str, dict[str, str]]:
    """Each part's address and whether it answers now (gRPC health; the dashboard's /readyz)."""
    out = {}
    for name in ("facedetect", "classifier", "aggregator"):
        address = stack.address(name)
        out[name] = {"address": address, "state": "serving" if serving(address, timeout=1.0) else "not serving"}
    url = f"http://{stack.address('dashboard')}/"
    out["dashboard"] = {"address": url, "state": "ready" if http_ok(url + "readyz", timeout=2) else "not ready"}
    return out


def status_main(argv: Sequence[str]) -> int:
    """`ferlite status`: the local stacks running now, where they are, and whether each part answers."""
    p = argparse.ArgumentParser(prog="ferlite status", description=status_main.__doc__, formatter_class=HelpFormatter)
    p.add_argument("--port-offset", type=int, default=None, help="only the stack with this port offset")
    p.add_argument("--json", action="store_true", help="print JSON on stdout instead of text")
    args = p.parse_args(argv)
    stacks = [s for s in runs.running() if args.port_offset is None or s.offset == args.port_offset]
    report = [{"port_offset": s.offset, "pid": s.pid, "run_folder": s.data_dir, "up_seconds": round(time.time() -
               s.started), "auth": s.auth, "services": health(s)} for s in stacks]
    if args.json:
        print(json.dumps(report, indent=1))
    elif not stacks:
        which = f" with --port-offset {args.port_offset}" if args.port_offset is not None else ""
        print(f"no ferlite stack is running{which} (start one with `ferlite up`)")
    for s, r in zip(stacks, report, strict=True) if not args.json else ():
        print(f"stack at port offset {s.offset}: pid {s.pid}, up {_age(r['up_seconds'])}, run folder {s.data_dir}")
        for name, h in r["services"].items():
            print(f"  {name:<11} {h['address']:<28} {h['state']}")
        if s.auth:
            print(f"  tokens      {s.data_dir}/{runs.ADMIN_TOKEN} (admin), {s.data_dir}/{runs.CAMERA_TOKEN} (cameras)")
    return 0 if stacks else 1


def stop_main(argv: Sequence[str]) -> int:
    """`ferlite stop`: stop a local stack started with `ferlite up` (SIGTERM: it drains and stops as with Ctrl-C)."""
    p = argparse.ArgumentParser(prog="ferlite stop", description=stop_main.__doc__, formatter_class=HelpFormatter)
    p.add_argument("--port-offset", type=int, default=0, help="the stack to stop, by its port offset")
    p.add_argument("--all", action="store_true", help="stop every running stack")
    p.add_argument("--timeout", type=float, default=90.0, help="seconds to wait for it to finish stopping")
    args = p.parse_args(argv)
    stacks = runs.running() if args.all else [s for s in [runs.locate(args.port_offset)] if s is not None]
    if not stacks:
        which = "" if args.all else f" with --port-offset {args.port_offset}"
        print(f"ferlite stop: no ferlite stack is running{which} (`ferlite status` lists the running ones)",
              file=sys.stderr)
        return 1
    code = 0
    for s in stacks:
        started = time.monotonic()
        with contextlib.suppress(ProcessLookupError):
            os.kill(s.pid, signal.SIGTERM)
        if runs.wait_stopped(s, args.timeout):
            print(f"stopped the stack at port offset {s.offset} (pid {s.pid}) in {time.monotonic() - started:.1f} s")
        else:
            print(f"ferlite stop: the stack at port offset {s.offset} (pid {s.pid}) is still stopping after "
                  f"{args.timeout:g} s; its logs: {s.data_dir}/logs", file=sys.stderr)
            code = 1
    return code
