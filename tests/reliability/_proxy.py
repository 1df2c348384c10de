"""A TCP proxy on loopback, run as a separate process, to cut a database off on command.

Run as a script it forwards ``127.0.0.1:<port>`` to an upstream address and obeys
lines on stdin: ``down`` (close every connection and refuse new ones: a stopped
server), ``hang`` (accept and keep connections but forward nothing: a hung server),
``up`` (forward again) and ``quit``. It answers each command with ``ok`` once applied.
:class:`Proxy` drives it from a test.
"""

from __future__ import annotations

import contextlib
import selectors
import socket
import subprocess
import sys
import threading
from urllib.parse import urlsplit, urlunsplit

UP, DOWN, HANG = "up", "down", "hang"


class Proxy:
    """Test-side handle: ``with Proxy("127.0.0.1", 5432) as proxy: proxy.set("down")``."""

    def __init__(self, upstream_host: str, upstream_port: int) -> None:
        self._process = subprocess.Popen(
            [sys.executable, __file__, upstream_host, str(upstream_port)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1,
        )
        assert self._process.stdout is not None
        self.port = int(self._process.stdout.readline())

    def set(self, mode: str) -> None:
        """Switch mode; returns once the proxy applied it."""
        assert self._process.stdin is not None and self._process.stdout is not None
        self._process.stdin.write(mode + "\n")
        self._process.stdin.flush()
        answer = self._process.stdout.readline().strip()
        if answer != "ok":
            raise RuntimeError(f"proxy did not accept {mode!r}: {answer!r}")

    def url_for(self, url: str) -> str:
        """``url`` with its host and port replaced by this proxy's."""
        parts = urlsplit(url)
        userinfo = parts.netloc.rpartition("@")[0]
        netloc = f"{userinfo + '@' if userinfo else ''}127.0.0.1:{self.port}"
        return urlunsplit(parts._replace(netloc=netloc))

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.set("quit")
        try:
            self._process.wait(5)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()

    def __enter__(self) -> Proxy:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


def upstream_of(url: str) -> tuple[str, int]:
    """(host, port) a database URL points at."""
    parts = urlsplit(url)
    return parts.hostname or "127.0.0.1", parts.port or 5432


# --- the proxy process ---------------------------------------------------------------------


class _Server:
    def __init__(self, upstream: tuple[str, int]) -> None:
        self.upstream = upstream
        self.mode = UP
        self.lock = threading.Lock()
        self.selector = selectors.DefaultSelector()
        self.peers: dict[socket.socket, socket.socket] = {}
        self.listener = socket.socket()
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(128)
        self.listener.setblocking(False)
        self.selector.register(self.listener, selectors.EVENT_READ)
        self.wake_r, self.wake_w = socket.socketpair()
        self.selector.register(self.wake_r, selectors.EVENT_READ)

    def set_mode(self, mode: str) -> None:
        with self.lock:
            self.mode = mode
        self.wake_w.send(b"x")

    def run(self) -> None:
        while True:
            for key, _ in self.selector.select():
                sock = key.fileobj
                if sock is self.wake_r:
                    self.wake_r.recv(4096)
                    if self.mode == DOWN:
                        self._drop_all()
                elif sock is self.listener:
                    self._accept()
                else:
                    self._pump(sock)  # type: ignore[arg-type]

    def _accept(self) -> None:
        try:
            client, _ = self.listener.accept()
        except BlockingIOError:
            return
        if self.mode == DOWN:
            client.close()  # like a stopped server: connection refused/reset
            return
        try:
            server = socket.create_connection(self.upstream, timeout=5)
        except OSError:
            client.close()
            return
        for sock in (client, server):
            # As libpq and the server do: without it, Nagle's algorithm and delayed
            # ACKs stall each small forwarded message by up to 40 ms.
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sock.setblocking(False)
            self.selector.register(sock, selectors.EVENT_READ)
        self.peers[client] = server
        self.peers[server] = client

    def _pump(self, sock: socket.socket) -> None:
        try:
            data = sock.recv(1 << 16)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data:
            self._close_pair(sock)
            return
        if self.mode == HANG:
            return  # swallowed: the other side waits forever
        peer = self.peers.get(sock)
        if peer is None:
            return
        try:
            peer.setblocking(True)
            peer.sendall(data)
            peer.setblocking(False)
        except OSError:
            self._close_pair(sock)

    def _close_pair(self, sock: socket.socket) -> None:
        peer = self.peers.pop(sock, None)
        for s in (sock, peer):
            if s is None:
                continue
            self.peers.pop(s, None)
            with contextlib.suppress(Exception):
                self.selector.unregister(s)
            with contextlib.suppress(OSError):
                s.close()

    def _drop_all(self) -> None:
        for sock in list(self.peers):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            self._close_pair(sock)


def _main() -> None:
    server = _Server((sys.argv[1], int(sys.argv[2])))
    threading.Thread(target=server.run, daemon=True).start()
    print(server.listener.getsockname()[1], flush=True)
    for line in sys.stdin:
        command = line.strip()
        if command == "quit":
            print("ok", flush=True)
            return
        if command in (UP, DOWN, HANG):
            server.set_mode(command)
            print("ok", flush=True)
        else:
            print(f"unknown {command}", flush=True)


if __name__ == "__main__":
    _main()
