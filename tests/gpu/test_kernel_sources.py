"""Every CUDA kernel source of ember compiles with NVRTC, for float16, bfloat16, float32 and
float64, for Ampere and Hopper. Needs CuPy (>= 14) and NVRTC (the ``nvidia-cuda-nvrtc``
wheel, or a CUDA toolkit) but no GPU or driver: on a CPU machine,

    pip install cupy-cuda12x nvidia-cuda-nvrtc-cu12 nvidia-cuda-runtime-cu12
    python -m pytest tests/gpu/test_kernel_sources.py

Uses CuPy's NVRTC wrapper directly (``cupy.cuda.compiler._NVRTCProgram``), since its
public compile helpers ask the device for its architecture.
"""

import pytest

from ember.core import kernels, multi_tensor

compiler = pytest.importorskip("cupy.cuda.compiler", reason="needs CuPy (no GPU needed)")
cupy = pytest.importorskip("cupy")

ARCHS = ["sm_80", "sm_90"]
STORAGE = ["__half", "__nv_bfloat16", "float", "double"]


def _include_dirs():
    dirs = []
    try:
        from cuda import pathfinder

        dirs.append(pathfinder.find_nvidia_header_directory("cudart"))
    except Exception:
        pass
    import os

    core = os.path.join(os.path.dirname(cupy.__file__), "_core", "include")
    dirs += [core, os.path.join(core, "cupy", "_cccl", "libcudacxx")]
    return [d for d in dirs if d]


def _compile(source, name_expressions, arch):
    try:
        compiler._get_nvrtc_version()
    except Exception as err:
        pytest.skip(f"NVRTC is not loadable here: {err}")
    prog = compiler._NVRTCProgram(
        source, "ember.cu", (), (), name_expressions=name_expressions, method="cubin"
    )
    options = (f"-arch={arch}", "--std=c++17") + tuple(f"-I{d}" for d in _include_dirs())
    binary, mapping = prog.compile(options)
    assert binary
    if name_expressions:
        assert len(mapping) == len(name_expressions)


@pytest.mark.parametrize("arch", ARCHS)
def test_row_kernels_compile(arch):
    _compile(kernels._ROW_SOURCE, list(kernels._ROW_NAMES.values()), arch)


@pytest.mark.parametrize("arch", ARCHS)
def test_multi_tensor_kernels_compile(arch):
    _compile(multi_tensor._SOURCE, multi_tensor._NAMES, arch)


ELEMENTWISE = {
    "gelu_erf_fwd": ("T x", "T y", kernels._GELU_ERF_FWD),
    "gelu_erf_bwd": ("T x, T g", "T gx", kernels._GELU_ERF_BWD),
    "gelu_tanh_fwd": ("T x", "T y", kernels._GELU_TANH_FWD),
    "gelu_tanh_bwd": ("T x, T g", "T gx", kernels._GELU_TANH_BWD),
    "silu_fwd": ("T x", "T y", kernels._SILU_FWD),
    "silu_bwd": ("T x, T g", "T gx", kernels._SILU_BWD),
    "adam": (
        "T g, double sign, double l2, double decay, double beta1, double beta2, "
        "double bc2_sqrt, double eps, double step_size",
        "T p, T m, T v",
        kernels._ADAM,
    ),
    "dropout_fwd": ("T x, float u, double p, double scale", "T y, bool mask", kernels._DROPOUT_FWD),
    "dropout_bwd": ("T g, bool mask, double scale", "T gx", kernels._DROPOUT_BWD),
}


@pytest.mark.parametrize("ctype", ["bfloat16", "float16", "float", "double"])
@pytest.mark.parametrize("name", list(ELEMENTWISE))
def test_elementwise_kernel_bodies_compile_with_cupys_types(ctype, name):
    """The bodies as CuPy's ElementwiseKernel wraps them: ``T`` is CuPy's ``bfloat16`` /
    ``float16`` class for the 16-bit types (CuPy 14's headers)."""
    ins, outs, body = ELEMENTWISE[name]
    params, refs = [], []
    for decl in (ins + ", " + outs).split(", "):
        ty, arg = decl.split()
        const = "const " if decl in ins.split(", ") else ""
        if ty in ("T", "bool") or (ty == "float" and arg == "u"):
            params.append(f"{const}{ty}* _raw_{arg}")
            refs.append(f"{const}{ty} &{arg} = _raw_{arg}[i];")
        else:
            params.append(f"{ty} {arg}")
    header = {
        "bfloat16": '#include "cupy/bfloat16.cuh"\n',
        "float16": '#include "cupy/float16.cuh"\n',
    }
    source = (
        "#include <cupy/carray.cuh>\n"
        + header.get(ctype, "")
        + f"typedef {ctype} T;\n"
        + kernels._PREAMBLE
        + kernels._K
        + f'extern "C" __global__ void k({", ".join(params)}, long long n) {{\n'
        + "for (long long i = threadIdx.x; i < n; i += blockDim.x) {\n"
        + "\n".join(refs)
        + kernels._TYPEDEF
        + body
        + "}\n}\n"
    )
    _compile(source, None, "sm_90")
