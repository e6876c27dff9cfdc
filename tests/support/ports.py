"""Ports for the servers tests start, chosen so nothing else can take them before they bind.

A port the kernel hands out for `bind(0)` is an ephemeral port: released, it can be given to any
outgoing connection (a client's source port) before the test's server binds it, which a chart run
with a dozen pods starting one after another hit in CI ("Address already in use" for face
detection's port while Triton was still starting). Ports below the kernel's ephemeral range are
never used as source ports, so only an explicit bind can take them; each is handed out once per
test process.
"""

from __future__ import annotations

import random
import socket
from pathlib import Path

LOWEST = 20000
_handed_out: set[int] = set()


def ephemeral_range() -> tuple[int, int]:
    """The kernel's range of source ports (Linux), or IANA's 49152-65535 where it cannot be read."""
    try:
        low, high = (int(v) for v in Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split())
        return low, high
    except (OSError, ValueError):
        return 49152, 65535


def free_port() -> int:
    """A local TCP port free now, below the ephemeral range, not handed out before by this process."""
    low, _ = ephemeral_range()
    top = max(low, LOWEST + 1000)
    rng = random.Random()
    for _ in range(500):
        port = rng.randrange(LOWEST, top)
        if port in _handed_out:
            continue
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        _handed_out.add(port)
        return port
    raise RuntimeError(f"no free port in {LOWEST}-{top}")
