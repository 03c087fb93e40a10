import ast
import json
import os
import pathlib
import subprocess
import sys

import pytest

from ember.launch import env
from ember.launch._rank import rank_environment, visible_gpus

LAUNCH_DIR = pathlib.Path(env.__file__).parent


@pytest.mark.parametrize(
    "environ, expected",
    [
        (
            {
                "OMPI_COMM_WORLD_RANK": "5",
                "OMPI_COMM_WORLD_LOCAL_RANK": "1",
                "OMPI_COMM_WORLD_SIZE": "8",
                "OMPI_COMM_WORLD_LOCAL_SIZE": "4",
                "PMIX_RANK": "5",
            },
            (5, 1, 8, 4, "openmpi"),
        ),
        (
            {"PMI_RANK": "2", "PMI_SIZE": "3", "MPI_LOCALRANKID": "0", "MPI_LOCALNRANKS": "1"},
            (2, 0, 3, 1, "hydra"),
        ),
        (
            {
                "MV2_COMM_WORLD_RANK": "3",
                "MV2_COMM_WORLD_LOCAL_RANK": "1",
                "MV2_COMM_WORLD_SIZE": "4",
                "MV2_COMM_WORLD_LOCAL_SIZE": "2",
            },
            (3, 1, 4, 2, "mvapich"),
        ),
        (  # srun --mpi=pmix: PMIx rank, size and placement from Slurm
            {
                "PMIX_RANK": "4",
                "SLURM_NTASKS": "6",
                "SLURM_PROCID": "4",
                "SLURM_LOCALID": "1",
                "SLURM_NODEID": "1",
                "SLURM_TASKS_PER_NODE": "3(x2)",
            },
            (4, 1, 6, 3, "pmix"),
        ),
        (
            {
                "SLURM_PROCID": "6",
                "SLURM_LOCALID": "0",
                "SLURM_NTASKS": "7",
                "SLURM_NODEID": "3",
                "SLURM_TASKS_PER_NODE": "2(x3),1",
            },
            (6, 0, 7, 1, "slurm"),
        ),
        (
            {"RANK": "1", "LOCAL_RANK": "1", "WORLD_SIZE": "2", "LOCAL_WORLD_SIZE": "2"},
            (1, 1, 2, 2, "torchrun"),
        ),
        (  # Hydra without placement variables: assume one host
            {"PMI_RANK": "1", "PMI_SIZE": "2"},
            (1, 1, 2, 2, "hydra"),
        ),
        ({}, (0, 0, 1, 1, "none")),
        ({"SLURM_JOB_ID": "7", "OMP_NUM_THREADS": "4"}, (0, 0, 1, 1, "none")),
        ({"PMIX_RANK": "2", "PMIX_SIZE": "4"}, (2, 2, 4, 4, "pmix")),  # PMIx outside Slurm
        ({"PMIX_RANK": "2"}, (0, 0, 1, 1, "none")),  # no size anywhere: not a job
        (  # Slurm without its task layout: assume one host
            {"SLURM_PROCID": "3", "SLURM_NTASKS": "4"},
            (3, 3, 4, 4, "slurm"),
        ),
        (  # a layout ember cannot read keeps the local id, bounds the host by the job
            {
                "SLURM_PROCID": "3",
                "SLURM_LOCALID": "1",
                "SLURM_NTASKS": "4",
                "SLURM_NODEID": "1",
                "SLURM_TASKS_PER_NODE": "2(x2",
            },
            (3, 1, 4, 4, "slurm"),
        ),
        (  # a node id past the layout
            {
                "SLURM_PROCID": "3",
                "SLURM_LOCALID": "0",
                "SLURM_NTASKS": "4",
                "SLURM_NODEID": "5",
                "SLURM_TASKS_PER_NODE": "2,2",
            },
            (3, 0, 4, 4, "slurm"),
        ),
        (  # torch.distributed.launch: LOCAL_RANK without LOCAL_WORLD_SIZE, second node
            {"RANK": "5", "LOCAL_RANK": "1", "WORLD_SIZE": "8"},
            (5, 1, 8, 8, "torchrun"),
        ),
        (  # torchrun on a Slurm allocation: torchrun's variables describe the rank
            {"RANK": "5", "LOCAL_RANK": "1", "WORLD_SIZE": "8", "LOCAL_WORLD_SIZE": "4"}
            | {"SLURM_LOCALID": "0", "SLURM_NODEID": "1"},
            (5, 1, 8, 4, "torchrun"),
        ),
        (  # Hydra's local rank without its local size
            {"PMI_RANK": "3", "PMI_SIZE": "4", "MPI_LOCALRANKID": "1"},
            (3, 1, 4, 4, "hydra"),
        ),
        (  # Hydra under srun --mpi=pmi2: Slurm fills in the host layout
            {"PMI_RANK": "3", "PMI_SIZE": "4", "SLURM_LOCALID": "1", "SLURM_NODEID": "1"}
            | {"SLURM_TASKS_PER_NODE": "2(x2)"},
            (3, 1, 4, 2, "hydra"),
        ),
    ],
)
def test_detect(environ, expected):
    info = env.detect(environ)
    assert (info.rank, info.local_rank, info.world_size, info.local_world_size) == expected[:4]
    assert info.launcher == expected[4]


def test_mpi_launchers_take_precedence_over_slurm_and_torchrun():
    environ = {"PMI_RANK": "1", "PMI_SIZE": "2", "SLURM_PROCID": "0", "SLURM_NTASKS": "1"}
    environ |= {"RANK": "0", "WORLD_SIZE": "1"}
    assert env.detect(environ).rank == 1
    assert env.detect(environ).under_mpi


@pytest.mark.parametrize(
    "environ, under_mpi",
    [
        ({"PMI_RANK": "0", "PMI_SIZE": "1"}, True),
        ({"OMPI_COMM_WORLD_RANK": "0", "OMPI_COMM_WORLD_SIZE": "2"}, True),
        ({"PMIX_RANK": "0", "SLURM_NTASKS": "2"}, True),
        ({"SLURM_PROCID": "0", "SLURM_NTASKS": "2"}, False),
        ({"RANK": "0", "WORLD_SIZE": "2"}, False),
        ({}, False),
    ],
)
def test_under_mpi(environ, under_mpi):
    assert env.detect(environ).under_mpi is under_mpi


def test_module_functions_read_os_environ(monkeypatch):
    for name in ("OMPI_COMM_WORLD_RANK", "MV2_COMM_WORLD_RANK", "PMIX_RANK"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("PMI_RANK", "3")
    monkeypatch.setenv("PMI_SIZE", "4")
    monkeypatch.setenv("MPI_LOCALRANKID", "1")
    monkeypatch.setenv("MPI_LOCALNRANKS", "2")
    assert (env.rank(), env.local_rank(), env.world_size(), env.local_world_size()) == (3, 1, 4, 2)
    assert env.under_mpi()


@pytest.mark.parametrize(
    "environ, match",
    [
        ({"PMI_RANK": "x", "PMI_SIZE": "2"}, r"PMI_RANK='x' is not an integer"),
        ({"PMI_RANK": "2", "PMI_SIZE": "2"}, r"inconsistent hydra environment: rank 2"),
        (
            {"RANK": "0", "WORLD_SIZE": "2", "LOCAL_RANK": "2", "LOCAL_WORLD_SIZE": "2"},
            r"local rank 2, world size 2, local world size 2",
        ),
        (
            {"OMPI_COMM_WORLD_RANK": "0", "OMPI_COMM_WORLD_SIZE": "2"}
            | {"OMPI_COMM_WORLD_LOCAL_RANK": "0", "OMPI_COMM_WORLD_LOCAL_SIZE": "3"},
            r"inconsistent openmpi environment: .* world size 2, local world size 3",
        ),
        ({"SLURM_PROCID": "-1", "SLURM_NTASKS": "2"}, r"inconsistent slurm environment: rank -1"),
        ({"RANK": "0", "WORLD_SIZE": "2", "LOCAL_RANK": "0x1"}, r"LOCAL_RANK='0x1' is not an"),
    ],
)
def test_bad_environment(environ, match):
    with pytest.raises(RuntimeError, match=match):
        env.detect(environ)


# -- the per-rank bootstrap -----------------------------------------------------------------


@pytest.mark.parametrize(
    "cvd, expected",
    [("3,5", ["3", "5"]), ("", []), ("GPU-abc, 1", ["GPU-abc", "1"]), ("0,-1,2", ["0"])],
)
def test_visible_gpus_from_cuda_visible_devices(cvd, expected):
    assert visible_gpus({"CUDA_VISIBLE_DEVICES": cvd}) == expected


def test_rank_environment_binds_one_gpu_per_local_rank():
    environ = {"CUDA_VISIBLE_DEVICES": "3,5"}
    assert rank_environment(environ, 0, 2, 8)["CUDA_VISIBLE_DEVICES"] == "3"
    assert rank_environment(environ, 1, 2, 8)["CUDA_VISIBLE_DEVICES"] == "5"
    assert rank_environment(environ, 2, 3, 8)["CUDA_VISIBLE_DEVICES"] == "3"  # shared
    assert "CUDA_VISIBLE_DEVICES" not in rank_environment({"CUDA_VISIBLE_DEVICES": ""}, 0, 1, 8)


def test_rank_environment_divides_cores_unless_threads_are_set():
    updates = rank_environment({"CUDA_VISIBLE_DEVICES": ""}, 0, 3, 8)
    assert [updates[v] for v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")] == [
        "2",
        "2",
        "2",
    ]
    assert rank_environment({"CUDA_VISIBLE_DEVICES": ""}, 0, 4, 2)["OMP_NUM_THREADS"] == "1"
    user_set = rank_environment({"CUDA_VISIBLE_DEVICES": "", "MKL_NUM_THREADS": "6"}, 0, 2, 8)
    assert not {"OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"} & user_set.keys()
    assert user_set["PYTHONUNBUFFERED"] == "1"


def test_launch_imports_only_the_standard_library():
    for path in LAUNCH_DIR.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                names = [node.module]
            elif isinstance(node, ast.ImportFrom) and node.level > 1:
                # only the root's version, which it reads from package metadata
                assert node.module is None, (path.name, node.module)
                assert [a.name for a in node.names] == ["__version__"], path.name
                continue
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                assert top in sys.stdlib_module_names or top == "__future__", (path.name, name)


def _imports_of(*argv, env=None) -> list[str]:
    """The modules a real command imports, from CPython's import-time profile."""
    result = subprocess.run(
        argv,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONPROFILEIMPORTTIME": "1", **(env or {})},
    )
    assert result.returncode == 0, result.stderr
    return [
        line.rsplit("|", 1)[1].strip()
        for line in result.stderr.splitlines()
        if line.startswith("import time:") and "|" in line
    ]


@pytest.mark.parametrize("args", [["--help"], ["--dry-run", "-n", "2", "train.py"]])
def test_the_ember_launch_entry_point_starts_without_numpy(args):
    launcher = pathlib.Path(sys.executable).parent / "ember-launch"
    imported = _imports_of(str(launcher), *args)
    assert "ember.launch.cli" in imported
    heavy = [m for m in imported if m.split(".")[0] in ("numpy", "ml_dtypes", "mpi4py", "cupy")]
    assert heavy == []
    assert not [m for m in imported if m.startswith(("ember.core", "ember.distributed"))]


def test_import_ember_loads_the_public_surface_on_first_use():
    code = (
        "import sys, ember\n"
        "assert 'numpy' not in sys.modules, 'import ember loaded numpy'\n"
        "print(ember.__version__, ember.tensor([1.0]).exp().item() > 2, 'numpy' in sys.modules)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    version, computed, numpy_loaded = result.stdout.split()
    assert version[0].isdigit() and computed == "True" and numpy_loaded == "True"


# -- no argv flags: a script learns its place from the environment alone --------------------

PLACE = """\
import json, os, sys
from ember.launch import env
info = env.detect()
print(json.dumps({"place": [info.rank, info.local_rank, info.world_size, info.local_world_size,
    info.launcher], "argv": sys.argv[1:], "cvd": os.environ.get("CUDA_VISIBLE_DEVICES"),
    "omp": os.environ.get("OMP_NUM_THREADS")}))
"""
LAUNCHER_ENVS = [
    (
        {"OMPI_COMM_WORLD_RANK": "5", "OMPI_COMM_WORLD_LOCAL_RANK": "1"}
        | {"OMPI_COMM_WORLD_SIZE": "8", "OMPI_COMM_WORLD_LOCAL_SIZE": "4"},
        [5, 1, 8, 4, "openmpi"],
    ),
    (
        {"PMI_RANK": "2", "PMI_SIZE": "4", "MPI_LOCALRANKID": "0", "MPI_LOCALNRANKS": "2"},
        [2, 0, 4, 2, "hydra"],
    ),
    (
        {"SLURM_PROCID": "3", "SLURM_LOCALID": "1", "SLURM_NTASKS": "4", "SLURM_NODEID": "1"}
        | {"SLURM_TASKS_PER_NODE": "2(x2)"},
        [3, 1, 4, 2, "slurm"],
    ),
    (
        {"RANK": "1", "LOCAL_RANK": "1", "WORLD_SIZE": "2", "LOCAL_WORLD_SIZE": "2"},
        [1, 1, 2, 2, "torchrun"],
    ),
]


def run_with(environ, *argv):
    clean = {k: os.environ[k] for k in ("PATH", "HOME") if k in os.environ}
    result = subprocess.run(
        [sys.executable, *argv], capture_output=True, text=True, env={**clean, **environ}
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout), result.stderr


@pytest.mark.parametrize("environ, place", LAUNCHER_ENVS)
def test_scripts_need_no_argv_flags(tmp_path, environ, place):
    script = tmp_path / "place.py"
    script.write_text(PLACE)
    seen, _ = run_with(environ, str(script), "--lr", "0.1")
    assert seen["place"] == place and seen["argv"] == ["--lr", "0.1"]
    # through the per-rank bootstrap: GPU and threads from the local rank, argv untouched
    cvd = {"CUDA_VISIBLE_DEVICES": "4,5,6,7"}
    seen, _ = run_with({**environ, **cvd}, str(LAUNCH_DIR / "_rank.py"), str(script), "-x")
    assert seen["place"] == place and seen["argv"] == ["-x"]
    assert seen["cvd"] == "4,5,6,7".split(",")[place[1]]
    assert seen["omp"] == str(max(1, len(os.sched_getaffinity(0)) // place[3]))


def test_bootstrap_warns_when_ranks_share_a_gpu_and_needs_a_script(tmp_path):
    script = tmp_path / "place.py"
    script.write_text(PLACE)
    environ = {"PMI_RANK": "0", "PMI_SIZE": "2", "CUDA_VISIBLE_DEVICES": "3"}
    seen, err = run_with(environ, str(LAUNCH_DIR / "_rank.py"), str(script))
    assert seen["cvd"] == "3"
    assert "ember-launch: warning: 2 ranks share 1 GPU(s) on this host" in err
    result = subprocess.run(
        [sys.executable, str(LAUNCH_DIR / "_rank.py")], capture_output=True, text=True
    )
    assert result.returncode == 1
    assert "usage: _rank.py (script | -m module) [args...]" in result.stderr
