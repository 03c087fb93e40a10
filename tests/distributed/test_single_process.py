"""ember.distributed in one process: the world of one (no MPI, no mpi4py needed), the
collectives' local semantics, Work/Future handles, bucketing, DDP machinery, and the
logic of the NCCL backend that needs no GPU. These run without ``--with-mpi`` too."""

import ast
import os
import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import ml_dtypes
import numpy as np
import pytest

import ember
import ember.distributed as dist
import ember.nn as nn
import ember.nn.functional as F
import ember.optim as optim
from ember.core import autograd_engine
from ember.distributed import comm_hooks
from ember.distributed.backends.base import Request, Work
from ember.distributed.backends.nccl import dtype_code, op_code
from ember.distributed.bucketing import compute_bucket_assignment_by_size
from ember.distributed.detail import describe_mismatch
from ember.distributed.process_group import ProcessGroup
from ember.nn.parallel import DistributedDataParallel as DDP

ReduceOp = dist.ReduceOp
# the mpiexec installed beside this Python (the mpich wheel), else the one on PATH
MPIEXEC = next(
    (p for p in (os.path.join(os.path.dirname(sys.executable), "mpiexec"),) if os.path.exists(p)),
    shutil.which("mpiexec") or "mpiexec",
)


@pytest.fixture
def pg():
    """A world of one, made directly so these tests also run on each rank under mpiexec."""
    return ProcessGroup(None, [0], 60.0, "mpi")


def t(a):
    return ember.from_numpy(np.asarray(a))


def clean_env() -> dict:
    """This environment without the MPI launcher's variables (tests may run under one)."""
    return {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("PMI", "MPI", "HYDRA", "OMPI", "PMIX", "MV2", "EMBER_DIST"))
    }


def run_clean(code: str) -> str:
    """Run ``code`` in a fresh interpreter with no MPI launcher in its environment."""
    env = clean_env()
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_world_of_one_without_mpi4py():
    out = run_clean(
        """
        import sys
        sys.modules["mpi4py"] = None  # as if it were not installed
        import numpy as np
        import ember, ember.distributed as dist, ember.nn as nn
        from ember.nn.parallel import DistributedDataParallel
        assert not dist.is_initialized()
        dist.init_process_group(backend="auto")
        assert dist.is_initialized() and dist.get_backend() == "mpi"
        print(dist.get_rank(), dist.get_world_size(), dist.get_local_rank(), dist.get_local_world_size())
        x = ember.arange(4.0)
        dist.all_reduce(x, op=dist.ReduceOp.AVG)
        out = [ember.zeros(4)]
        dist.all_gather(out, x)
        objs = [None]
        dist.all_gather_object(objs, {"k": 1})
        dist.barrier()
        model = nn.Linear(3, 2)
        ddp = DistributedDataParallel(model)
        ddp(ember.randn(5, 3)).sum().backward()
        print(x.tolist(), out[0].tolist(), objs, model.weight.grad is not None)
        dist.destroy_process_group()
        assert not dist.is_initialized() and dist.group.WORLD is None
        with __import__("pytest").raises(RuntimeError, match="trying to initialize"):
            dist.init_process_group(); dist.init_process_group()
        """
    )
    assert out.split("\n")[:2] == [
        "0 1 0 1",
        "[0.0, 1.0, 2.0, 3.0] [0.0, 1.0, 2.0, 3.0] [{'k': 1}] True",
    ]


@pytest.mark.parametrize(
    "debug, op", [("OFF", "all_reduce"), ("DETAIL", "debug check before all_reduce")]
)
def test_stalled_collective_aborts_the_job_naming_the_missing_rank(tmp_path, debug, op):
    script = tmp_path / "stall.py"
    # the report goes to a file: Hydra may drop the last pipe output of an aborted job
    script.write_text(
        textwrap.dedent(
            f"""
            import os, sys, time
            sys.stderr = open(os.path.join({str(tmp_path)!r}, "err" + os.environ["PMI_RANK"]), "w")
            import ember, ember.distributed as dist
            dist.init_process_group("mpi", timeout=1.0)
            if dist.get_rank() == 0:
                dist.all_reduce(ember.ones(2))
            else:
                time.sleep(60)  # never joins
            """
        )
    )
    start = time.perf_counter()
    done = subprocess.run(
        [MPIEXEC, "-n", "2", sys.executable, str(script)],
        env={**clean_env(), "EMBER_DISTRIBUTED_DEBUG": debug},
        capture_output=True,
        text=True,
        timeout=50,
    )
    assert done.returncode != 0
    assert time.perf_counter() - start < 30  # aborted, not waiting out the sleep
    report = (tmp_path / "err0").read_text()
    assert f"collective #1 {op} has waited 1.0 s; ranks [1] never joined it" in report


def test_importing_ember_loads_neither_mpi4py_nor_cupy():
    out = run_clean(
        """
        import sys, ember, ember.distributed, ember.nn.parallel
        print(sorted(m for m in sys.modules if m.startswith(("mpi4py", "cupy"))))
        """
    )
    assert out.strip() == "[]"


def test_core_does_not_import_distributed():
    core = Path(ember.__file__).parent / "core"
    offenders = []
    for path in core.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                names = [("." * node.level) + (node.module or "")]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            else:
                continue
            depth = len(path.relative_to(core).parts)  # dots needed to leave core/
            for name in names:
                dots = len(name) - len(name.lstrip("."))
                module = name.lstrip(".")
                if name.startswith("ember.distributed") or (
                    dots > depth and module.startswith(("distributed", "launch"))
                ):
                    offenders.append(f"{path.relative_to(core)}: {name}")
    assert offenders == []


def test_init_validates_arguments():
    out = run_clean(
        """
        import ember.distributed as dist
        for kwargs in ({"backend": "tcp"}, {"world_size": 2}, {"rank": 1}, {"timeout": -1}):
            try:
                dist.init_process_group(**kwargs)
            except ValueError as e:
                print(e)
        """
    )
    lines = out.strip().split("\n")
    assert "backend must be one of" in lines[0]
    assert "world_size=2 but the job was launched with 1 processes" in lines[1]
    assert "rank=1 but the launcher made this process rank 0" in lines[2]
    assert "timeout must be positive" in lines[3]


def test_collectives_before_init_raise():
    out = run_clean(
        """
        import ember, ember.distributed as dist
        try:
            dist.all_reduce(ember.ones(2))
        except RuntimeError as e:
            print(e)
        """
    )
    assert "Default process group has not been initialized" in out


@pytest.mark.parametrize(
    "dtype", [np.float32, np.float64, np.int32, np.int64, np.float16, ml_dtypes.bfloat16]
)
@pytest.mark.parametrize("op", list(ReduceOp))
def test_local_all_reduce_is_identity(pg, dtype, op):
    if op is ReduceOp.AVG and np.dtype(dtype).kind == "i":
        with pytest.raises(TypeError, match="AVG needs a floating-point tensor, got int"):
            dist.all_reduce(t(np.ones(2, dtype)), op=op, group=pg)
        return
    x = t(np.arange(6).reshape(2, 3).astype(dtype))
    v = x._version
    work = dist.all_reduce(x, op=op, group=pg, async_op=True)
    assert work.is_completed() and work.wait() and work.result() == [x]
    np.testing.assert_array_equal(x._array, np.arange(6).reshape(2, 3).astype(dtype))
    assert x._version == v + 1


def test_local_collectives(pg):
    x = t(np.arange(6.0).reshape(2, 3))
    dist.broadcast(x, 0, group=pg)
    dist.reduce(x, 0, group=pg)
    out = [t(np.zeros((2, 3)))]
    dist.all_gather(out, x, group=pg)
    np.testing.assert_array_equal(out[0]._array, x._array)
    big = t(np.zeros(6))
    dist.all_gather_into_tensor(big, x, group=pg)
    np.testing.assert_array_equal(big._array, np.arange(6.0))
    small = t(np.zeros((2, 3)))
    dist.reduce_scatter_tensor(small, x, op=ReduceOp.AVG, group=pg)
    np.testing.assert_array_equal(small._array, x._array)
    dist.reduce_scatter(small, [x * 2], group=pg)
    np.testing.assert_array_equal(small._array, x._array * 2)
    a2a = t(np.zeros((2, 3)))
    dist.all_to_all_single(a2a, x, group=pg)
    np.testing.assert_array_equal(a2a._array, x._array)
    outs = [t(np.zeros(6))]
    dist.all_to_all(outs, [x.reshape(-1)], group=pg)
    np.testing.assert_array_equal(outs[0]._array, np.arange(6.0))
    g = [t(np.zeros((2, 3)))]
    dist.gather(x, g, dst=0, group=pg)
    np.testing.assert_array_equal(g[0]._array, x._array)
    s = t(np.zeros((2, 3)))
    dist.scatter(s, [x], src=0, group=pg)
    np.testing.assert_array_equal(s._array, x._array)
    objs = ["a", 1]
    dist.broadcast_object_list(objs, src=0, group=pg)
    assert objs == ["a", 1]
    gathered = [None]
    dist.gather_object({"x": 2}, gathered, dst=0, group=pg)
    assert gathered == [{"x": 2}]
    assert dist.barrier(group=pg, async_op=True).wait()


def test_argument_errors(pg):
    with pytest.raises(TypeError, match="tensor must be an ember.Tensor, got ndarray"):
        dist.all_reduce(np.ones(3), group=pg)
    with pytest.raises(TypeError, match="op must be a dist.ReduceOp"):
        dist.all_reduce(t(np.ones(3)), op="sum", group=pg)
    with pytest.raises(ValueError, match="tensor_list must be a list of 1 tensors"):
        dist.all_gather([t(np.ones(3))] * 2, t(np.ones(3)), group=pg)
    with pytest.raises(ValueError, match=r"tensor_list\[0\] has shape \[2\]"):
        dist.all_gather([t(np.ones(2))], t(np.ones(3)), group=pg)
    with pytest.raises(ValueError, match=r"world size \(1\) times the elements"):
        dist.all_gather_into_tensor(t(np.ones(4)), t(np.ones(3)), group=pg)
    with pytest.raises(ValueError, match="split_sizes"):
        dist.all_to_all_single(t(np.ones(3)), t(np.ones(3)), [2], [3], group=pg)
    with pytest.raises(ValueError, match="not part of this group"):
        dist.broadcast(t(np.ones(3)), src=3, group=pg)
    with pytest.raises(RuntimeError, match="cannot send to itself"):
        dist.send(t(np.ones(3)), 0, group=pg)
    with pytest.raises(TypeError, match="group must be a ProcessGroup"):
        dist.all_reduce(t(np.ones(3)), group="world")


class Never(Request):
    def test(self):
        return False


def test_work_timeout_and_stall_report():
    with pytest.raises(
        RuntimeError, match=r"all_reduce \(collective #7\) did not finish within 0.01 s"
    ):
        Work([Never()], [], op="all_reduce", seq=7).wait(timeout=0.01)
    stalls = []

    def on_stall(op, seq, waited):
        stalls.append((op, seq))
        raise SystemExit("aborted")

    work = Work([Never()], [], stall=(0.01, on_stall), op="broadcast", seq=3)
    with pytest.raises(SystemExit):
        work.wait()
    assert stalls == [("broadcast", 3)]
    assert not work.is_completed()


def test_future_then_chain(pg):
    x = t(np.ones(3))
    fut = dist.all_reduce(x, group=pg, async_op=True).get_future()
    doubled = fut.then(lambda f: f.value()[0] * 2).then(lambda f: f.value() + 1)
    np.testing.assert_array_equal(doubled.wait()._array, [3.0, 3.0, 3.0])
    assert doubled.done() and fut.value() == [x]


def test_debug_mismatch_description():
    mine = ("all_reduce", (("dtype", "float32"), ("op", "SUM"), ("shape", [3])))
    other = ("all_reduce", (("dtype", "float64"), ("op", "SUM"), ("shape", [3])))
    assert describe_mismatch([mine, mine, other], [0, 1, 2]) == (
        "dtype: rank 0 has float32 but rank 2 has float64"
    )
    assert describe_mismatch([mine, ("broadcast", ())], [4, 6]) == (
        "rank 4 called all_reduce but rank 6 called broadcast"
    )
    assert describe_mismatch([mine, ("all_reduce", (("src", 1),))], [0, 1]).startswith(
        "dtype: rank 0 has float32 but rank 1 has None"
    )
    assert describe_mismatch([mine, mine], [0, 1]) is None


def test_bucket_assignment():
    f32 = lambda n: np.zeros(n, np.float32)  # noqa: E731
    tensors = [f32(100), f32(100), f32(300), np.zeros(10, np.float64), f32(50), f32(1000)]
    # limits 800 B then 1600 B: [0, 1] reaches 800 B; [2, 4, 5] reaches 5400 B >= 1600 B;
    # float64 gets buckets of its own; buckets come ordered by their first index
    assert compute_bucket_assignment_by_size(tensors, [800, 1600]) == [[0, 1], [2, 4, 5], [3]]
    assert compute_bucket_assignment_by_size(tensors, [1 << 30]) == [[0, 1, 2, 4, 5], [3]]
    assert compute_bucket_assignment_by_size(tensors, [1]) == [[i] for i in range(6)]
    with pytest.raises(ValueError, match="positive byte counts"):
        compute_bucket_assignment_by_size(tensors, [0])


def test_nccl_codes_without_gpu():
    assert dtype_code(np.float32) == 7 and dtype_code(ml_dtypes.bfloat16) == 9
    assert dtype_code(np.int64) == 4 and dtype_code(np.float16) == 6
    assert op_code(ReduceOp.MAX, np.float32) == 2 and op_code(ReduceOp.PRODUCT, np.int32) == 1
    with pytest.raises(TypeError, match="NCCL does not support dtype complex64"):
        dtype_code(np.complex64)
    with pytest.raises(TypeError, match="bool support only MAX/MIN"):
        op_code(ReduceOp.SUM, np.bool_)


def test_queue_callback_runs_after_backward():
    with pytest.raises(RuntimeError, match="only be called while a backward pass runs"):
        autograd_engine.queue_callback(lambda: None)
    w = ember.ones(3, requires_grad=True)
    events = []

    def hook(p):
        events.append("hook")
        autograd_engine.queue_callback(lambda: events.append(("end", p.grad.tolist())))

    w.register_post_accumulate_grad_hook(hook)
    (w * 2).sum().backward()
    assert events == ["hook", ("end", [2.0, 2.0, 2.0])]


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.a = nn.Linear(5, 8)
        self.b = nn.Linear(8, 2)
        self.spare = nn.Linear(2, 2)

    def forward(self, x, spare=False):
        y = self.b(self.a(x).relu())
        return self.spare(y) if spare else y


@pytest.mark.parametrize("as_view", [False, True])
@pytest.mark.parametrize("hook", [None, comm_hooks.fp16_compress_hook])
def test_ddp_world_of_one_matches_plain_training(pg, as_view, hook):
    ember.manual_seed(0)
    model = Net().double()
    ember.manual_seed(0)
    plain = Net().double()
    ddp = DDP(
        model,
        process_group=pg,
        bucket_cap_mb=1 / 4096,
        gradient_as_bucket_view=as_view,
        find_unused_parameters=True,
    )
    if hook is not None:
        ddp.register_comm_hook(pg, hook)
    o1, o2 = (
        optim.SGD(ddp.parameters(), lr=0.1, momentum=0.9),
        optim.SGD(plain.parameters(), lr=0.1, momentum=0.9),
    )
    rng = np.random.default_rng(0)
    for _ in range(4):
        x, y = t(rng.standard_normal((6, 5))), t(rng.standard_normal((6, 2)))
        o1.zero_grad(), o2.zero_grad()
        with ddp.no_sync():
            F.mse_loss(ddp(x), y).backward()
        F.mse_loss(ddp(x * 2), y).backward()
        F.mse_loss(plain(x), y).backward()
        F.mse_loss(plain(x * 2), y).backward()
        o1.step(), o2.step()
    assert model.spare.weight.grad is None
    tol = 1e-3 if hook is not None else 1e-12
    for p, q in zip(model.parameters(), plain.parameters()):
        np.testing.assert_allclose(p._array, q._array, rtol=tol, atol=tol)
    assert ddp._rebuilt and len(ddp.buckets) >= 2


def test_ddp_unused_parameter_error_names_it(pg):
    ddp = DDP(Net(), process_group=pg)
    with pytest.raises(
        RuntimeError,
        match=r"parameters \['spare.weight', 'spare.bias'\]. On rank 0: \['spare.weight', "
        r"'spare.bias'\] were not used in forward .*find_unused_parameters=True",
    ):
        ddp(ember.randn(2, 5)).sum().backward()
    out = ddp(ember.randn(2, 5), spare=True)  # the next iteration works
    out.sum().backward()
    assert all(p.grad is not None for p in ddp.parameters())


def test_ddp_second_backward_of_one_forward_stays_local(pg):
    """Like torch: only the first backward after a DDP forward is reduced."""
    ddp = DDP(nn.Linear(3, 1), process_group=pg)
    out = ddp(ember.randn(2, 3)).sum()
    out.backward(retain_graph=True)
    assert not ddp._armed
    first = ddp.module.weight.grad._array.copy()
    out.backward()
    np.testing.assert_allclose(ddp.module.weight.grad._array, 2 * first)


def test_ddp_without_trainable_parameters_raises(pg):
    frozen = nn.Linear(2, 2).requires_grad_(False)
    with pytest.raises(RuntimeError, match="doesn't have any parameter that requires a gradient"):
        DDP(frozen, process_group=pg)


# -- helpers shared by distributed modules -------------------------------------------------


def test_gather_bytes_pads_and_trims_every_ranks_payload():
    from ember.distributed.detail import gather_bytes

    payloads = [b"a", b"", b"longest payload"]
    calls = []

    def all_gather(out, array):  # three simulated ranks, each with its own payload
        calls.append(out.shape)
        if out.ndim == 1:
            out[:] = [len(p) for p in payloads]
        else:
            for r, p in enumerate(payloads):
                out[r] = 0
                out[r, : len(p)] = np.frombuffer(p, np.uint8)

    assert gather_bytes(b"a", 3, all_gather) == payloads
    assert calls == [(3,), (3, len(b"longest payload"))]


@pytest.mark.parametrize(
    "environ, announced",
    [
        ({}, None),
        ({"PMI_RANK": "1", "PMI_SIZE": "4"}, 4),
        ({"OMPI_COMM_WORLD_RANK": "0", "OMPI_COMM_WORLD_SIZE": "2"}, 2),
        ({"PMIX_RANK": "0", "SLURM_NTASKS": "3"}, 3),  # srun --mpi=pmix
        ({"RANK": "0", "WORLD_SIZE": "2"}, None),  # torchrun: no MPI process manager
    ],
)
def test_mpi_launch_detection_is_launch_envs(monkeypatch, environ, announced):
    from ember.distributed import process_group
    from ember.launch import env

    for name in [v for source in env._SOURCES for v in source[1:] if v] + ["SLURM_NTASKS"]:
        monkeypatch.delenv(name, raising=False)
    for name, value in environ.items():
        monkeypatch.setenv(name, value)
    assert process_group._launched_by_mpi() == announced
