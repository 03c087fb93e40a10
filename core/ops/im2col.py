"""im2col / col2im for the 1-d / 2-d convolutions, and running their image blocks on
ember's CPU threads.

A batch is cut into fixed blocks of images (``conv_blocks``); each block's columns are
copied, multiplied and scattered back on one thread, with a one-thread BLAS while the
blocks run side by side. Measured on the shared (loaded) 2-core CI machine
(2026-12-06, the MNIST convnet's second layer forward, 64 images, best of 40): per-image
GEMMs on two pool threads with a one-thread BLAS 13.5 ms; the same GEMMs on one thread,
each threaded by OpenBLAS, 25.1 ms; 8 images a GEMM, BLAS-threaded, 16.0 ms, its
column copies and transposes single-threaded. Block boundaries do not depend on
the thread count, and reductions over the batch (weight and bias gradients) add the
blocks' partial sums in block order, so results are the same on any number of threads.

Known cost: after a GEMM threaded by OpenBLAS (a Linear layer), OpenBLAS's idle workers
spin for a while on the other cores and slow these blocks (the convnet's second layer
forward: 19.5 ms right after a threaded GEMM, 14.2 ms alone, loaded 2-core machine).
"""

from __future__ import annotations

import numpy as np

from ..parallel import chunk_bounds, parallel_for
from ._util import xp_of


def _windows(xpd, kernel, out_hw, stride, dilation):
    """View of ``xpd`` (N, C, H, W) as (N, C, kh, kw, Ho, Wo) windows, without copying."""
    xp = xp_of(xpd)
    n, c = xpd.shape[:2]
    s_n, s_c, s_h, s_w = xpd.strides
    shape = (n, c, kernel[0], kernel[1], out_hw[0], out_hw[1])
    strides = (s_n, s_c, s_h * dilation[0], s_w * dilation[1], s_h * stride[0], s_w * stride[1])
    return xp.lib.stride_tricks.as_strided(xpd, shape, strides)


def _col2im(gcols, out, stride, dilation):
    """Scatter-add (N, C, kh, kw, Ho, Wo) columns into ``out`` (N, C, H, W), in place."""
    _, _, kh, kw, ho, wo = gcols.shape
    (sh, sw), (dh, dw) = stride, dilation
    for i in range(kh):
        for j in range(kw):
            r, c = i * dh, j * dw
            out[:, :, r : r + sh * (ho - 1) + 1 : sh, c : c + sw * (wo - 1) + 1 : sw] += gcols[
                :, :, i, j
            ]
    return out


def _col2im_flat(gcols, out, stride_w, dilation):
    """``_col2im`` for the flat-row layout (row stride 1): each offset is one long run."""
    n, c, kh, kw, span = gcols.shape
    width = out.shape[3]
    flat = out.reshape(n, c, -1)
    last = stride_w * (span - 1) + 1
    for i in range(kh):
        for j in range(kw):
            start = i * dilation[0] * width + j * dilation[1]
            flat[:, :, start : start + last : stride_w] += gcols[:, :, i, j]


class _Geometry:
    """Where a convolution's windows lie in its padded input.

    When rows are adjacent (height stride 1) each padded image is read as one flat row:
    a kernel offset's window is then a single long strided run (fast to copy and to
    scatter back), at the cost of ``wr - wo`` junk columns per output row.
    """

    def __init__(self, x_hw, kernel, stride, padding, dilation, flat=True):
        (h, w), (kh, kw) = x_hw, kernel
        (pt, pb), (pl, pr) = padding
        self.kernel, self.stride, self.dilation = kernel, stride, dilation
        self.hp, wp = h + pt + pb, w + pl + pr
        self.ho = _out_size(self.hp, kh, stride[0], dilation[0])
        self.wo = _out_size(wp, kw, stride[1], dilation[1])
        self.flat = flat and stride[0] == 1
        if self.flat:
            self.wq = -(-wp // stride[1]) * stride[1]
            self.wr = self.wq // stride[1]
            self.span = (self.ho - 1) * self.wr + self.wo
        else:
            self.wq, self.wr, self.span = wp, self.wo, self.ho * self.wo

    def windows(self, xpd):
        """A copy-free view of the padded input's windows, (N, C, kh, kw, ...span)."""
        if not self.flat:
            return _windows(xpd, self.kernel, (self.ho, self.wo), self.stride, self.dilation)
        n, c = xpd.shape[:2]
        flat = xpd.reshape(n, c, -1)
        s_n, s_c, s_x = flat.strides
        (kh, kw), (dh, dw) = self.kernel, self.dilation
        shape = (n, c, kh, kw, self.span)
        strides = (s_n, s_c, s_x * dh * self.wq, s_x * dw, s_x * self.stride[1])
        return xp_of(xpd).lib.stride_tricks.as_strided(flat, shape, strides)

    def col2im_channels_last(self, gcols, out):
        """Scatter-add (n, span, kh*kw, C) column gradients into ``out`` (n, H*W, C)."""
        (kh, kw), (dh, dw) = self.kernel, self.dilation
        span = self.span
        for i in range(kh):
            for j in range(kw):
                start = i * dh * self.wq + j * dw
                out[:, start : start + span] += gcols[:, :, i * kw + j]

    def col2im(self, gcols, out):
        """Scatter-add (n, C, kh, kw, span) column gradients into ``out``, in place."""
        if self.flat:
            _col2im_flat(gcols, out, self.stride[1], self.dilation)
        else:
            shape = gcols.shape[:4] + (self.ho, self.wo)
            _col2im(gcols.reshape(shape), out, self.stride, self.dilation)


# Images per im2col chunk: about 256K column elements, so a chunk's columns stay in
# cache between the copy, the GEMM and the scatter (2x faster than one huge GEMM).
_CHUNK_ELEMENTS = 1 << 18


def _as_4d(x, spatial):
    """(N, C, L) / (C, L) / (C, H, W) -> (N, C, H, W)."""
    if spatial == 1:
        x = x.reshape(x.shape[:-1] + (1, x.shape[-1]))
    if x.ndim == 3:
        x = x[None]
    return x


def _out_size(size, kernel, stride, dilation):
    return (size - dilation * (kernel - 1) - 1) // stride + 1


# Fewest blocks a CPU batch is cut into (when it has that many images), so that a large
# machine's threads all get work even when a block of cache-sized columns would hold
# most of the batch.
_MIN_BLOCKS = 16


def conv_blocks(n: int, image_elements: int, xp=np) -> int:
    """Images per block: columns of about ``_CHUNK_ELEMENTS``, and on the CPU at least
    ``_MIN_BLOCKS`` blocks. Depends only on the shapes, never on the thread count."""
    step = max(1, _CHUNK_ELEMENTS // max(image_elements, 1))
    return max(1, min(step, n // _MIN_BLOCKS)) if xp is np else step


_blas_libraries = None


def _blas():
    global _blas_libraries
    if _blas_libraries is None:
        from threadpoolctl import ThreadpoolController

        found = ThreadpoolController().lib_controllers
        _blas_libraries = [lib for lib in found if lib.user_api == "blas"]
    return _blas_libraries


def gemm_parallel_for(body, rows: int, row_elements: int, xp=np) -> None:
    """``parallel_for`` for bodies that call the BLAS: while chunks run side by side the
    BLAS runs one thread per call (a threaded BLAS called from several threads at once
    oversubscribes the cores or serialises the calls); a single chunk keeps the BLAS's
    own threads. CuPy arrays run as one chunk on the calling thread."""
    if xp is not np or len(chunk_bounds(rows, row_elements)) == 1:
        body(0, rows)
        return
    libs = _blas()
    before = [lib.get_num_threads() for lib in libs]
    for lib in libs:
        lib.set_num_threads(1)
    try:
        parallel_for(body, rows, row_elements)
    finally:
        for lib, count in zip(libs, before):
            lib.set_num_threads(count)
