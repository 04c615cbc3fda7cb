"""A TCP forwarder on loopback that a test can cut and restore: Cassandra "going away" in a
fraction of a second, without restarting a real node (which takes half a minute).

Cut: the listener closes (new connections are refused) and every forwarded connection is reset,
which is what a client sees when a node dies or its host drops off the network. Restore: the
listener comes back on the same port.
"""

from __future__ import annotations

import contextlib
import random
import socket
import struct
import threading


class TcpProxy:
    """Forward 127.0.0.1:<port> to target; cut() and restore() toggle the path."""

    def __init__(self, target_port: int, target_host: str = "127.0.0.1") -> None:
        self.target = (target_host, target_port)
        self._lock = threading.Lock()
        self._conns: list[socket.socket] = []
        self._listener: socket.socket | None = None
        # Below the kernel's ephemeral range (32768-60999), so no client socket can take the port
        # while it is cut and restore() can always listen on it again.
        for _ in range(100):
            self.port = random.randrange(20000, 32000)
            try:
                self.restore()
                return
            except OSError:
                continue
        raise OSError("no free port for the proxy between 20000 and 32000")

    @property
    def up(self) -> bool:
        """True while connections are forwarded."""
        return self._listener is not None

    def restore(self) -> None:
        """Listen again (idempotent)."""
        with self._lock:
            if self._listener is not None:
                return
            s = socket.socket()
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                s.bind(("127.0.0.1", self.port))
            except OSError:
                s.close()
                raise
            s.listen(64)
            self._listener = s
        threading.Thread(target=self._accept, args=(s,), daemon=True).start()

    def cut(self) -> None:
        """Refuse new connections and reset the open ones (idempotent)."""
        with self._lock:
            listener, self._listener = self._listener, None
            conns, self._conns = self._conns, []
        if listener is not None:
            with contextlib.suppress(OSError):
                listener.shutdown(socket.SHUT_RDWR)  # wakes the thread blocked in accept()
            listener.close()
        for c in conns:
            try:
                c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # RST, not FIN
                c.close()
            except OSError:
                pass

    def close(self) -> None:
        """Stop for good."""
        self.cut()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.target, timeout=5)
                upstream.settimeout(None)
            except OSError:
                client.close()
                continue
            with self._lock:
                if self._listener is not listener:
                    client.close()
                    upstream.close()
                    return
                self._conns += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)
