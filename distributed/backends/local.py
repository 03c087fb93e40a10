"""The backend of a world of one process: every collective is a local copy (or nothing),
so a script written for N ranks runs unchanged as one."""

from __future__ import annotations

from .base import DONE, Backend


class LocalBackend(Backend):
    """The world of one process: every collective is a local copy (or nothing)."""

    name = "local"

    def supports(self, array) -> bool:
        return True

    def all_reduce(self, array, op):
        return DONE

    def broadcast(self, array, root):
        return DONE

    def reduce(self, array, op, root):
        return DONE

    def all_gather(self, out, array):
        out.reshape(array.shape)[...] = array
        return DONE

    def reduce_scatter(self, out, array, op):
        out[...] = array.reshape(out.shape)
        return DONE

    def all_to_all(self, out, array, send_counts, recv_counts):
        out.reshape(-1)[...] = array.reshape(-1)
        return DONE

    def gather(self, out, array, root):
        out.reshape(array.shape)[...] = array
        return DONE

    def scatter(self, out, array, root):
        out[...] = array.reshape(out.shape)
        return DONE

    def send(self, array, peer, tag):
        raise RuntimeError("send: a process cannot send to itself (world size is 1)")

    recv = send

    def barrier(self):
        return DONE
