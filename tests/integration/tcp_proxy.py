"""A TCP forwarder in front of the apiserver that can make the connections through it fail.

TLS passes through untouched (the apiserver's certificate names 127.0.0.1, as the proxy does).
`deafen()` is a half-open connection, the failure a watch cannot notice: bytes from the server
on the connections open now are dropped (and counted: `dropped`), while the connections themselves stay up until the
server closes them; connections opened afterwards work. `cut()` closes every connection and
refuses new ones until `restore()`.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterator


class TcpProxy:
    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self.listener.getsockname()[1])
        self.refusing = False
        self.dropped = 0  # chunks from the server that deafened connections never passed on
        self._deaf: set[socket.socket] = set()
        self._open: list[tuple[socket.socket, socket.socket]] = []
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    def deafen(self) -> None:
        with self._lock:
            self._deaf.update(client for client, _ in self._open)

    def cut(self) -> None:
        with self._lock:
            self.refusing = True
            pairs, self._open = self._open, []
        for pair in pairs:
            _close(*pair)

    def restore(self) -> None:
        self.refusing = False

    def close(self) -> None:
        self.cut()
        self.listener.close()

    def _accept(self) -> None:
        with contextlib.suppress(OSError):
            while True:
                client, _ = self.listener.accept()
                if self.refusing:
                    client.close()
                    continue
                server = socket.create_connection(("127.0.0.1", self.target_port))
                with self._lock:
                    self._open.append((client, server))
                threading.Thread(target=self._pump, args=(client, server, None), daemon=True).start()
                threading.Thread(target=self._pump, args=(server, client, client), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket, deaf_key: socket.socket | None) -> None:
        for chunk in _chunks(source):
            if deaf_key is not None and deaf_key in self._deaf:
                with self._lock:
                    self.dropped += 1
                continue
            with contextlib.suppress(OSError):
                sink.sendall(chunk)
        _close(source, sink)


def _chunks(sock: socket.socket) -> Iterator[bytes]:
    with contextlib.suppress(OSError):
        while chunk := sock.recv(65536):
            yield chunk


def _close(*sockets: socket.socket) -> None:
    for sock in sockets:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)
        sock.close()
