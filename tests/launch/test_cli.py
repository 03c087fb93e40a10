import shlex
import socket
import sys

import pytest

from ember.launch import cli

HYDRA_VERSION = """HYDRA build details:
    Version:                                 4.1.2
    Release Date:                            Wed Jun  7 15:22:45 CDT 2023
    Process Manager:                         pmi
    Launchers available:                     ssh rsh fork slurm ll lsf sge manual persist
"""
OPENMPI_VERSION = """mpiexec (OpenRTE) 4.1.4

Report bugs to http://www.open-mpi.org/community/help/
"""
OPENMPI5_VERSION = (
    "mpiexec (Open MPI) 5.0.3\n\nReport bugs to https://www.open-mpi.org/community/help/\n"
)
PY = sys.executable
BOOT = cli.BOOTSTRAP
CLEAN_ENV = {"PATH": "/usr/bin", "HOME": "/root"}  # no GPUs, nothing to forward


def fake_mpiexec(tmp_path, text, name="mpiexec"):
    path = tmp_path / name
    path.write_text(f"#!/bin/sh\ncat <<'EOF'\n{text}EOF\n")
    path.chmod(0o755)
    return str(path)


TORCHRUN_VARS = ("EMBER_NODE_SLOTS", "EMBER_MAX_RESTARTS", "MASTER_ADDR", "MASTER_PORT")


def command(argv, flavour, environ=CLEAN_ENV, torchrun=False):
    """The mpiexec command line, with the launcher's torchrun pairs left out unless asked."""
    args = cli.parse_args(argv)
    if "--mpiexec" not in argv:
        args.mpiexec = "mpiexec"
    cmd = cli.build_command(args, flavour, environ)
    if torchrun:
        return cmd
    flag = "-genv" if flavour == "hydra" else "-x"
    kept, i = [], 0
    while i < len(cmd):
        if cmd[i] == flag and cmd[i + 1].partition("=")[0] in TORCHRUN_VARS:
            i += 3 if flavour == "hydra" else 2
            continue
        kept.append(cmd[i])
        i += 1
    return kept


def test_torchrun_pairs_describe_the_hosts():
    cmd = command(
        ["-H", "node1:3,node2", "-n", "2", "--restarts", "2", "t.py"], "hydra", torchrun=True
    )
    genv = dict(tuple(cmd[i + 1 : i + 3]) for i, a in enumerate(cmd) if a == "-genv")
    assert genv == {
        "EMBER_NODE_SLOTS": "3,2",
        "EMBER_MAX_RESTARTS": "2",
        "MASTER_ADDR": "node1",
        "MASTER_PORT": "29500",
    }
    environ = {**CLEAN_ENV, "MASTER_ADDR": "10.0.0.1", "MASTER_PORT": "4000"}
    cmd = command(["-n", "2", "t.py"], "openmpi", environ, torchrun=True)
    xs = [cmd[i + 1] for i, a in enumerate(cmd) if a == "-x"]
    assert xs[-4:] == [
        "EMBER_NODE_SLOTS=2",
        "EMBER_MAX_RESTARTS=0",
        "MASTER_ADDR=10.0.0.1",
        "MASTER_PORT=4000",
    ]


def test_default_mpiexec_is_the_one_beside_this_python(tmp_path, monkeypatch):
    beside = tmp_path / "mpiexec"
    beside.write_text("#!/bin/sh\n")
    beside.chmod(0o755)
    monkeypatch.setattr(cli.sys, "executable", str(tmp_path / "python"))
    assert cli.default_mpiexec() == str(beside)
    beside.chmod(0o644)
    assert cli.default_mpiexec() == "mpiexec"


@pytest.mark.parametrize(
    "text, flavour",
    [(HYDRA_VERSION, "hydra"), (OPENMPI_VERSION, "openmpi"), (OPENMPI5_VERSION, "openmpi")],
)
def test_detect_flavour(tmp_path, text, flavour):
    assert cli.detect_flavour(fake_mpiexec(tmp_path, text)) == flavour


def test_detect_flavour_errors(tmp_path):
    with pytest.raises(RuntimeError, match=r"cannot tell which MPI .* said: 'srun 23.02'"):
        cli.detect_flavour(fake_mpiexec(tmp_path, "srun 23.02\n"))
    with pytest.raises(RuntimeError, match=r"mpiexec not found: '/nonexistent/mpiexec'"):
        cli.detect_flavour("/nonexistent/mpiexec")


def test_local_job_hydra():
    cmd = command(["-n", "4", "train.py", "--lr", "0.1", "-n", "7"], "hydra")
    assert cmd == ["mpiexec", "-n", "4", PY, BOOT, "train.py", "--lr", "0.1", "-n", "7"]


def test_local_job_openmpi():
    cmd = command(["--nproc-per-node", "2", "train.py"], "openmpi")
    assert cmd == ["mpiexec", "-n", "2", "--oversubscribe", PY, BOOT, "train.py"]


def test_module_and_double_dash():
    assert command(["-n", "2", "-m", "pkg.train", "--epochs", "3"], "hydra")[-5:] == [
        BOOT,
        "-m",
        "pkg.train",
        "--epochs",
        "3",
    ]
    assert command(["-n", "2", "--", "train.py", "-m"], "hydra")[-3:] == [BOOT, "train.py", "-m"]


def test_hosts_hydra():
    cmd = command(["-H", "node1:4,node2:4", "train.py"], "hydra")
    assert cmd[:7] == ["mpiexec", "-n", "8", "-hosts", "node1,node2", "-ppn", "4"]
    cmd = command(["-n", "2", "-H", "node1:3,node2", "train.py"], "hydra")
    assert cmd[:5] == ["mpiexec", "-n", "5", "-hosts", "node1:3,node2:2"]
    assert "-launcher" not in cmd


def test_hosts_openmpi():
    cmd = command(["-H", "node1:4,node2:2", "train.py"], "openmpi")
    assert cmd[:8] == [
        "mpiexec",
        "-n",
        "6",
        "--oversubscribe",
        "--host",
        "node1:4,node2:2",
        "--map-by",
        "slot",
    ]


def test_local_hosts_use_the_fork_launcher():
    cmd = command(["-H", f"localhost:1,127.0.0.1:1,{socket.gethostname()}:1", "x.py"], "hydra")
    assert cmd[cmd.index("-launcher") + 1] == "fork"


@pytest.mark.parametrize(
    "text",
    [
        "# Open MPI format\nnode1 slots=4\nnode2 slots=2 max_slots=8\n\n",
        "node1:4  # Hydra format\nnode2:2\n",
    ],
)
def test_hostfile(tmp_path, text):
    hostfile = tmp_path / "hosts"
    hostfile.write_text(text)
    assert cli.read_hostfile(str(hostfile)) == [("node1", 4), ("node2", 2)]
    cmd = command(["--hostfile", str(hostfile), "train.py"], "hydra")
    assert cmd[:5] == ["mpiexec", "-n", "6", "-hosts", "node1:4,node2:2"]


def test_hostfile_without_slots_uses_nproc_per_node(tmp_path):
    hostfile = tmp_path / "hosts"
    hostfile.write_text("a\nb\n")
    cmd = command(["-n", "3", "--hostfile", str(hostfile), "t.py"], "openmpi")
    assert cmd[cmd.index("--host") + 1] == "a:3,b:3"


@pytest.mark.parametrize(
    "spec, match",
    [("a:0", "bad slot count '0'"), ("a:x,b", "bad slot count 'x'"), (",", "no hosts")],
)
def test_bad_hosts(spec, match):
    with pytest.raises(ValueError, match=match):
        cli.parse_hosts(spec)


def test_env_forwarding():
    environ = {**CLEAN_ENV, "EMBER_SEED": "1", "OMP_NUM_THREADS": "2", "NCCL_DEBUG": "INFO"}
    environ["WANDB_KEY"] = "k"
    argv = ["--env", "WANDB_KEY", "--env", "MODE=fast run", "-n", "2", "t.py"]
    cmd = command(argv, "hydra", environ)
    genv = [tuple(cmd[i + 1 : i + 3]) for i, a in enumerate(cmd) if a == "-genv"]
    assert genv == [
        ("WANDB_KEY", "k"),
        ("MODE", "fast run"),
        ("EMBER_SEED", "1"),
        ("NCCL_DEBUG", "INFO"),
        ("OMP_NUM_THREADS", "2"),
    ]
    cmd = command(argv, "openmpi", environ)
    xs = [cmd[i + 1] for i, a in enumerate(cmd) if a == "-x"]
    assert xs == [
        "WANDB_KEY=k",
        "MODE=fast run",
        "EMBER_SEED=1",
        "NCCL_DEBUG=INFO",
        "OMP_NUM_THREADS=2",
    ]
    assert "PATH=/usr/bin" not in xs


def test_env_errors():
    with pytest.raises(ValueError, match=r"--env NOPE: NOPE is not set"):
        command(["--env", "NOPE", "t.py"], "hydra")
    with pytest.raises(ValueError, match=r"--env '1X=2': not an environment variable name"):
        command(["--env", "1X=2", "t.py"], "hydra")


def test_tag_output_and_extra_args():
    argv = ["--tag-output", "--mpi-args", "-bind-to core", "--mpiexec", "/opt/mpi/bin/mpiexec"]
    cmd = command([*argv, "t.py"], "hydra")
    assert cmd[:6] == ["/opt/mpi/bin/mpiexec", "-n", "1", "-prepend-rank", "-bind-to", "core"]
    assert "--tag-output" in command(["--tag-output", "t.py"], "openmpi")


@pytest.mark.parametrize(
    "environ, nproc", [({"CUDA_VISIBLE_DEVICES": "0,1,2"}, 3), ({"CUDA_VISIBLE_DEVICES": ""}, 1)]
)
def test_default_nproc_is_the_visible_gpu_count(environ, nproc):
    assert command(["t.py"], "hydra", {**CLEAN_ENV, **environ})[:3] == ["mpiexec", "-n", str(nproc)]


def test_default_nproc_from_nvidia_smi(tmp_path, monkeypatch):
    smi = tmp_path / "nvidia-smi"
    smi.write_text(
        "#!/bin/sh\necho 'GPU 0: NVIDIA H100 (UUID: GPU-a)'\necho 'GPU 1: NVIDIA H100 (UUID: GPU-b)'\n"
    )
    smi.chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path))
    assert cli.visible_gpu_count({}) == 2


def test_dry_run_prints_the_exact_command(tmp_path, capsys):
    mpiexec = fake_mpiexec(tmp_path, OPENMPI_VERSION)
    rc = cli.main(["--mpiexec", mpiexec, "-n", "2", "--dry-run", "train.py", "--data", "a b"])
    assert rc == 0
    printed = capsys.readouterr().out.strip()
    assert shlex.split(printed)[:4] == [mpiexec, "-n", "2", "--oversubscribe"]
    assert shlex.split(printed)[-3:] == ["train.py", "--data", "a b"]


def test_main_reports_errors(tmp_path, capsys):
    assert cli.main(["--mpiexec", "/nonexistent/mpiexec", "t.py"]) == 2
    assert "ember-launch: error: mpiexec not found" in capsys.readouterr().err


@pytest.mark.parametrize(
    "argv, message",
    [
        ([], "the script to run (or -m module) is required"),
        (["-n", "2", "-m"], "argument -m: expected a module name"),
        (["-n", "0", "t.py"], "--nproc-per-node must be at least 1, got 0"),
        (["-H", "a", "--hostfile", "f", "t.py"], "not allowed with argument"),
        (["--restarts", "-1", "t.py"], "--restarts must be at least 0, got -1"),
    ],
)
def test_usage_errors(argv, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.parse_args(argv)
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


def test_iface_hydra_and_openmpi():
    assert cli.iface_args("hydra", "eth1", {}) == [
        "-iface",
        "eth1",
        "-genv",
        "UCX_NET_DEVICES",
        "eth1",
        "-genv",
        "FI_TCP_IFACE",
        "eth1",
    ]
    # a variable the user set wins
    assert cli.iface_args("hydra", "eth1", {"UCX_NET_DEVICES": "mlx5_0:1"}) == [
        "-iface",
        "eth1",
        "-genv",
        "FI_TCP_IFACE",
        "eth1",
    ]
    assert cli.iface_args("openmpi", "eth1", {}) == [
        "--mca",
        "btl_tcp_if_include",
        "eth1",
        "--mca",
        "oob_tcp_if_include",
        "eth1",
        "-x",
        "UCX_NET_DEVICES=eth1",
    ]
    assert cli.iface_args("hydra", None, {}) == []
    args = cli.parse_args(["-H", "a:2,b:2", "--iface", "ib0", "train.py"])
    cmd = cli.build_command(args, "hydra", {})
    assert cmd[cmd.index("-iface") + 1] == "ib0"


def test_min_hosts_needs_hosts(capsys):
    with pytest.raises(SystemExit):
        cli.parse_args(["--restarts", "1", "--min-hosts", "1", "train.py"])
    assert "--min-hosts needs -H/--hostfile" in capsys.readouterr().err
    assert cli.parse_args(["-H", "a,b", "--min-hosts", "1", "x.py"]).min_hosts == 1
