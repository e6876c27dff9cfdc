"""Each local stack owns a run folder, and clients find a running stack by its port offset.

- **Its folder.** A stack keeps everything it writes (tokens, sockets, Redis, Triton's files, logs)
  in DATA: `var` at port offset 0, `var-<offset>` at another offset, unless --data-dir says
  otherwise. So `ferlite up --port-offset 100`, run from the folder of a running stack as the
  busy-ports message suggests, gets a folder of its own.
- **Its lock.** `up` and `demo` hold an exclusive lock on DATA/stack.lock for as long as they run
  (the kernel drops it when the process dies, however it dies), taken before anything is written
  in DATA: a second stack on the same folder stops with one line and touches nothing.
- **Its entry.** While it runs, a stack is listed in the user's state folder
  (`$XDG_STATE_HOME/ferlite/stacks/<offset>.json`, default `~/.local/state`; 0700 and 0600): its
  DATA as an absolute path, its pid and ports. `ferlite stream/summary/erase --port-offset N`,
  `ferlite status` and `ferlite stop` read it, so they find the stack's addresses and tokens from
  any folder. An entry whose lock nobody holds is a stack that died: it is ignored and removed.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

LOCK = "stack.lock"
ADMIN_TOKEN = "auth-token"  # the run folder's token files: the admin's (summaries, dashboard, erase, A/B)
CAMERA_TOKEN = "camera-token"  # and the local cameras' (frames only, every classroom)


class StackBusy(RuntimeError):
    """Another running stack owns the folder."""


def command(words: str, offset: int) -> str:
    """The `ferlite` command line for the stack at `offset`: `ferlite stop --port-offset 100`, or
    `ferlite stop` at offset 0 (the default every command assumes)."""
    return f"ferlite {words}" + (f" --port-offset {offset}" if offset else "")


def default_data_dir(offset: int) -> Path:
    return Path("var") if offset == 0 else Path(f"var-{offset}")


def registry_dir() -> Path:
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "ferlite" / "stacks"


@dataclass(frozen=True)
class RunningStack:
    offset: int
    data_dir: str  # absolute
    pid: int
    started: float
    host: str
    ports: dict[str, int]  # facedetect, classifier, aggregator, dashboard, and the metrics ports
    auth: bool

    @property
    def data(self) -> Path:
        return Path(self.data_dir)

    def address(self, service: str) -> str:
        return f"{self.host}:{self.ports[service]}"


def _holder(data_dir: Path) -> bool:
    """Whether a live process holds DATA's lock (a running stack)."""
    path = data_dir / LOCK
    if not path.exists():
        return False
    with open(path, "a+") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            return True
        fcntl.flock(fh, fcntl.LOCK_UN)
        return False


@contextlib.contextmanager
def owned(data_dir: Path) -> Iterator[None]:
    """Hold DATA's lock for the block; StackBusy (saying which stack) when another process holds it."""
    data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(data_dir / LOCK, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            other = next((s for s in running() if Path(s.data_dir) == data_dir.resolve()), None)
            who = f" (pid {other.pid}, port offset {other.offset})" if other else ""
            stop = command("stop", other.offset if other else 0)
            raise StackBusy(f"{data_dir} belongs to a running stack{who}; `{stop}` stops it") from None
        yield
    finally:
        os.close(fd)


def register(stack: RunningStack) -> Path:
    folder = registry_dir()
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    path = folder / f"{stack.offset}.json"
    tmp = folder / f".{stack.offset}.{os.getpid()}.json"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump(asdict(stack), fh)
    os.replace(tmp, path)
    return path


def unregister(stack: RunningStack) -> None:
    path = registry_dir() / f"{stack.offset}.json"
    with contextlib.suppress(OSError, ValueError):
        if json.loads(path.read_text()).get("pid") == stack.pid:  # never another stack's entry
            path.unlink()


def running() -> list[RunningStack]:
    """The stacks running now, by port offset; entries of stacks that died are removed."""
    out = []
    folder = registry_dir()
    for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        try:
            stack = RunningStack(**json.loads(path.read_text()))
        except (OSError, ValueError, TypeError):
            continue
        if _holder(Path(stack.data_dir)):
            out.append(stack)
        else:
            with contextlib.suppress(OSError):
                path.unlink()
    return sorted(out, key=lambda s: s.offset)


def locate(offset: int) -> RunningStack | None:
    return next((s for s in running() if s.offset == offset), None)


def wait_stopped(stack: RunningStack, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while _holder(Path(stack.data_dir)):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.2)
    return True
