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
own with an absolute deadline, and only so many at once (see `CallListener`).

Every wait here is bounded: a handshake by `_HELLO_SECONDS` in all (not per read), a message
that has begun by `message_seconds` per read (a peer that stops in the middle of one is
dropped), and an idle connection by TCP keepalive on both ends (a peer whose machine vanished
without a reset is noticed within about half a minute).
"""
from __future__ import annotations

import collections
import errno
import multiprocessing.connection as mpc
import os
import socket
import struct
import threading
import time
from typing import Any, Deque, Dict, List, Optional, Tuple

_HELLO_SECONDS = 10.0  # absolute deadline of a handshake (key challenge both ways, then the hello)
_MAX_HANDSHAKES = 32  # handshakes in progress at once; more connections are closed at once (actors retry)
BACKLOG = 128  # pending connections the kernel queues (at least; a pool asks for one per actor)
MESSAGE_SECONDS = 60.0  # per read, once a message has begun, when the pool sets no call deadline
_CONNECT_SECONDS = 60.0  # how long an actor retries while the learner turns handshakes away
_KEEPALIVE = (10, 5, 3)  # seconds idle, seconds between probes, probes: a vanished peer is dropped in ~25 s
_ACCEPT_PAUSE_SECONDS = 0.1  # after accept() failed for lack of file descriptors or memory: no busy loop
_RESOURCE_ERRORS = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})


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


def _keepalive(conn) -> None:
    """Probe an idle connection (`_KEEPALIVE`), so that a peer gone without a reset ends it with an error."""
    idle, interval, count = _KEEPALIVE
    with socket.fromfd(conn.fileno(), socket.AF_INET, socket.SOCK_STREAM) as sock:  # a duplicate of the fd
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        for name, value in (("TCP_KEEPIDLE", idle), ("TCP_KEEPINTVL", interval), ("TCP_KEEPCNT", count)):
            if hasattr(socket, name):  # Linux; elsewhere the system's keepalive times apply
                sock.setsockopt(socket.IPPROTO_TCP, getattr(socket, name), value)


def _cut(conn) -> None:
    """Shut `conn`'s socket down: a thread blocked reading it returns at once (closing the fd would not wake it)."""
    try:
        with socket.fromfd(conn.fileno(), socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.shutdown(socket.SHUT_RDWR)
    except OSError:  # already closed by the peer
        pass


def connect(address: Tuple[str, int], authkey: bytes):
    """The actor's end: connect to the learner's `CallListener` and pass the key handshake.

    Retries for up to `_CONNECT_SECONDS` while the learner turns the connection away (too many
    handshakes at once: it closes the connection unanswered); other errors are raised at once.
    The connection sends small messages at once and is kept alive (`_keepalive`).
    """
    deadline, pause = time.monotonic() + _CONNECT_SECONDS, 0.05
    while True:
        try:
            conn = mpc.Client(tuple(address), family="AF_INET", authkey=authkey)
            break
        except (EOFError, ConnectionResetError):  # turned away before the challenge: try again shortly
            if time.monotonic() + pause > deadline:
                raise
            time.sleep(pause)
            pause = min(2 * pause, 1.0)
    _no_delay(conn)
    _keepalive(conn)
    return conn


class CallListener:
    """The learner's end of the actors' sockets: an authenticated listener and its accept thread.

    The thread accepts connections; each one is greeted on a short thread of its own: the
    `multiprocessing` key handshake (a peer without `authkey` fails it and is dropped), then its
    hello `(index, generation)`, all within `_HELLO_SECONDS` from the accept (a watchdog thread
    shuts the socket of a late one down, so a peer that stays silent or drips one byte at a time
    is dropped at that deadline and delays no one else). At most `max_handshakes` run at once:
    a connection beyond them is closed unanswered (`refused` counts them; an actor retries, see
    `connect`), so a flood of connections cannot exhaust threads or file descriptors. A greeted
    connection gets a receive timeout of `message_seconds` per read (a result that stops half-way
    raises instead of blocking the pool) and keepalive, and is left as `(index, generation, conn)`
    for `take()`, which the pool calls in its own thread. `wakeup` becomes readable when
    something is left, so the pool can wait on it with its connections.

    Args:
        host: address to listen on (an ephemeral port is chosen).
        backlog: connections the kernel queues before they are accepted (pass at least the number
            of actors: they all connect at once when the pool starts).
        max_handshakes: handshakes in progress at once.
        message_seconds: receive timeout of a greeted connection, per read (None: none).
    """

    def __init__(self, host: str, *, backlog: int = BACKLOG, max_handshakes: int = _MAX_HANDSHAKES,
                 message_seconds: Optional[float] = MESSAGE_SECONDS):
        self.authkey = os.urandom(32)
        self.backlog, self.max_handshakes, self.message_seconds = int(backlog), int(max_handshakes), message_seconds
        # No authkey here: the handshake runs per connection in `_greet`, with a deadline.
        self._listener = mpc.Listener((host, 0), family="AF_INET", backlog=self.backlog)
        self.address: Tuple[str, int] = self._listener.address
        self.wakeup, self._wake = mpc.Pipe(duplex=False)
        self._arrived: Deque[Tuple[int, int, Any]] = collections.deque()
        self._greeting: Dict[int, Tuple[float, Any]] = {}  # id(conn) -> (deadline, conn), handshakes in progress
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._closing = False
        #: connections closed unanswered because `max_handshakes` handshakes were in progress.
        self.refused = 0
        self._thread = threading.Thread(target=self._accept, name="tlrl-ray-accept", daemon=True)
        self._watchdog = threading.Thread(target=self._watch, name="tlrl-ray-handshake-deadline", daemon=True)
        self._thread.start()
        self._watchdog.start()

    def _accept(self) -> None:
        while not self._closing:
            try:
                conn = self._listener.accept()
            except OSError as exc:  # a peer that hung up at once, or no file descriptor left
                if exc.errno in _RESOURCE_ERRORS and not self._closing:
                    time.sleep(_ACCEPT_PAUSE_SECONDS)  # the queued connection stays: do not spin on it
                continue
            with self._lock:
                admitted = not self._closing and len(self._greeting) < self.max_handshakes
                if admitted:
                    self._greeting[id(conn)] = (time.monotonic() + _HELLO_SECONDS, conn)
                    self._changed.notify()
                elif not self._closing:
                    self.refused += 1
            if not admitted:
                conn.close()
                continue
            threading.Thread(target=self._greet, args=(conn,), name="tlrl-ray-greet", daemon=True).start()

    def _watch(self) -> None:
        """Shut down the sockets of handshakes past their deadline (their threads then drop them)."""
        with self._changed:
            while not self._closing:
                now = time.monotonic()
                for key, (deadline, conn) in list(self._greeting.items()):
                    if deadline <= now:
                        del self._greeting[key]
                        _cut(conn)
                soonest = min((deadline for deadline, _ in self._greeting.values()), default=None)
                self._changed.wait(None if soonest is None else max(soonest - now, 0.0))

    def _greet(self, conn) -> None:
        """Authenticate `conn` and read its hello, or drop it; all by its deadline (see `_watch`)."""
        hello = None
        try:
            mpc.deliver_challenge(conn, self.authkey)  # what Listener.accept does with an authkey
            mpc.answer_challenge(conn, self.authkey)
            index, generation = conn.recv()  # safe to unpickle: the peer holds the key
            hello = (int(index), int(generation))
            _receive_timeout(conn, self.message_seconds or 0.0)
            _no_delay(conn)
            _keepalive(conn)
        except Exception:  # noqa: BLE001 - a wrong key, cut at the deadline, a hang-up: not ours
            hello = None
        with self._lock:
            # Popped here or by the watchdog, never both: the socket stays open until then.
            in_time = self._greeting.pop(id(conn), None) is not None
            if hello is not None and in_time and not self._closing:
                self._arrived.append((*hello, conn))
                try:
                    self._wake.send_bytes(b"!")
                except OSError:  # closing
                    pass
                return
        conn.close()

    def take(self) -> List[Tuple[int, int, Any]]:
        """The connections accepted since the last call, as `(index, generation, conn)`."""
        while self.wakeup.poll():  # first, so that a connection arriving meanwhile wakes the next wait
            self.wakeup.recv_bytes()
        out = []
        while self._arrived:
            out.append(self._arrived.popleft())
        return out

    def close(self) -> None:
        """Stop accepting (the accept and watchdog threads end), drop the handshakes in progress and
        close what was not taken."""
        with self._lock:
            self._closing = True
            for _, conn in self._greeting.values():
                _cut(conn)  # their threads close them
            self._greeting.clear()
            self._changed.notify()
        try:  # wake the thread up from accept()
            socket.create_connection(self.address, timeout=1.0).close()
        except OSError:
            pass
        self._thread.join(timeout=2.0)
        self._watchdog.join(timeout=2.0)
        self._listener.close()
        for *_, conn in self.take():
            conn.close()
        self.wakeup.close()
        self._wake.close()
