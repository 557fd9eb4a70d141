"""Does a ``ray_address`` answer as Ray does? A short probe of Ray's protocol, before ``ray.init``.

A Ray head node's GCS (``host:6379``) and its Ray Client server (``ray://host:10001``) are gRPC servers, and
gRPC runs over HTTP/2: to a client's connection preface (``PRI * HTTP/2.0...`` and a SETTINGS frame) such a
server answers with its own SETTINGS frame at once. A web server, a database or a closed service does not,
and ``ray.init`` against it waits for minutes; :func:`not_ray` tells within a few seconds, before a run folder
is written. A cluster that serves TLS (``RAY_USE_TLS=1``) is not probed (its handshake comes first).
"""

from __future__ import annotations

import os
import socket
import time

#: HTTP/2's client connection preface, then an empty SETTINGS frame (length 0, type 4, flags 0, stream 0).
PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + bytes([0, 0, 0, 4, 0, 0, 0, 0, 0])
SETTINGS = 4


def not_ray(host: str, port: int, timeout: float = 5.0) -> str | None:
    """None when ``host:port`` speaks HTTP/2 (gRPC, as Ray's GCS and Ray Client do) or TLS is on; else what it
    did instead, in words. An address that cannot be reached at all raises the OSError of the connection."""
    if os.environ.get("RAY_USE_TLS", "").lower() in ("1", "true"):
        return None
    deadline = time.monotonic() + timeout
    with socket.create_connection((host, port), timeout=timeout) as s:
        try:
            s.sendall(PREFACE)
            head = b""
            while len(head) < 9:  # the first frame's header: length (3), type (1), flags (1), stream (4)
                s.settimeout(max(0.05, deadline - time.monotonic()))
                chunk = s.recv(9 - len(head))
                if not chunk:
                    return "it closed the connection without answering in Ray's protocol (gRPC over HTTP/2)"
                head += chunk
        except TimeoutError:
            return f"it accepted the connection but did not answer in Ray's protocol within {timeout:g} s"
        except OSError as e:
            return f"it reset the connection instead of answering in Ray's protocol ({e.strerror or e})"
    if head[3] == SETTINGS:
        return None
    shown = head.decode("ascii", "replace")
    shown = "".join(c if c.isprintable() else "." for c in shown)
    return f"it answered {shown!r}..., not in Ray's protocol (gRPC over HTTP/2): is this the right port?"
