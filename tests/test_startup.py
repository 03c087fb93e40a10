"""What ``import ember`` and a first tensor op load, checked in fresh interpreters.

Start-up time is kept down by what is *not* imported, so these tests check the module set,
not the clock (a timing assertion would flake on a loaded machine)."""

import subprocess
import sys

import pytest


def _run(code: str) -> str:
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def test_first_tensor_op_does_not_import_ml_dtypes():
    out = _run(
        "import sys, ember\n"
        "y = ember.tensor([1.0]) + 1\n"
        "z = ember.ones(2, requires_grad=True)\n"
        "(z * 2).sum().backward()\n"
        "import ember.nn, ember.optim\n"
        "ember.nn.Linear(2, 1)(z).sum().backward()\n"
        "print(y.item(), 'ml_dtypes' in sys.modules)\n"
    )
    assert out == "2.0 False"


def test_bfloat16_loads_ml_dtypes_on_first_use():
    out = _run(
        "import sys, ember\n"
        "d = ember.bfloat16\n"
        "before = 'ml_dtypes' in sys.modules\n"
        "print(before, d, d.itemsize, d.is_floating_point, ember.tensor([1.5], dtype=d).dtype,\n"
        "      'ml_dtypes' in sys.modules)\n"
    )
    assert out == "False ember.bfloat16 2 True ember.bfloat16 True"


def test_arrays_made_with_ml_dtypes_directly_map_to_bfloat16():
    out = _run(
        "import ml_dtypes, numpy as np, ember\n"
        "t = ember.from_numpy(np.ones(3, ml_dtypes.bfloat16))\n"
        "print(t.dtype, t.is_floating_point(), ember.bfloat16.np == np.dtype(ml_dtypes.bfloat16))\n"
    )
    assert out == "ember.bfloat16 True True"


@pytest.mark.parametrize(
    "code",
    [
        "import ember; ember.tensor([1.0]) + 1",
        "import ember, ember.nn, ember.optim; ember.nn.Linear(2, 2)",
    ],
)
def test_start_up_imports_no_optional_heavy_module(code):
    out = _run(f"{code}\nimport sys\nprint(' '.join(sorted(sys.modules)))")
    heavy = ("ml_dtypes", "cupy", "mpi4py", "torch", "safetensors", "tqdm", "scipy")
    assert [m for m in out.split() if m.split(".")[0] in heavy] == []


@pytest.mark.parametrize(
    "code",
    [
        "import ember\nfrom ember.core import serialization",
        "from ember.core.serialization import save\nimport ember",
        "import ember.core.ops.elementwise\nimport ember",
    ],
)
def test_importing_a_core_module_first_keeps_one_module_object(code):
    # the first import under ember. loads the public surface; the module being imported
    # must not then run a second time into a module without its submodules
    out = _run(
        f"{code}\nimport sys\n"
        "core = sys.modules['ember.core']\n"
        "print(ember.core is core, core.backend is sys.modules['ember.core.backend'],\n"
        "      core.__spec__.name)\n"
    )
    assert out == "True True ember.core"


def test_a_first_tensor_op_leaves_nn_optim_data_and_distributed_unloaded():
    out = _run(
        "import sys, ember\n"
        "(ember.tensor([1.0], requires_grad=True).exp() * 2).sum().backward()\n"
        "print(' '.join(sorted(sys.modules)))\n"
    )
    loaded = set(out.split())
    assert "ember.core.ops.elementwise" in loaded
    # ember.core.utils itself loads (tensors return its RemovableHandle) but not its data
    unloaded = ["ember.core.nn", "ember.core.optim", "ember.core.utils.data", "ember.distributed"]
    assert [m for m in unloaded if m in loaded] == []


@pytest.mark.parametrize(
    "code",
    [
        "import ember.nn as nn",
        "import ember\nnn = ember.nn",
        "from ember import nn",
        "import ember.nn.parallel\nimport ember.nn as nn",
    ],
)
def test_public_submodules_carry_their_cross_package_attributes(code):
    out = _run(
        f"{code}\nimport ember, ember.cuda.amp\n"
        "from ember.utils.data.distributed import DistributedSampler\n"
        "print(nn.parallel.DistributedDataParallel.__name__, nn.SyncBatchNorm.__name__,\n"
        "      ember.utils.data.distributed.DistributedSampler is DistributedSampler,\n"
        "      ember.cuda.amp.GradScaler.__name__, ember.nn is nn)\n"
    )
    assert out == "DistributedDataParallel SyncBatchNorm True GradScaler True"
