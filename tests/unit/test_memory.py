"""glibc malloc thresholds: a service keeps the large buffers a Classify call's crops pass through,
instead of giving them back to the kernel and page-faulting them in again on the next call.
Each check runs in a fresh interpreter: the thresholds are process-wide."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from ferlite.services.common.memory import TUNABLES, tuned_environment

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc malloc")

# 100 calls' worth of three 400 KB buffers (8 faces of 128 px are 393 KB), allocated and freed in a
# worker thread as gRPC's are; prints the page faults it took (~30,000 pages were touched).
WORKLOAD = textwrap.dedent("""
    import resource, threading
    def work(out):
        before = resource.getrusage(resource.RUSAGE_THREAD).ru_minflt
        for _ in range(100):
            buffers = [b"\\x01" * (400 << 10) for _ in range(3)]
            del buffers
        out.append(resource.getrusage(resource.RUSAGE_THREAD).ru_minflt - before)
    out = []
    thread = threading.Thread(target=work, args=(out,))
    thread.start()
    thread.join()
    print(out[0])
""")
PAGES_TOUCHED = 100 * 3 * 100


def faults(setup: str) -> int:
    env = {"PATH": "/usr/bin:/bin"}  # no GLIBC_TUNABLES of the caller's
    result = subprocess.run([sys.executable, "-c", setup + WORKLOAD], capture_output=True, text=True, env=env,
                            check=True)
    return int(result.stdout.split()[-1])


def test_tuned_process_reuses_large_buffers() -> None:
    tuned = faults("from ferlite.services.common.memory import tune_malloc\nassert tune_malloc()\n")
    assert tuned < PAGES_TOUCHED // 10, f"{tuned} page faults: freed buffers went back to the kernel"


@pytest.mark.parametrize("tuning", [True, False])
def test_a_started_server_tunes_its_process_unless_told_not_to(tuning) -> None:
    setup = textwrap.dedent(f"""
        from ferlite.services.common.config import ServerConfig
        from ferlite.services.common.server import GrpcServer
        server = GrpcServer(ServerConfig(metrics_port=-1, malloc_tuning={tuning}), []).start()
    """)
    count = faults(setup)
    if tuning:
        assert count < PAGES_TOUCHED // 10, f"{count} page faults with malloc_tuning on"
    else:  # glibc's own dynamic thresholds: the buffers go back to the kernel every time
        assert count > PAGES_TOUCHED // 2, f"only {count} page faults with malloc_tuning off"


def test_child_processes_get_the_thresholds_unless_the_operator_set_their_own() -> None:
    assert tuned_environment({})["GLIBC_TUNABLES"] == TUNABLES
    other = tuned_environment({"GLIBC_TUNABLES": "glibc.pthread.rseq=0"})["GLIBC_TUNABLES"]
    assert other == f"glibc.pthread.rseq=0:{TUNABLES}"
    own = {"GLIBC_TUNABLES": "glibc.malloc.trim_threshold=1"}
    assert tuned_environment(own) == own


def test_embedded_triton_environment_carries_the_thresholds(tmp_path) -> None:
    pytest.importorskip("pytriton")
    from ferlite.services.classifier.triton import EmbeddedTriton

    tuned = EmbeddedTriton(tmp_path, tmp_path).environment()
    assert TUNABLES in tuned["GLIBC_TUNABLES"]
    plain = EmbeddedTriton(tmp_path, tmp_path, malloc_tuning=False).environment()
    assert TUNABLES not in plain.get("GLIBC_TUNABLES", "")
