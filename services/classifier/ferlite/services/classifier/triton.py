"""Launch the real Triton Inference Server bundled in the nvidia-pytriton wheel, gRPC on a private Unix socket.

Running the bundled `tritonserver` binary directly (rather than through PyTriton's proxy) was
2-3x faster here. What it needs, learned the hard way:
  * the Python-backend stub built for THIS interpreter's version, copied next to the backend;
  * LD_LIBRARY_PATH with the wheel's bundled libs AND this interpreter's LIBDIR, or every model
    fails to load with an `_recursion_count` error;
  * PATH reaching this venv's python, so the stub imports this venv's onnxruntime.
Stopping sends SIGTERM to the process group and waits, so no stub processes are orphaned, and
removes any Python-backend shared-memory region of ours left in /dev/shm.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import threading
import time
from collections.abc import Callable
from pathlib import Path

from ferlite.services.common.processes import Restarter, die_with_parent
from ferlite.services.common.server import prepare_socket_path

log = logging.getLogger("ferlite.classifier.triton")

SHM_PREFIX = "triton_python_backend_shm_region_"
FULL_SCAN_SECONDS = 5.0  # the shared-memory guard's scan of every region even when no new name appeared


def _dist() -> tuple[Path, Path]:
    try:
        import pytriton
    except ImportError as exc:  # pragma: no cover - the serve extra installs it
        raise RuntimeError("the embedded Triton needs nvidia-pytriton: pip install 'ferlite[serve]'") from exc
    root = Path(pytriton.__file__).parent
    return root / "tritonserver", root.parent / "nvidia_pytriton.libs"


# gRPC on a Unix socket in a folder only this user may enter (workspace/run): no other local user can
# run the models, register shared-memory regions, or stand in for Triton. No HTTP endpoint at all.
# Triton joins --grpc-address and --grpc-port with ':', so the socket's file is "triton.sock:1".
SOCKET_NAME, SOCKET_PORT = "triton.sock", 1


def socket_file(workspace: Path) -> Path:
    """The embedded Triton's gRPC socket under its workspace."""
    return Path(workspace).resolve() / "run" / f"{SOCKET_NAME}:{SOCKET_PORT}"


def grpc_url_in(workspace: Path) -> str:
    """The gRPC target of the embedded Triton whose workspace this is."""
    return f"unix:{socket_file(workspace)}"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class EmbeddedTriton:
    """The bundled tritonserver on 127.0.0.1, serving `repository`."""

    def __init__(self, repository: str | Path, workspace: str | Path, metrics_port: int = 8002,
                 log_file: str | Path | None = None) -> None:
        self.repository = Path(repository).resolve()
        self.workspace = Path(workspace).resolve()
        self.metrics_port = metrics_port or free_port()
        self.log_file = Path(log_file) if log_file else self.workspace / "tritonserver.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self._shm_before: set[str] = set()
        self._restarter: Restarter | None = None

    @property
    def grpc_url(self) -> str:
        return grpc_url_in(self.workspace)

    def _prepare(self) -> Path:
        dist, _ = _dist()
        server_dir = self.workspace / "tritonserver"
        if not (server_dir / "bin" / "tritonserver").exists():
            shutil.copytree(dist, server_dir, dirs_exist_ok=True,
                            ignore=shutil.ignore_patterns("python_backend_stubs"))
        version = f"{sys.version_info.major}.{sys.version_info.minor}"
        stub = dist / "python_backend_stubs" / version / "triton_python_backend_stub"
        if not stub.exists():
            raise RuntimeError(f"the bundled Triton has no Python-backend stub for Python {version}")
        shutil.copy2(stub, server_dir / "backends" / "python" / "triton_python_backend_stub")
        return server_dir

    def environment(self) -> dict[str, str]:
        _, libs = _dist()
        env = dict(os.environ)
        libdir = sysconfig.get_config_var("LIBDIR") or ""
        paths = [str(libs), libdir, env.get("LD_LIBRARY_PATH", "")]
        env["LD_LIBRARY_PATH"] = ":".join(p for p in paths if p)
        env["PATH"] = f"{Path(sys.executable).parent}:{env.get('PATH', '')}"
        return env

    def start(self, timeout: float = 120.0) -> EmbeddedTriton:
        self.workspace.mkdir(parents=True, exist_ok=True)
        server_dir = self._prepare()
        self._shm_before = set(os.listdir("/dev/shm")) if os.path.isdir("/dev/shm") else set()
        prepare_socket_path(socket_file(self.workspace))
        args = [
            str(server_dir / "bin" / "tritonserver"),
            f"--model-repository={self.repository}",
            f"--backend-directory={server_dir / 'backends'}",
            f"--cache-directory={server_dir / 'caches'}",
            "--allow-http=false",
            f"--grpc-address=unix:{socket_file(self.workspace).parent / SOCKET_NAME}", f"--grpc-port={SOCKET_PORT}",
            "--metrics-address=127.0.0.1", f"--metrics-port={self.metrics_port}",
            "--allow-metrics=true", "--allow-gpu-metrics=false",
            "--strict-readiness=true", "--exit-timeout-secs=10", "--log-verbose=0",
        ]
        log.info("starting tritonserver", extra={"grpc": self.grpc_url, "metrics_port": self.metrics_port})
        pdeath = die_with_parent()

        def preexec() -> None:
            os.umask(0o077)
            if pdeath is not None:
                pdeath()

        with self.log_file.open("ab") as out:
            self.proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, env=self.environment(),
                                         start_new_session=True, preexec_fn=preexec)
        self._guard = threading.Thread(target=self._guard_shm, name="triton-shm-guard", daemon=True)
        self._guard.start()
        deadline = time.monotonic() + timeout
        while not self.ready():
            if self.proc.poll() is not None:
                raise RuntimeError(f"tritonserver exited with code {self.proc.returncode}:\n{self.log_tail()}")
            if time.monotonic() > deadline:
                self._halt()
                raise RuntimeError(f"tritonserver not ready after {timeout:.0f} s:\n{self.log_tail()}")
            time.sleep(0.2)
        self.protect_shm()
        return self

    def watch(self, on_restart: Callable[[], None] = lambda: None) -> EmbeddedTriton:
        """Restart tritonserver whenever it dies (backoff 1 s doubling to 30 s), on the same ports;
        its stubs are killed and its dead regions wiped first. The classifier's readiness poll sees
        the models return."""
        self._restarter = Restarter("tritonserver", lambda: self.proc is not None and self.proc.poll() is not None,
                                    self.start, cleanup=self._clear_dead, on_restart=on_restart).start()
        return self

    def _clear_dead(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)   # its stubs
        self.clean_shm()

    def protect_shm(self) -> list[str]:
        """chmod 0600 this server's Python-backend regions: they carry face crops, and the backend
        creates them 0644 whatever the umask. Done as soon as the models load (before any crop is
        sent) and again by the guard thread for regions the backend adds later."""
        changed = []
        for name in self._mapped_regions():
            path = os.path.join("/dev/shm", name)
            with contextlib.suppress(OSError):
                if os.stat(path).st_mode & 0o077:
                    os.chmod(path, 0o600)
                    changed.append(name)
        return changed

    def _guard_shm(self) -> None:
        """Protect the regions the backend adds while it runs. Every 0.2 s a look at /dev/shm's names
        (tens of microseconds); the costly part, reading the memory maps of the server and each stub
        (4.4 ms with four models, holding the GIL and the stubs' memory-map locks), only when a new
        name appears, and every FULL_SCAN_SECONDS in case a region was not yet mapped at its scan."""
        seen: set[str] = set()
        last_scan = time.monotonic()
        while self.proc is not None and self.proc.poll() is None:
            listing = os.listdir("/dev/shm") if os.path.isdir("/dev/shm") else []
            names = {n for n in listing if n.startswith(SHM_PREFIX)}
            now = time.monotonic()
            if names - seen or now - last_scan > FULL_SCAN_SECONDS:
                self.protect_shm()
                last_scan = now
            seen = names
            time.sleep(0.2)

    def ready(self) -> bool:
        import grpc
        from tritonclient.grpc import service_pb2, service_pb2_grpc

        try:
            with grpc.insecure_channel(self.grpc_url) as channel:
                return service_pb2_grpc.GRPCInferenceServiceStub(channel).ServerReady(
                    service_pb2.ServerReadyRequest(), timeout=1).ready
        except grpc.RpcError:
            return False

    def log_tail(self, chars: int = 3000) -> str:
        return self.log_file.read_text(errors="replace")[-chars:] if self.log_file.exists() else ""

    def kill(self) -> None:
        """SIGKILL the whole process group (fault tests)."""
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()

    def stop(self, timeout: float = 20.0) -> None:
        if self._restarter is not None:
            self._restarter.stop()
        self._halt(timeout)

    def _halt(self, timeout: float = 20.0) -> None:
        """Stop the server, its stubs and their regions (a failed start calls this: the restarter keeps
        running)."""
        ours = self._mapped_regions()
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        if self.proc:  # stubs are in the group too: make sure none outlives the server
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
        self.clean_shm(ours)

    def _group_pids(self) -> list[int]:
        """This server and its backend stubs (they share its process group)."""
        if self.proc is None:
            return []
        pids = []
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                with contextlib.suppress(OSError, ValueError, IndexError):
                    if int((entry / "stat").read_text().rsplit(")", 1)[1].split()[2]) == self.proc.pid:
                        pids.append(int(entry.name))
        return pids

    def _mapped_regions(self, pids: list[int] | None = None) -> set[str]:
        """Python-backend regions mapped by the given processes (default: this server's group)."""
        names = set()
        for pid in self._group_pids() if pids is None else pids:
            with contextlib.suppress(OSError):
                for line in Path(f"/proc/{pid}/maps").read_text().splitlines():
                    path = line.rsplit(" ", 1)[-1]
                    if path.startswith("/dev/shm/" + SHM_PREFIX):
                        names.add(path.removeprefix("/dev/shm/"))
        return names

    def clean_shm(self, ours: set[str] | None = None) -> list[str]:
        """Wipe and remove this server's Python-backend regions, and only its own: those its processes
        mapped, or (if they died before we could look) those that appeared since start and that no
        living process maps, so a running Triton's regions are left alone."""
        if not os.path.isdir("/dev/shm"):
            return []
        appeared = {n for n in set(os.listdir("/dev/shm")) - self._shm_before if n.startswith(SHM_PREFIX)}
        in_use = self._mapped_regions([int(p.name) for p in Path("/proc").iterdir() if p.name.isdigit()])
        left = sorted(ours if ours else appeared - in_use)
        for name in left:
            path = os.path.join("/dev/shm", name)
            with contextlib.suppress(OSError):
                os.truncate(path, 0)   # the crops' pages are freed now, not when the name goes
                os.unlink(path)
        return left
