"""darn for PyTorch: fused dropout + residual add + RMSNorm / LayerNorm over libdarn, with flash-attn's API.

    import darn
    y = darn.rms_norm_fn(x, weight, None, residual=res, dropout_p=0.1, prenorm=True)

The library is found through $DARN_LIBRARY, then darn/lib/ inside this package (where `pip install` puts the
libdarn it builds), then the system loader (libdarn.so.0). CPU tensors run on darn's CPU backend, CUDA/ROCm
tensors on its GPU backend; both give the same bits for the same inputs and (seed, offset) (docs/numerics.md).
`python -m darn` prints the versions, the library, the backends and devices, and checks each backend.
"""
from . import _lib
from ._lib import DarnArgumentError, DarnError, DarnUnsupportedError
from .modules import DropoutAddLayerNorm, DropoutAddRMSNorm, LayerNorm, RMSNorm
from .ops import HAS_CUSTOM_OP, layer_norm_fn, rms_norm_fn

try:  # written by the package build: the C library's version at build time (CMakeLists.txt / darn.h)
    from ._build_info import version as _built
except ImportError:  # not built (python/ of a checkout on sys.path): the version of the library in use
    _built = None
__version__: str = _built or _lib.VERSION
library_path: str = _lib.PATH
"""The libdarn file in use."""
library_version: str = _lib.VERSION
"""darn_version_string() of the library in use."""
contract_version: int = _lib.CONTRACT_VERSION
"""darn_contract_version() of the library in use: the numerics contract its output bits follow."""


def gpu_available() -> bool:
    """True when the loaded libdarn has a GPU backend and sees a device."""
    return _lib.gpu_available()


__all__ = ["layer_norm_fn", "rms_norm_fn", "RMSNorm", "LayerNorm", "DropoutAddRMSNorm", "DropoutAddLayerNorm",
           "DarnError", "DarnArgumentError", "DarnUnsupportedError", "HAS_CUSTOM_OP", "gpu_available",
           "library_path", "library_version", "contract_version"]
