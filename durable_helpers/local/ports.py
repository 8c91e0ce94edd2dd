"""TCP ports on this machine: ask the OS for free ones, check that one can be listened on.

Example:
    >>> sidecar, http = free_ports(2)
    >>> port_taken("127.0.0.1", sidecar)
    False
"""

from __future__ import annotations

import socket

LOCALHOST = "127.0.0.1"


def free_ports(count: int, host: str = LOCALHOST) -> tuple[int, ...]:
    """Ask the OS for ``count`` distinct free TCP ports on ``host``.

    Example:
        >>> len(set(free_ports(3)))
        3
    """
    sockets = []
    try:
        for _ in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.bind((host, 0))
            sockets.append(sock)
        return tuple(sock.getsockname()[1] for sock in sockets)
    finally:
        for sock in sockets:
            sock.close()


def port_taken(host: str, port: int) -> bool:
    """True when another program listens on (or holds) ``host:port``, so a server cannot bind it.

    The probe binds with SO_REUSEADDR, as servers do: connections a stopped server left in
    TIME_WAIT (for about a minute after every stop) do not make the port taken.

    Example:
        >>> with socket.create_server(("127.0.0.1", 0)) as server:
        ...     port_taken("127.0.0.1", server.getsockname()[1])
        True
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return True
    return False
