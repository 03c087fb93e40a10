r"""The roll call: ember-launch hears from every rank's host how the rank ended, so that
when a whole host dies the launcher names it.

mpiexec says that a process died, not where; and once one host is gone it kills every
other rank at once, so the survivors have no time to say anything. ember-launch therefore
listens on a TCP port of its own (``EMBER_ROLLCALL=address:port`` in the ranks'
environment). Each rank's bootstrap (launch/_rank.py) leaves a *reporter* behind: a small
process in its own session, outside mpiexec's reach, that connects and says that the rank
started (``start RANK HOST``), then forwards how it ended (``exit RANK CODE``,
``signal RANK N``) or, when the bootstrap itself was killed (mpiexec cleaning up), says so
(``killed RANK``) a moment later. A host whose processes all die, or which loses power,
takes its reporters with it: its ranks are the ones that started and never said
anything, and ember-launch prints::

    ember-launch: lost ranks 2, 3 on host hostB (no exit status: the host or its processes died)

Standard library only.
"""

from __future__ import annotations

import fcntl
import selectors
import socket
import struct
import threading
import time

ROLLCALL_VAR = "EMBER_ROLLCALL"
FINAL = ("exit", "signal", "killed")  # the messages that say how a rank ended
SETTLE_S = 2.0  # how long, after mpiexec ends, the reporters of live hosts get to answer


def interface_address(name: str) -> str | None:
    """The IPv4 address of network interface `name` (Linux), or None."""
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            packed = struct.pack("256s", name.encode()[:15])
            raw = fcntl.ioctl(s.fileno(), 0x8915, packed)  # SIOCGIFADDR
        return socket.inet_ntoa(raw[20:24])
    except OSError:
        return None


def reachable_address(hosts: list[str], iface: str | None = None) -> str:
    """This host's address as the ranks on `hosts` reach it: the address of `iface` if
    given, else the source address the kernel would use towards the first host that
    resolves (no packet is sent), else 127.0.0.1 for a job on this host only."""
    if iface:
        found = interface_address(iface)
        if found:
            return found
    for host in hosts:
        try:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                s.connect((host, 9))
                return s.getsockname()[0]
        except OSError:
            continue
    if hosts:
        try:
            return socket.gethostbyname(socket.gethostname())
        except OSError:
            pass
    return "127.0.0.1"


class RollCall:
    r"""A listening socket and a thread that records what each rank's host reports.

    Example::

        >>> with RollCall("10.0.0.1") as roll:
        ...     env[ROLLCALL_VAR] = roll.address
        ...     rc = run(mpiexec...)
        >>> roll.lost_report()   # after a failure: lines naming the hosts that vanished
    """

    def __init__(self, bind_address: str):
        self._listener = socket.create_server(("", 0), backlog=256)
        self.address = f"{bind_address}:{self._listener.getsockname()[1]}"
        self.hosts: dict[int, str] = {}  # rank -> host, from "start"
        self.ended: dict[int, str] = {}  # rank -> its final message
        self._open: dict[socket.socket, bytes] = {}
        self._lock = threading.Lock()
        self._stop = False
        self._selector = selectors.DefaultSelector()
        self._selector.register(self._listener, selectors.EVENT_READ)
        self._thread = threading.Thread(target=self._serve, name="ember-rollcall", daemon=True)
        self._thread.start()

    def __enter__(self) -> RollCall:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _serve(self) -> None:
        while not self._stop:
            for key, _ in self._selector.select(timeout=0.1):
                sock = key.fileobj
                if sock is self._listener:
                    try:
                        conn, _ = self._listener.accept()
                    except OSError:
                        continue
                    conn.setblocking(False)
                    self._open[conn] = b""
                    self._selector.register(conn, selectors.EVENT_READ)
                    continue
                try:
                    data = sock.recv(4096)
                except OSError:  # reset: its host's processes died
                    data = b""
                if not data:
                    self._selector.unregister(sock)
                    del self._open[sock]
                    sock.close()
                    continue
                *lines, self._open[sock] = (self._open[sock] + data).split(b"\n")
                for line in lines:
                    self._heard(line.decode(errors="replace").split())

    def _heard(self, words: list[str]) -> None:
        if len(words) < 2 or not words[1].isdigit():
            return
        rank = int(words[1])
        with self._lock:
            if words[0] == "start" and len(words) >= 3:
                self.hosts[rank] = words[2]
            elif words[0] in FINAL:
                self.ended[rank] = " ".join([words[0], *words[2:]])

    def silent(self, settle: float = SETTLE_S) -> dict[str, list[int]]:
        """Host -> its ranks that started but never said how they ended, after giving the
        reporters of live hosts up to `settle` seconds."""
        deadline = time.monotonic() + settle
        while time.monotonic() < deadline:
            with self._lock:
                if set(self.hosts) <= set(self.ended):
                    break
            time.sleep(0.05)
        with self._lock:
            lost: dict[str, list[int]] = {}
            for rank, host in sorted(self.hosts.items()):
                if rank not in self.ended:
                    lost.setdefault(host, []).append(rank)
        return lost

    def lost_report(self, settle: float = SETTLE_S) -> list[str]:
        """One line per host whose ranks vanished without an exit status."""
        return [
            f"ember-launch: lost rank{'s' if len(ranks) > 1 else ''} "
            f"{', '.join(map(str, ranks))} on host {host} "
            "(no exit status: the host or its processes died)"
            for host, ranks in self.silent(settle).items()
        ]

    def close(self) -> None:
        self._stop = True
        self._thread.join(timeout=1.0)
        for sock in list(self._open):
            sock.close()
        self._open.clear()
        self._selector.close()
        self._listener.close()
