r"""A slow, lossy link in user space, for kernels without ``sch_netem``.

``python relay.py --delay 0.02 --loss 0.01 TAP_A TAP_B`` creates two TAP devices and
forwards every Ethernet frame from one to the other, in both directions, each frame
``--delay`` seconds late, dropping each with probability ``--loss``. The test fixture
moves one TAP into a namespace host (its link to the cluster) and attaches the other to
the cluster's bridge. The relay prints ``ready`` once both devices exist and runs until
killed; the devices vanish with it.
"""

from __future__ import annotations

import argparse
import fcntl
import heapq
import os
import random
import selectors
import struct
import sys
import time

TUNSETIFF = 0x400454CA
IFF_TAP, IFF_NO_PI = 0x0002, 0x1000


def open_tap(name: str) -> int:
    """A new TAP device `name` (Ethernet frames, no packet-info header); its fd."""
    fd = os.open("/dev/net/tun", os.O_RDWR)
    fcntl.ioctl(fd, TUNSETIFF, struct.pack("16sH", name.encode(), IFF_TAP | IFF_NO_PI))
    os.set_blocking(fd, False)
    return fd


def relay(a: int, b: int, delay: float, loss: float, rng: random.Random) -> None:
    """Forward frames a -> b and b -> a, `delay` seconds late, dropping a `loss` share."""
    other = {a: b, b: a}
    selector = selectors.DefaultSelector()
    for fd in (a, b):
        selector.register(fd, selectors.EVENT_READ)
    due: list[tuple[float, int, int, bytes]] = []  # (when, order, destination, frame)
    order = 0
    while True:
        timeout = None if not due else max(0.0, due[0][0] - time.monotonic())
        for key, _ in selector.select(timeout):
            while True:
                try:
                    frame = os.read(key.fd, 65536)
                except BlockingIOError:
                    break
                if rng.random() >= loss:
                    order += 1
                    heapq.heappush(due, (time.monotonic() + delay, order, other[key.fd], frame))
        now = time.monotonic()
        while due and due[0][0] <= now:
            _, _, dest, frame = heapq.heappop(due)
            try:
                os.write(dest, frame)
            except OSError:  # the device is down (or its queue full): the frame is lost
                pass


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--delay", type=float, default=0.02, help="seconds per frame")
    parser.add_argument("--loss", type=float, default=0.01, help="share of frames dropped")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("tap_a")
    parser.add_argument("tap_b")
    args = parser.parse_args(argv)
    a, b = open_tap(args.tap_a), open_tap(args.tap_b)
    print("ready", flush=True)
    relay(a, b, args.delay, args.loss, random.Random(args.seed))


if __name__ == "__main__":
    sys.exit(main())
