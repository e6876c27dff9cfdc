"""`ferlite up`: the whole stack on this machine, on embedded defaults, until Ctrl-C or SIGTERM."""

from __future__ import annotations

import argparse
import os
import secrets
import signal
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from ferlite.base.cli import HelpFormatter
from ferlite.base.model_metadata import PACK_DIR

from . import runs
from .bootstrap import bootstrap_models, has_models
from .stack import LocalStack, StackConfig, StackError, beside_hint, make_private

NO_MODELS = ("no exported models in {dir}. Either\n"
             "  ferlite up                 # the model pack shipped in the repository ({pack}), or\n"
             "  ferlite train --data FACES_DIR --image-size 96 --export {dir}   # real models from your data, or\n"
             "  ferlite up --bootstrap     # small demo models trained on synthetic faces (tests only)")


def stack_parser(prog: str, description: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(formatter_class=HelpFormatter, prog=prog, description=description)
    p.add_argument("--models", type=Path, default=None,
                   help=f"exported model directory (default: the model pack, {PACK_DIR})")
    p.add_argument("--data-dir", type=Path, default=None,
                   help="this stack's run folder: tokens, sockets, Redis data, Triton's files, logs (default: var, "
                        "or var-N with --port-offset N)")
    p.add_argument("--bootstrap", action="store_true",
                   help="serve small demo models trained on synthetic faces (DATA/demo-models; trained on first "
                        "use, a few minutes): they exercise the system but cannot read real faces")
    p.add_argument("--detector", default="blazeface_full", choices=["blazeface_full", "blazeface_short", "haar"],
                   help="face detector: BlazeFace full range (faces far from the camera), short range, or "
                        "OpenCV's Haar cascade")
    p.add_argument("--policy-file", default="", help="A/B policy JSON for the classifier (hot-reloaded)")
    p.add_argument("--port-offset", type=int, default=0,
                   help="add this to every port of the stack, to run stacks side by side; clients reach it with "
                        "the same --port-offset, from any folder")
    p.add_argument("--no-auth", dest="auth", action="store_false",
                   help="require no bearer tokens (neither the admin token nor the service token of the "
                        "pipeline's writes)")
    return p


TOKEN_FILES = {  # env setting -> file under DATA
    "FERLITE_AGGREGATOR_AUTH_TOKEN_FILE": "auth-token",  # admin: summaries, events, feedback, A/B
    "FERLITE_CLASSIFIER_AUTH_TOKEN_FILE": "auth-token",
    "FERLITE_FACEDETECT_AUTH_TOKEN_FILE": "auth-token",  # also accepted on Process
    "FERLITE_FACEDETECT_SERVICE_TOKEN_FILE": "service-token",  # the pipeline's writes between services
    "FERLITE_CLASSIFIER_SERVICE_TOKEN_FILE": "service-token",
    "FERLITE_AGGREGATOR_SERVICE_TOKEN_FILE": "service-token",
}
CAMERA_TOKEN = runs.CAMERA_TOKEN  # the local cameras' token (every classroom): `ferlite stream` sends it
CAMERA_TOKENS = "camera-tokens"  # face detection's list of camera tokens and their classrooms


def auth_env(args: argparse.Namespace) -> dict[str, str]:
    """Where the stack's tokens live (DATA/auth-token for admins, DATA/camera-token for cameras,
    DATA/service-token between services). The tokens themselves are written by `start_stack` once
    the ports are known to be free, so a start that fails never replaces the tokens of a stack that
    is running."""
    if not args.auth:
        return {}
    return {**{env: str((args.data_dir / name).resolve()) for env, name in TOKEN_FILES.items()},
            "FERLITE_FACEDETECT_CAMERA_TOKENS_FILE": str((args.data_dir / CAMERA_TOKENS).resolve())}


def write_token(path: Path, text: str | None = None) -> str:
    """A fresh random token (or `text`), mode 600, replacing the old file atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    token = secrets.token_urlsafe(32)
    with os.fdopen(fd, "w") as fh:
        fh.write(token if text is None else text)
    os.replace(tmp, path)
    return token


def make_config(args: argparse.Namespace) -> StackConfig:
    return StackConfig.with_port_offset(args.port_offset, model_dir=args.models, data_dir=args.data_dir,
                                        detector=args.detector, policy_file=args.policy_file,
                                        extra_env=auth_env(args))


def ensure_models(args: argparse.Namespace, prog: str) -> bool:
    """Check the ports (before minutes of bootstrap training, say) and resolve `args.models`: the
    given folder, the demo models with --bootstrap, else the pack."""
    try:
        StackConfig.with_port_offset(args.port_offset).check_ports()
    except StackError as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return False
    if args.models is None:
        args.models = args.data_dir / "demo-models" if args.bootstrap else PACK_DIR
    if has_models(args.models):
        return True
    if not args.bootstrap:
        print(f"{prog}: error: " + NO_MODELS.format(dir=args.models, pack=PACK_DIR), file=sys.stderr)
        return False
    bootstrap_models(args.models, args.data_dir / "bootstrap")
    return True


def start_stack(config: StackConfig) -> LocalStack:
    config.check_ports()
    make_private(config.data_dir)  # before the tokens are written into it
    for path in sorted({config.extra_env[env] for env in TOKEN_FILES if env in config.extra_env}):
        write_token(Path(path))
    cameras = config.extra_env.get("FERLITE_FACEDETECT_CAMERA_TOKENS_FILE")
    if cameras:  # one camera token for every classroom of this machine, beside the list face detection reads
        token = write_token(Path(cameras).with_name(CAMERA_TOKEN))
        write_token(Path(cameras), f"# written by ferlite up: the local cameras' token, every classroom\n{token} *\n")
    stack = LocalStack(config)
    print("starting aggregator (embedded Redis), classifier (embedded Triton, 4 models), face detection ...",
          flush=True)
    return stack.start()


def print_addresses(stack: LocalStack) -> None:
    width = max(len(k) for k in stack.addresses())
    for name, address in stack.addresses().items():
        print(f"  {name:<{width}}  {address}")


MAX_RESTARTS = 5          # per service, within RESTART_WINDOW seconds; then the stack stops
RESTART_WINDOW = 300.0


def supervise(stack: LocalStack, stop: threading.Event) -> int:
    """Restart a service that dies, with exponential backoff (1, 2, 4 ... 30 s); give up (exit 1)
    when one dies MAX_RESTARTS times within RESTART_WINDOW seconds."""
    history: dict[str, list[float]] = {}
    while not stop.wait(0.5):
        for svc in stack.dead():
            now = time.monotonic()
            recent = [t for t in history.get(svc.name, []) if now - t < RESTART_WINDOW]
            if len(recent) >= MAX_RESTARTS:
                print(f"ferlite up: {svc.name} died {len(recent)} times in {RESTART_WINDOW:.0f} s; stopping. "
                      f"Log tail:\n{stack.log_tail(svc)}", file=sys.stderr)
                return 1
            delay = min(30.0, 2.0 ** len(recent))
            print(f"ferlite up: {svc.name} exited ({svc.proc.returncode}); restarting in {delay:.0f} s "
                  f"(restart {len(recent) + 1} of at most {MAX_RESTARTS} in {RESTART_WINDOW:.0f} s)",
                  file=sys.stderr, flush=True)
            history[svc.name] = [*recent, now]
            if stop.wait(delay):
                return 0
            try:
                stack.restart(svc)
                print(f"ferlite up: {svc.name} is serving again (restarts so far: {svc.restarts})", flush=True)
            except StackError as exc:
                print(f"ferlite up: restarting {svc.name} failed: {exc}", file=sys.stderr, flush=True)
    return 0


def resolve_data_dir(args: argparse.Namespace) -> None:
    """--data-dir, else this offset's own run folder (var, var-N)."""
    if args.data_dir is None:
        args.data_dir = runs.default_data_dir(args.port_offset)


def running_entry(args: argparse.Namespace, stack: LocalStack) -> runs.RunningStack:
    c = stack.config
    return runs.RunningStack(args.port_offset, str(Path(args.data_dir).resolve()), os.getpid(), time.time(), c.host,
                             c.named_ports(), bool(args.auth))


def dashboard_line(args: argparse.Namespace, config: StackConfig, classroom: str = "") -> str:
    """Where a teacher looks, and what to sign in with (the stack's admin token reads every classroom)."""
    url = f"http://{config.host}:{config.dashboard_port}/" + (f"classrooms/{classroom}" if classroom else "")
    how = (f"sign in with the token in {args.data_dir / 'auth-token'}" if args.auth
           else "auth is off: any token signs in")
    return f"dashboard: {url}  ({how})"


def in_own_folder(args: argparse.Namespace, prog: str, run: Callable[[argparse.Namespace], int]) -> int:
    """Run a stack (`up`, `demo`) holding its run folder's lock, taken before anything is written in
    it; when another stack holds it, one line saying which, and where this one can run instead."""
    resolve_data_dir(args)
    try:
        with runs.owned(args.data_dir):
            return run(args)
    except runs.StackBusy as exc:
        print(f"{prog}: error: {exc}{beside_hint(StackConfig.with_port_offset(args.port_offset))}",
              file=sys.stderr)
        return 1


def main(argv: Sequence[str]) -> int:
    return in_own_folder(stack_parser("ferlite up", __doc__).parse_args(argv), "ferlite up", _up)


def _up(args: argparse.Namespace) -> int:
    if not ensure_models(args, "ferlite up"):
        return 2
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    try:
        stack = start_stack(make_config(args))
    except (StackError, OSError) as exc:
        print(f"ferlite up: error: {exc} (logs in {args.data_dir / 'logs'})", file=sys.stderr)
        return 1
    print("ferlite is up:")
    print_addresses(stack)
    if args.auth:
        print(f"  auth token          {args.data_dir / 'auth-token'} (send as 'authorization: Bearer <token>')")
        print(f"  camera token        {args.data_dir / CAMERA_TOKEN} (cameras: frames only; `ferlite stream` sends it)")
        print(f"  service token       {args.data_dir / 'service-token'} (between the services only)")
    print(dashboard_line(args, stack.config))
    # The stack's --port-offset is all a client needs to find its addresses and tokens (runs.py).
    print(f"stream a video:  {runs.command('stream --source VIDEO --classroom ROOM', args.port_offset)}     "
          f"(Ctrl-C here or `{runs.command('stop', args.port_offset)}` stops everything)", flush=True)
    entry = running_entry(args, stack)
    runs.register(entry)  # `ferlite status/stop/stream --port-offset` find it from any folder
    try:
        code = supervise(stack, stop)
    finally:
        runs.unregister(entry)
    codes = stack.stop()
    print("stopped: " + ", ".join(f"{k} exit {v}" for k, v in codes.items()), flush=True)
    return code
