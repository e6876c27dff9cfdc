"""Test servers get ports no outgoing connection can take before they bind."""

from __future__ import annotations

import socket

from tests.support.ports import LOWEST, ephemeral_range, free_port


def test_ports_are_free_distinct_and_below_the_ephemeral_range() -> None:
    low, _ = ephemeral_range()
    ports = [free_port() for _ in range(50)]
    assert len(set(ports)) == 50  # never the same port twice, even before anything binds it
    assert all(LOWEST <= p < low for p in ports), ports
    with socket.socket() as s:
        s.bind(("127.0.0.1", ports[0]))  # and free


def test_a_clients_source_port_is_never_one_of_them() -> None:
    """What the chart run met: an outgoing connection's source port is ephemeral, so it cannot be a
    port handed out here."""
    low, high = ephemeral_range()
    with socket.socket() as server:
        server.bind(("127.0.0.1", free_port()))
        server.listen()
        with socket.create_connection(server.getsockname()) as client:
            assert low <= client.getsockname()[1] <= high
