"""nn.Modules over darn's functions, like flash-attn's (flash_attn.ops.triton.layer_norm.RMSNorm and
flash_attn.ops.rms_norm / layer_norm's DropoutAdd* modules). Dropout applies in .train() only. Each forward also
takes the keyword-only preallocated outputs out= / residual_out= of the functions (a darn extension)."""
from typing import Optional, Tuple, Union

import torch
from torch import Tensor

from .ops import layer_norm_fn, rms_norm_fn

# y, or (y, residual_out) with prenorm (the functions return more variants: the mask ones, which the modules do not
# ask for; hence the `type: ignore` below, which also covers torch's Module.__getattr__ typing of self.bias)
_Out = Union[Tensor, Tuple[Tensor, Tensor]]


class RMSNorm(torch.nn.Module):
    """y = RMSNorm(dropout(x) + residual) * weight. forward(x, residual=None, prenorm=False,
    residual_in_fp32=False) returns y, or (y, residual_out) with prenorm."""

    def __init__(self, hidden_size: int, eps: float = 1e-5, dropout_p: float = 0.0, zero_centered_weight: bool = False,
                 device: Optional[torch.device] = None, dtype: Optional[torch.dtype] = None) -> None:
        super().__init__()
        self.eps = eps
        self.dropout_p = dropout_p
        self.zero_centered_weight = zero_centered_weight
        self.weight = torch.nn.Parameter(torch.empty(hidden_size, device=device, dtype=dtype))
        self.register_parameter("bias", None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        (torch.nn.init.zeros_ if self.zero_centered_weight else torch.nn.init.ones_)(self.weight)

    def forward(self, x: Tensor, residual: Optional[Tensor] = None, prenorm: bool = False,
                residual_in_fp32: bool = False, *, out: Optional[Tensor] = None,
                residual_out: Optional[Tensor] = None) -> _Out:
        return rms_norm_fn(x, self.weight, self.bias, residual=residual, eps=self.eps,  # type: ignore
                           dropout_p=self.dropout_p if self.training else 0.0, prenorm=prenorm,
                           residual_in_fp32=residual_in_fp32, zero_centered_weight=self.zero_centered_weight,
                           out=out, residual_out=residual_out)

    def extra_repr(self) -> str:
        return "%d, eps=%g, dropout_p=%g" % (self.weight.shape[0], self.eps, self.dropout_p)


class LayerNorm(torch.nn.Module):
    """y = LayerNorm(dropout(x) + residual) * weight + bias (bias=False: no bias). Same forward as RMSNorm."""

    def __init__(self, hidden_size: int, eps: float = 1e-5, dropout_p: float = 0.0, zero_centered_weight: bool = False,
                 bias: bool = True, device: Optional[torch.device] = None,
                 dtype: Optional[torch.dtype] = None) -> None:
        super().__init__()
        self.eps = eps
        self.dropout_p = dropout_p
        self.zero_centered_weight = zero_centered_weight
        self.weight = torch.nn.Parameter(torch.empty(hidden_size, device=device, dtype=dtype))
        if bias:
            self.bias = torch.nn.Parameter(torch.empty(hidden_size, device=device, dtype=dtype))
        else:
            self.register_parameter("bias", None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        (torch.nn.init.zeros_ if self.zero_centered_weight else torch.nn.init.ones_)(self.weight)
        if self.bias is not None:
            torch.nn.init.zeros_(self.bias)

    def forward(self, x: Tensor, residual: Optional[Tensor] = None, prenorm: bool = False,
                residual_in_fp32: bool = False, *, out: Optional[Tensor] = None,
                residual_out: Optional[Tensor] = None) -> _Out:
        return layer_norm_fn(x, self.weight, self.bias, residual=residual, eps=self.eps,  # type: ignore
                             dropout_p=self.dropout_p if self.training else 0.0, prenorm=prenorm,
                             residual_in_fp32=residual_in_fp32, zero_centered_weight=self.zero_centered_weight,
                           out=out, residual_out=residual_out)

    def extra_repr(self) -> str:
        return "%d, eps=%g, dropout_p=%g, bias=%s" % (self.weight.shape[0], self.eps, self.dropout_p,
                                                      self.bias is not None)


class DropoutAddRMSNorm(torch.nn.Module):
    """flash_attn.ops.rms_norm.DropoutAddRMSNorm: forward(x0, residual=None) returns
    RMSNorm(dropout(x0) + residual), or (out, residual_out) with prenorm=True."""

    def __init__(self, hidden_size: int, prenorm: bool = False, p: float = 0.0, eps: float = 1e-5,
                 residual_in_fp32: bool = False, device: Optional[torch.device] = None,
                 dtype: Optional[torch.dtype] = None) -> None:
        super().__init__()
        self.prenorm = prenorm
        self.p = p
        self.eps = eps
        self.residual_in_fp32 = residual_in_fp32
        self.weight = torch.nn.Parameter(torch.empty(hidden_size, device=device, dtype=dtype))
        self.register_parameter("bias", None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        torch.nn.init.ones_(self.weight)

    def forward(self, x0: Tensor, residual: Optional[Tensor] = None, *, out: Optional[Tensor] = None,
                residual_out: Optional[Tensor] = None) -> _Out:
        return rms_norm_fn(x0, self.weight, None, residual=residual, eps=self.eps,  # type: ignore
                           dropout_p=self.p if self.training else 0.0, prenorm=self.prenorm,
                           residual_in_fp32=self.residual_in_fp32, out=out, residual_out=residual_out)


class DropoutAddLayerNorm(torch.nn.Module):
    """flash_attn.ops.layer_norm.DropoutAddLayerNorm: forward(x0, residual=None) returns
    LayerNorm(dropout(x0) + residual), or (out, residual_out) with prenorm=True."""

    def __init__(self, hidden_size: int, prenorm: bool = False, p: float = 0.0, eps: float = 1e-5,
                 residual_in_fp32: bool = False, device: Optional[torch.device] = None,
                 dtype: Optional[torch.dtype] = None) -> None:
        super().__init__()
        self.prenorm = prenorm
        self.p = p
        self.eps = eps
        self.residual_in_fp32 = residual_in_fp32
        self.weight = torch.nn.Parameter(torch.empty(hidden_size, device=device, dtype=dtype))
        self.bias = torch.nn.Parameter(torch.empty(hidden_size, device=device, dtype=dtype))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        torch.nn.init.ones_(self.weight)
        torch.nn.init.zeros_(self.bias)

    def forward(self, x0: Tensor, residual: Optional[Tensor] = None, *, out: Optional[Tensor] = None,
                residual_out: Optional[Tensor] = None) -> _Out:
        return layer_norm_fn(x0, self.weight, self.bias, residual=residual, eps=self.eps,  # type: ignore
                             dropout_p=self.p if self.training else 0.0, prenorm=self.prenorm,
                             residual_in_fp32=self.residual_in_fp32, out=out, residual_out=residual_out)
