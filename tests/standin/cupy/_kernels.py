"""CUDA kernel objects that can be built but not run: the stand-in has no GPU to compile for.

lrpnet's own kernels (kernels/cupy) must not load under the stand-in; should something still
construct and call one, the call fails with a StandInError that says so, instead of silently
running some host fallback that would make a test pass for the wrong reason.
"""
from __future__ import annotations

from .standin import StandInError


class _Kernel:
    _NAME_AT = None   # position of the name argument in CuPy's constructor

    def __init__(self, *args, **kwargs):
        self.args, self.kwargs = args, kwargs
        at = self._NAME_AT
        self.name = kwargs.get("name") or (args[at] if at is not None and len(args) > at else "kernel")

    def __call__(self, *args, **kwargs):
        raise StandInError(f"the CPU stand-in cannot run CUDA kernels: {type(self).__name__} "
                           f"{self.name!r} was called; load CUDA kernels only on a real GPU "
                           f"(check cupy.STANDIN)")


class ElementwiseKernel(_Kernel):
    """cupy.ElementwiseKernel(in_params, out_params, operation, name, ...)."""
    _NAME_AT = 3


class ReductionKernel(_Kernel):
    """cupy.ReductionKernel(in_params, out_params, map_expr, reduce_expr, post_map_expr, identity, name)."""
    _NAME_AT = 6


class RawKernel(_Kernel):
    """cupy.RawKernel(code, name, options=(), backend="nvrtc", ...)."""

    _NAME_AT = 1


class RawModule:
    """cupy.RawModule(code=..., ...): get_function() hands out kernels that cannot be called."""

    def __init__(self, *args, **kwargs):
        self.args, self.kwargs = args, kwargs

    def get_function(self, name):
        return RawKernel("", name)


class Fusion(_Kernel):
    """What cupy.fuse returns."""


def fuse(*args, **kwargs):
    """cupy.fuse, as ``@fuse`` or ``@fuse(kernel_name=...)``: the fused function cannot be called."""
    def decorate(fn):
        return Fusion(name=kwargs.get("kernel_name") or getattr(fn, "__name__", "fused"))
    if len(args) == 1 and callable(args[0]) and not kwargs:
        return decorate(args[0])
    return decorate


def memoize(for_each_device=False):
    """cupy.memoize: a plain functools cache (it is used to cache kernel construction)."""
    import functools

    def decorate(fn):
        return functools.lru_cache(maxsize=None)(fn)
    return decorate
