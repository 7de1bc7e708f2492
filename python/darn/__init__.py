"""darn for PyTorch: fused dropout + residual add + RMSNorm / LayerNorm over libdarn, with flash-attn's API.

    import darn
    y = darn.rms_norm_fn(x, weight, None, residual=res, dropout_p=0.1, prenorm=True)

The library is found through $DARN_LIBRARY, then darn/lib/ inside this package, then the system loader
(libdarn.so.0). CPU tensors run on darn's CPU backend, CUDA/ROCm tensors on its GPU backend; both give the
same bits for the same inputs and (seed, offset) (docs/numerics.md).
"""
from . import _lib
from ._lib import DarnArgumentError, DarnError, DarnUnsupportedError
from .modules import DropoutAddLayerNorm, DropoutAddRMSNorm, LayerNorm, RMSNorm
from .ops import HAS_CUSTOM_OP, layer_norm_fn, rms_norm_fn

__version__ = "0.1.0"
library_path = _lib.PATH
library_version = _lib.VERSION
contract_version = _lib.CONTRACT_VERSION


def gpu_available():
    """True when the loaded libdarn has a GPU backend and sees a device."""
    return _lib.gpu_available()


__all__ = ["layer_norm_fn", "rms_norm_fn", "RMSNorm", "LayerNorm", "DropoutAddRMSNorm", "DropoutAddLayerNorm",
           "DarnError", "DarnArgumentError", "DarnUnsupportedError", "HAS_CUSTOM_OP", "gpu_available",
           "library_path", "library_version", "contract_version"]
