"""Collectives and DDP on CUDA tensors, under an MPI launcher. ``scripts/gpu_check`` runs
this file twice on one GPU:

* ``EMBER_GPU_TEST_BACKEND=nccl mpiexec -n 1 python -m pytest --with-mpi tests/gpu/test_ddp_gpu.py``
  (NCCL with one rank: every collective goes through NCCL's kernels and dtype codes);
* ``EMBER_GPU_TEST_BACKEND=mpi EMBER_SELF_CHECK=0 mpiexec -n 2 ...`` (MPI carrying CuPy
  buffers, two ranks sharing the GPU, which NCCL refuses).

DDP results are checked against a single-process run of the same model on the whole
batch, inside each rank. Skipped without CUDA or without ``--with-mpi``.
"""

import os

import ml_dtypes
import numpy as np
import pytest

import ember

if not ember.cuda.is_available():
    pytest.skip(ember.cuda.unavailable_reason(), allow_module_level=True)

import ember.distributed as dist  # noqa: E402
import ember.nn as nn  # noqa: E402
import ember.nn.functional as F  # noqa: E402
from ember.distributed import comm_hooks  # noqa: E402
from ember.distributed.backends import nccl as nccl_backend  # noqa: E402
from ember.nn.parallel import DistributedDataParallel as DDP  # noqa: E402

pytestmark = [pytest.mark.gpu, pytest.mark.mpi(min_size=1)]
BACKEND = os.environ.get("EMBER_GPU_TEST_BACKEND", "nccl")
STEPS = 5


@pytest.fixture(scope="module", autouse=True)
def world():
    if not dist.is_initialized():
        if BACKEND == "nccl":
            reason = nccl_backend.unavailable_reason()
            if reason is not None:
                pytest.skip(reason)
        dist.init_process_group(BACKEND)
    return dist.group.WORLD


def test_backend_is_the_one_asked_for():
    assert dist.get_backend() == BACKEND


@pytest.mark.parametrize(
    "dtype", [np.float32, np.float64, np.float16, ml_dtypes.bfloat16, np.int32, np.int64]
)
def test_all_reduce_and_broadcast_cuda_tensors(dtype):
    rank, n = dist.get_rank(), dist.get_world_size()
    base = np.arange(1, 1001, dtype=np.float64)
    t = ember.tensor((base * (rank + 1)).astype(dtype), device="cuda")
    dist.all_reduce(t)
    expected = base * (n * (n + 1) // 2)
    got = t.cpu().numpy().astype(np.float64)
    if dtype in (np.float16, ml_dtypes.bfloat16):
        np.testing.assert_allclose(got, expected, rtol=1e-2)
    else:
        np.testing.assert_array_equal(got, expected)
    b = ember.tensor(np.full(17, rank, dtype), device="cuda")
    dist.broadcast(b, src=0)
    np.testing.assert_array_equal(b.cpu().numpy().astype(np.float64), np.zeros(17))


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1, self.fc2, self.head = nn.Linear(12, 64), nn.Linear(64, 64), nn.Linear(64, 5)
        self.norm = nn.LayerNorm(64)

    def forward(self, x):
        return self.head(self.norm(F.gelu(self.fc2(F.silu(self.fc1(x))))))


@pytest.mark.parametrize(
    "hook,tol",
    [
        (None, 1e-5),
        (comm_hooks.bf16_compress_hook, 3e-2),
        (comm_hooks.fp16_compress_hook, 5e-3),
    ],
)
def test_ddp_matches_single_process(hook, tol):
    rank, n = dist.get_rank(), dist.get_world_size()
    ember.manual_seed(0)
    model = Net().cuda()
    reference = Net().cuda()
    reference.load_state_dict(model.state_dict())
    ddp = DDP(model, bucket_cap_mb=0.01)  # several buckets
    if hook is not None:
        ddp.register_comm_hook(None, hook)
    opt = ember.optim.SGD(ddp.parameters(), lr=0.05, momentum=0.9)
    opt_ref = ember.optim.SGD(reference.parameters(), lr=0.05, momentum=0.9)
    rng = np.random.default_rng(1)
    per_rank = 8
    for _ in range(STEPS):
        x = rng.standard_normal((n * per_rank, 12)).astype(np.float32)
        y = rng.integers(0, 5, n * per_rank)
        xb = ember.tensor(x, device="cuda")
        yb = ember.tensor(y, device="cuda")
        mine = slice(rank * per_rank, (rank + 1) * per_rank)
        opt.zero_grad()
        F.cross_entropy(ddp(xb[mine]), yb[mine]).backward()
        opt.step()
        opt_ref.zero_grad()
        F.cross_entropy(reference(xb), yb).backward()  # the whole batch, one process
        opt_ref.step()
    for (name, p), q in zip(model.named_parameters(), reference.parameters()):
        np.testing.assert_allclose(
            p.detach().cpu().numpy(), q.detach().cpu().numpy(), rtol=tol, atol=tol, err_msg=name
        )
    flat = np.concatenate([p.detach().cpu().numpy().ravel() for p in model.parameters()])
    everyone = [ember.zeros(flat.size) for _ in range(n)]
    dist.all_gather(everyone, ember.from_numpy(flat))
    for other in everyone:
        np.testing.assert_array_equal(other.numpy(), flat)  # replicas identical
