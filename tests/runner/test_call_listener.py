"""The learner's end of the Ray actors' sockets (`tlrl.runner.ray_channel.CallListener`), without Ray: every
wait is bounded (an absolute handshake deadline, a cap on handshakes at once, a receive timeout inside a
message, keepalive), the accept loop does not spin, and the backlog holds every actor."""
import os
import shutil
import socket
import struct
import subprocess
import sys
import threading
import time

import pytest

from tlrl.runner import ray_channel
from tlrl.runner.ray_channel import CallListener, connect

GUARD = 30.0  # seconds a socket waits before a test gives up: only against a hang


@pytest.fixture
def listener():
    listener = CallListener("127.0.0.1")
    try:
        yield listener
    finally:
        listener.close()


def _challenged(sock) -> bytes:
    """What the listener sends a new connection before it answers: the key challenge (b"" if it closed it)."""
    sock.settimeout(GUARD)
    return sock.recv(4096)


def _closed_by_server(sock, drip_every: float, limit: float) -> bool:
    """Send one byte every `drip_every` s (a length header announcing 200 bytes, then those bytes) until the
    server closes the connection (True) or `limit` s pass (False); the socket timeout paces the drip."""
    sock.settimeout(drip_every)
    drip = struct.pack("!i", 200) + b"x" * 200
    for k in range(int(limit / drip_every)):
        try:
            if sock.recv(4096) == b"":
                return True
        except socket.timeout:
            pass
        except OSError:  # reset by the server
            return True
        try:
            sock.send(drip[k:k + 1])
        except OSError:
            return True
    return False


def _take(listener, n: int = 1):
    taken = []
    while len(taken) < n and listener.wakeup.poll(GUARD):
        taken += listener.take()
    return taken


def test_a_peer_dripping_bytes_is_dropped_at_the_absolute_handshake_deadline_while_actors_get_in(monkeypatch):
    """Each byte came well within the old per-read timeout, so a dripping peer kept its handshake (and a
    thread) alive as long as it liked (43 minutes in a measurement)."""
    monkeypatch.setattr(ray_channel, "_HELLO_SECONDS", 2.0)
    listener = CallListener("127.0.0.1")
    try:
        dripper = socket.create_connection(listener.address)
        assert b"#CHALLENGE#" in _challenged(dripper)
        result = {}
        thread = threading.Thread(target=lambda: result.update(closed=_closed_by_server(dripper, 0.5, 2.0 + 10.0)))
        thread.start()
        actor = connect(listener.address, listener.authkey)  # served while the dripper drips
        actor.send((0, 1))
        ((index, generation, conn),) = _take(listener)
        assert (index, generation) == (0, 1)
        thread.join()
        assert result["closed"], "the dripping peer was still connected 10 s after the handshake deadline"
        conn.send("still talking")
        assert actor.recv() == "still talking"
        actor.close()
        conn.close()
        dripper.close()
    finally:
        listener.close()


def test_handshakes_beyond_the_cap_are_closed_unanswered_and_an_actor_gets_in_once_a_slot_frees(monkeypatch):
    monkeypatch.setattr(ray_channel, "_HELLO_SECONDS", 2.0)
    listener = CallListener("127.0.0.1", max_handshakes=3)
    try:
        silent = [socket.create_connection(listener.address) for _ in range(3)]
        assert all(b"#CHALLENGE#" in _challenged(s) for s in silent)  # admitted: they hold every slot
        extra = [socket.create_connection(listener.address) for _ in range(4)]
        assert [_challenged(s) for s in extra] == [b""] * 4  # closed unanswered
        assert listener.refused == 4
        # An actor turned away retries (`connect`) and gets in once the silent peers hit their deadline.
        actor = connect(listener.address, listener.authkey)
        actor.send((1, 7))
        ((index, generation, conn),) = _take(listener)
        assert (index, generation) == (1, 7) and listener.refused >= 4
        assert all(_challenged(s).count(b"#CHALLENGE#") == 0 for s in silent)  # dropped at the deadline
        for s in silent + extra + [actor, conn]:
            s.close()
    finally:
        listener.close()


def test_a_message_that_stops_half_way_raises_instead_of_blocking_and_connections_are_kept_alive():
    listener = CallListener("127.0.0.1", message_seconds=0.5)
    try:
        actor = connect(listener.address, listener.authkey)
        actor.send((0, 1))
        ((_, _, conn),) = _take(listener)
        for end in (actor, conn):  # a peer that vanished without a reset ends the connection with an error
            with socket.socket(fileno=os.dup(end.fileno())) as sock:
                assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) == 1
                if hasattr(socket, "TCP_KEEPIDLE"):
                    assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE) == ray_channel._KEEPALIVE[0]
        os.write(actor.fileno(), struct.pack("!i", 1000) + b"x" * 10)  # a result that stops after 10 of 1000 bytes
        outcome = []

        def receive():
            try:
                outcome.append(conn.recv_bytes())
            except OSError as exc:
                outcome.append(exc)

        reader = threading.Thread(target=receive, daemon=True)
        reader.start()
        reader.join(GUARD)
        assert outcome and isinstance(outcome[0], OSError), "the learner still waits for the rest of the message"
        actor.close()
        conn.close()
    finally:
        listener.close()


def test_close_drops_handshakes_in_progress_and_ends_its_threads(monkeypatch):
    monkeypatch.setattr(ray_channel, "_HELLO_SECONDS", 600.0)
    before = {t for t in threading.enumerate() if t.name.startswith("tlrl-ray")}
    listener = CallListener("127.0.0.1")
    silent = socket.create_connection(listener.address)
    assert b"#CHALLENGE#" in _challenged(silent)
    listener.close()
    assert silent.recv(4096) == b""  # dropped by close, long before its deadline
    silent.close()
    deadline = time.monotonic() + GUARD
    while time.monotonic() < deadline and {t for t in threading.enumerate() if t.name.startswith("tlrl-ray")} - before:
        time.sleep(0.05)
    assert not {t for t in threading.enumerate() if t.name.startswith("tlrl-ray")} - before


@pytest.mark.skipif(shutil.which("ss") is None, reason="needs ss to read a listening socket's backlog")
def test_the_listen_backlog_holds_every_actor():
    """The backlog was 1: of 32 actors connecting at once, 19 waited a second or more (SYN retransmits)."""
    with open("/proc/sys/net/core/somaxconn") as fh:
        somaxconn = int(fh.read())
    for asked, expected in ((None, 128), (200, 200)):
        listener = CallListener("127.0.0.1") if asked is None else CallListener("127.0.0.1", backlog=asked)
        try:
            port = listener.address[1]
            out = subprocess.run(["ss", "-ltnH", f"sport = :{port}"], capture_output=True, text=True).stdout.split()
            assert int(out[2]) == min(expected, somaxconn)  # Send-Q of a listening socket: its backlog
        finally:
            listener.close()


_NO_SPIN = r"""
import os, resource, sys, threading, time
from tlrl.runner.ray_channel import CallListener

listener = CallListener("127.0.0.1")
stat = os.open(f"/proc/self/task/{listener._thread.native_id}/stat", os.O_RDONLY)
ticks = os.sysconf("SC_CLK_TCK")

def cpu_seconds():
    fields = os.pread(stat, 4096, 0).decode().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / ticks

soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (len(os.listdir("/proc/self/fd")) + 16, hard))
full = threading.Event()

def rest_of_the_learner():  # takes every descriptor that frees up, as a busy process does
    while True:
        try:
            os.open("/dev/null", os.O_RDONLY)
        except OSError:
            full.set()
            time.sleep(0.01)

threading.Thread(target=rest_of_the_learner, daemon=True).start()
full.wait()
print(listener.address[1], flush=True)
sys.stdin.readline()  # a peer has connected: accept() took the last descriptor, the next one fails
time.sleep(0.5)
start = cpu_seconds()
time.sleep(2.0)
print(cpu_seconds() - start, flush=True)
"""


def test_the_accept_loop_waits_instead_of_spinning_when_file_descriptors_run_out():
    """With the learner out of descriptors (silent peers held them), accept() failed with EMFILE and was
    retried at once, forever: one core at 100%. The listener runs in a process of its own."""
    proc = subprocess.Popen([sys.executable, "-c", _NO_SPIN], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            text=True)
    peers = []
    try:
        port = int(proc.stdout.readline())
        peers = [socket.create_connection(("127.0.0.1", port)) for _ in range(3)]
        proc.stdin.write("go\n")
        proc.stdin.flush()
        used = float(proc.stdout.readline())
    finally:
        for peer in peers:
            peer.close()
        proc.kill()
        proc.wait()
    assert used < 0.5, f"the accept thread used {used:.2f} s of CPU in 2 s while out of file descriptors"
