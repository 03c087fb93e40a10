"""Random number generators: one per device, seeded by ``manual_seed``."""

from __future__ import annotations

import numpy as np

from . import backend

_DEFAULT_SEED = 67280421310721  # PyTorch's seed for a new Generator()


def _entropy_seed() -> int:
    return int(np.random.SeedSequence().entropy % (2**63))


# PyTorch seeds its default generators from entropy: unseeded runs differ, manual_seed
# makes them repeatable. Default generators created later (a GPU's) take the same seed.
_default_seed = _entropy_seed()


class Generator:
    r"""A random stream for one device (NumPy's PCG64 on CPU, CuPy's on CUDA).

    Example::

        >>> g = ember.Generator().manual_seed(0)
        >>> ember.randperm(5, generator=g)
    """

    def __init__(self, device="cpu"):
        self.device = backend.normalize_device(device)
        self._seed = _DEFAULT_SEED
        self._rng = None

    @property
    def rng(self):
        if self._rng is None:
            self._rng = self._new(self._seed)
        return self._rng

    def _new(self, seed):
        if self.device.type == "cpu":
            return np.random.Generator(np.random.PCG64(seed))
        cupy = backend._cupy()
        with cupy.cuda.Device(self.device.index):
            return cupy.random.Generator(cupy.random.XORWOW(seed))

    def manual_seed(self, seed: int) -> Generator:
        seed = int(seed)
        if seed < 0:
            raise ValueError(f"seed must be non-negative, got {seed}")
        self._seed = seed
        self._rng = self._new(seed)
        return self

    def seed(self) -> int:
        s = _entropy_seed()
        self.manual_seed(s)
        return s

    def initial_seed(self) -> int:
        return self._seed

    def get_state(self) -> dict:
        """The stream's state as plain data (JSON-safe for CPU generators)."""
        if self.device.type == "cpu":
            return {"seed": self._seed, "bit_generator": self.rng.bit_generator.state}
        return {"seed": self._seed, "cuda_state": self.rng.bit_generator.state}

    def set_state(self, state: dict) -> None:
        self._seed = state["seed"]
        self._rng = self._new(self._seed)
        key = "bit_generator" if self.device.type == "cpu" else "cuda_state"
        self._rng.bit_generator.state = state[key]


_default_generators: dict = {}


def default_generator(device=None) -> Generator:
    dev = backend.normalize_device(device)
    gen = _default_generators.get(dev)
    if gen is None:
        gen = _default_generators[dev] = Generator(dev)
        gen._seed = _default_seed
    return gen


def manual_seed(seed: int) -> Generator:
    r"""Seed every device's default generator; returns the CPU one."""
    global _default_seed
    _default_seed = int(seed)
    for gen in _default_generators.values():
        gen.manual_seed(seed)
    return default_generator("cpu").manual_seed(seed)


def seed() -> int:
    s = default_generator("cpu").seed()
    manual_seed(s)
    return s


def initial_seed() -> int:
    return default_generator("cpu").initial_seed()


def get_rng_state() -> dict:
    return default_generator("cpu").get_state()


def set_rng_state(state: dict) -> None:
    default_generator("cpu").set_state(state)


def generator_for(generator, device) -> Generator:
    if generator is None:
        return default_generator(device)
    if generator.device != backend.normalize_device(device):
        raise RuntimeError(f"generator is on {generator.device} but the tensor is on {device}")
    return generator
