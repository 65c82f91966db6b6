"""Compile every kernel of kernels/cupy with NVRTC, as CuPy does at a kernel's first launch, on a
machine without a GPU:

    python -m kernels.cupy.compile_check [--arch 90] [--source]

CuPy writes an ElementwiseKernel's CUDA source only when the kernel is called with device arrays. This
script has CuPy's own code generator write the same source from the argument descriptions such a call
makes (1-d contiguous arrays; a 0-d raw array for ``ok``; scalars by value), for each dtype a call can
bring (T = float32, float64; O = bool, uint8), then compiles it with NVRTC to a cubin for sm_<arch>,
with CuPy's options (its headers, ``--std=c++17``, ``-ftz=true``) and the kernel's (``--fmad=false``).

Needs CuPy and the NVRTC library (pip install cupy-cuda13x nvidia-cuda-nvrtc), no driver or device.
It uses CuPy internals (``cupy._core._kernel``, two functions of ``cupy.cuda.compiler`` replaced while it
runs), as of CuPy 14.2: a failure inside them is a CuPy change, not a kernel error.
"""
from __future__ import annotations

import argparse
import itertools
import sys

import numpy

PLACEHOLDERS = {"T": ("float32", "float64"), "O": ("bool", "uint8")}
ARG_NDARRAY, ARG_INDEXER, ARG_SCALAR = 1, 2, 3        # cupy/_core/_kernel.pxd, enum _ArgKind


def kernel_source(kernel, scalars, types):
    """CuPy's CUDA source and NVRTC options for ``kernel`` (a cupy.ElementwiseKernel) called with
    ``types`` (placeholder -> dtype), the parameters in ``scalars`` as scalars."""
    import cupy
    import cupy._core._kernel as K
    from cupy._core import _carray, _scalar, core
    from cupy.cuda import compiler

    def dtype(p):
        return numpy.dtype(types[p.ctype] if p.dtype is None else p.dtype)

    in_dtypes = tuple(None if p.name in scalars else dtype(p) for p in kernel.in_params)
    _, _, type_map = kernel._decide_params_type(in_dtypes, tuple(dtype(p) for p in kernel.out_params))
    infos = [K._ArgInfo(ARG_SCALAR, _scalar.CScalar, dtype(p), 0, True, True) if p.name in scalars
             else K._ArgInfo(ARG_NDARRAY, cupy.ndarray, dtype(p), 0 if p.raw else 1, True, True)
             for p in kernel.in_params + kernel.out_params]
    infos.append(K._ArgInfo(ARG_INDEXER, _carray.Indexer, None, 1, True, True))
    code = K._get_elementwise_kernel_code(tuple(infos), type_map, kernel.params, kernel.operation,
                                          kernel.name, kernel.preamble, **kernel.kwargs)
    captured = {}

    def capture(source, options=(), **_):             # what CuPy would compile, and how
        captured.update(source=source, options=options)
    real = compiler._compile_module_with_cache
    compiler._compile_module_with_cache = capture
    try:
        core.compile_with_cache(code, kernel.kwargs.get("options", ()))
    finally:
        compiler._compile_module_with_cache = real
    return captured["source"], captured["options"] + ("-ftz=true",)   # CuPy adds -ftz=true after this


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--arch", default="90", help="compute capability to compile for (default 90: H100)")
    parser.add_argument("--source", action="store_true", help="print each kernel's CUDA source")
    args = parser.parse_args(argv)

    import kernels.cupy  # noqa: F401  (defines the kernels)
    from cupy.cuda import compiler
    from kernels.cupy.elementwise import KERNELS

    # NVRTC asks the device for its architecture; with no device, name it
    compiler._get_arch_for_options_for_nvrtc = lambda arch=None: (f"-arch=sm_{arch}", "cubin")
    failed = 0
    for kern in KERNELS:
        kernel = kern.kernel()
        used = sorted({p.ctype for p in kernel.in_params + kernel.out_params if p.dtype is None})
        for combo in itertools.product(*(PLACEHOLDERS[t] for t in used)):
            types = dict(zip(used, combo))
            what = f"{kernel.name} {' '.join(f'{t}={d}' for t, d in types.items())}"
            source, options = kernel_source(kernel, kern.scalars, types)
            if args.source:
                print(f"// ---- {what}\n{source}")
            try:
                cubin, _ = compiler.compile_using_nvrtc(source, options, arch=args.arch)
            except compiler.CompileException as e:
                failed += 1
                print(f"FAIL {what}\n{e}", file=sys.stderr)
                continue
            print(f"ok   {what}: {len(cubin)} bytes of sm_{args.arch} cubin")
    print(f"{failed} of the kernels failed to compile" if failed else "every kernel compiles")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
