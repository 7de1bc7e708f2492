"""flash-attn's Triton layer_norm.py (flash_attn/ops/triton/layer_norm.py) as a module, for the GPU tests and
tools/gpu_overhead.py: the file named by $DARN_FLASH_ATTN_FILE, imported without flash-attn's compiled extension.
flash_attn_module() is None when the variable is unset, the file is missing or triton does not import."""
import importlib.util
import os
import sys
import types

import torch

_FA = {}


def flash_attn_module():
    """flash_attn/ops/triton/layer_norm.py from $DARN_FLASH_ATTN_FILE, imported without flash-attn's compiled
    extension: the flash_attn and flash_attn.utils packages are stubbed to their folders (so utils/torch.py
    and utils/library.py load from the checkout when present), with minimal stand-ins otherwise."""
    if "mod" in _FA:
        return _FA["mod"]
    path = os.environ.get("DARN_FLASH_ATTN_FILE")
    mod = None
    if path and os.path.exists(path):
        try:
            import triton  # noqa: F401
        except ImportError:
            path = None
    if path and os.path.exists(path):
        try:
            import flash_attn.utils.library  # noqa: F401  (a real install)
        except Exception:
            _stub_utils(path)
        spec = importlib.util.spec_from_file_location("darn_test_flash_attn_layer_norm", path)
        mod = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = mod
        spec.loader.exec_module(mod)
    _FA["mod"] = mod
    return mod


def _stub_utils(path):
    """flash_attn and flash_attn.utils as bare packages over the checkout's folders; utils.torch and
    utils.library from the checkout's files when they import, else minimal stand-ins."""
    pkg_root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(path))))
    for name, sub in (("flash_attn", ""), ("flash_attn.utils", "utils")):
        m = types.ModuleType(name)
        m.__path__ = [os.path.join(pkg_root, sub)] if sub else [pkg_root]
        sys.modules[name] = m
    try:
        import flash_attn.utils.torch  # noqa: F401
    except Exception:
        sys.modules.pop("flash_attn.utils.torch", None)
        ut = types.ModuleType("flash_attn.utils.torch")
        new_amp = hasattr(torch.amp, "custom_fwd")
        amp = torch.amp if new_amp else torch.cuda.amp

        def deco(f):
            def wrap(*a, **k):
                if new_amp:
                    k.setdefault("device_type", "cuda")
                return f(*a, **k)
            return wrap
        ut.custom_fwd, ut.custom_bwd = deco(amp.custom_fwd), deco(amp.custom_bwd)
        sys.modules["flash_attn.utils.torch"] = ut
    try:
        import flash_attn.utils.library  # noqa: F401,F811
    except Exception:
        sys.modules.pop("flash_attn.utils.library", None)
        ul = types.ModuleType("flash_attn.utils.library")

        def triton_op(name, fn=None, *, mutates_args, schema=None, allow_decomposition=True):
            def dec(f):
                op = torch.library.custom_op(name, f, mutates_args=mutates_args, schema=schema)
                op.register_fake(f)
                return op
            return dec if fn is None else dec(fn)
        ul.triton_op = triton_op
        sys.modules["flash_attn.utils.library"] = ul
