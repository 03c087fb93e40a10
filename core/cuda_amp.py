"""``torch.cuda.amp``: the old names of ``autocast("cuda")`` and ``GradScaler("cuda")``,
with PyTorch's deprecation warnings."""

from __future__ import annotations

import warnings

from . import amp, dtypes


class autocast(amp.autocast):
    r"""``ember.amp.autocast("cuda", ...)`` under its old name (deprecated, as in PyTorch)."""

    def __init__(self, enabled: bool = True, dtype=dtypes.float16, cache_enabled: bool = True):
        warnings.warn(
            "`ember.cuda.amp.autocast(args...)` is deprecated. Please use "
            "`ember.amp.autocast('cuda', args...)` instead.",
            FutureWarning,
            stacklevel=2,
        )
        super().__init__("cuda", dtype=dtype, enabled=enabled, cache_enabled=cache_enabled)


class GradScaler(amp.GradScaler):
    r"""``ember.amp.GradScaler("cuda", ...)`` under its old name (deprecated, as in PyTorch);
    it disables itself, with a warning, where CUDA is not available."""

    def __init__(
        self,
        init_scale: float = 2.0**16,
        growth_factor: float = 2.0,
        backoff_factor: float = 0.5,
        growth_interval: int = 2000,
        enabled: bool = True,
    ):
        warnings.warn(
            "`ember.cuda.amp.GradScaler(args...)` is deprecated. Please use "
            "`ember.amp.GradScaler('cuda', args...)` instead.",
            FutureWarning,
            stacklevel=2,
        )
        super().__init__(
            "cuda", init_scale, growth_factor, backoff_factor, growth_interval, enabled
        )
