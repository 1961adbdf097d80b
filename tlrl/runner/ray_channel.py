"""The learner's end of the Ray actors' direct sockets (`CallListener`), used by `tlrl.runner.ray_pool`.

The pool listens with `multiprocessing.connection.Listener` on an ephemeral port,
with a fresh random 32-byte key: a peer must pass the HMAC challenge of that key before
anything it sends is unpickled (as for multiprocessing's managers); the key reaches the
actors as an argument of their Ray task. The listener binds 127.0.0.1 when `init_ray`
started a local Ray (as Ray itself does then), else the driver's node address as Ray knows
it (the actors on other nodes connect to it: the nodes must reach the driver, as they must
for Ray). Each actor connects in its long-running `serve` task and says who it is (worker
index and generation), so the connection of a replaced actor is never taken for its
successor's. A daemon thread accepts connections; each is greeted on a short thread of its
own with a deadline (see `CallListener`).
"""
from __future__ import annotations

import collections
import multiprocessing.connection as mpc
import os
import socket
import struct
import threading
from typing import Any, Deque, List, Tuple

_HELLO_SECONDS = 10.0  # an authenticated peer sends its hello at once; one that does not is dropped


def _receive_timeout(conn, seconds: float) -> None:
    """Make a blocking read on `conn` fail after `seconds` (0: never), in the kernel (SO_RCVTIMEO)."""
    with socket.fromfd(conn.fileno(), socket.AF_INET, socket.SOCK_STREAM) as sock:  # a duplicate of the fd
        whole = int(seconds)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO,
                        struct.pack("ll", whole, int((seconds - whole) * 1e6)))


def _no_delay(conn) -> None:
    """Send small messages at once (no Nagle delay): a call and its result are one round trip."""
    with socket.fromfd(conn.fileno(), socket.AF_INET, socket.SOCK_STREAM) as sock:  # a duplicate of the fd
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


class CallListener:
    """The learner's end of the actors' sockets: an authenticated listener and its accept thread.

    The thread accepts connections; each one is greeted on a short thread of its own: the
    `multiprocessing` key handshake (a peer without `authkey` fails it and is dropped), then its
    hello `(index, generation)`, both within `_HELLO_SECONDS` (a kernel receive timeout), so a
    peer that connects and stays silent delays no one else. A greeted connection is left as
    `(index, generation, conn)` for `take()`, which the pool calls in its own thread. `wakeup`
    becomes readable when something is left, so the pool can wait on it with its connections.
    """

    def __init__(self, host: str):
        self.authkey = os.urandom(32)
        # No authkey here: the handshake runs per connection in `_greet`, with a deadline.
        self._listener = mpc.Listener((host, 0), family="AF_INET")
        self.address: Tuple[str, int] = self._listener.address
        self.wakeup, self._wake = mpc.Pipe(duplex=False)
        self._arrived: Deque[Tuple[int, int, Any]] = collections.deque()
        self._lock = threading.Lock()
        self._closing = False
        self._thread = threading.Thread(target=self._accept, name="tlrl-ray-accept", daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while not self._closing:
            try:
                conn = self._listener.accept()
            except OSError:  # a peer that hung up at once
                continue
            if self._closing:
                conn.close()
                return
            threading.Thread(target=self._greet, args=(conn,), name="tlrl-ray-greet", daemon=True).start()

    def _greet(self, conn) -> None:
        """Authenticate `conn` and read its hello, or drop it; either within `_HELLO_SECONDS`."""
        try:
            _receive_timeout(conn, _HELLO_SECONDS)
            mpc.deliver_challenge(conn, self.authkey)  # what Listener.accept does with an authkey
            mpc.answer_challenge(conn, self.authkey)
            index, generation = conn.recv()  # safe to unpickle: the peer holds the key
            _receive_timeout(conn, 0.0)  # calls may take as long as they take
            _no_delay(conn)
        except Exception:  # noqa: BLE001 - a wrong key, silence past the deadline, a hang-up: not ours
            conn.close()
            return
        with self._lock:
            if self._closing:
                conn.close()
                return
            self._arrived.append((int(index), int(generation), conn))
            try:
                self._wake.send_bytes(b"!")
            except OSError:  # closing
                pass

    def take(self) -> List[Tuple[int, int, Any]]:
        """The connections accepted since the last call, as `(index, generation, conn)`."""
        while self.wakeup.poll():  # first, so that a connection arriving meanwhile wakes the next wait
            self.wakeup.recv_bytes()
        out = []
        while self._arrived:
            out.append(self._arrived.popleft())
        return out

    def close(self) -> None:
        """Stop accepting (the accept thread ends) and close what was not taken."""
        with self._lock:
            self._closing = True
        try:  # wake the thread up from accept()
            socket.create_connection(self.address, timeout=1.0).close()
        except OSError:
            pass
        self._thread.join(timeout=2.0)
        self._listener.close()
        for *_, conn in self.take():
            conn.close()
        self.wakeup.close()
        self._wake.close()
