"""Structured channel pruning with real channel removal.

Channels are ranked by the L1 norm of their filter times the BatchNorm scale (the magnitude the
channel actually passes on); the top ``keep`` fraction survive. A new, narrower ``Detector`` is
built and the surviving weights are copied in, so the result is genuinely smaller and faster.
"""

from __future__ import annotations

import copy

import torch
from torch import Tensor, nn

from lotus.detectors.model import Detector


def _n_keep(n: int, keep: float, multiple: int = 4) -> int:
    k = max(multiple, int(round(n * keep / multiple)) * multiple)
    return min(n, k)


def _top(scores: Tensor, k: int) -> Tensor:
    return torch.sort(torch.topk(scores, k).indices).values


def _conv_scores(conv: nn.Conv2d, bn: nn.BatchNorm2d | None) -> Tensor:
    s = conv.weight.detach().abs().sum((1, 2, 3))
    if bn is not None:
        s = s * (bn.weight.detach().abs() / torch.sqrt(bn.running_var + bn.eps))
    return s


def _copy_conv(dst: nn.Conv2d, src: nn.Conv2d, out_idx: Tensor, in_idx: Tensor) -> None:
    dst.weight.data.copy_(src.weight.data[out_idx][:, in_idx])
    if src.bias is not None:
        dst.bias.data.copy_(src.bias.data[out_idx])


def _copy_bn(dst: nn.BatchNorm2d, src: nn.BatchNorm2d, idx: Tensor) -> None:
    for name in ("weight", "bias", "running_mean", "running_var"):
        getattr(dst, name).data.copy_(getattr(src, name).data[idx])


def _copy_linear(dst: nn.Linear, src: nn.Linear, out_idx: Tensor, in_idx: Tensor) -> None:
    dst.weight.data.copy_(src.weight.data[out_idx][:, in_idx])
    dst.bias.data.copy_(src.bias.data[out_idx])


def prune_detector(model: Detector, keep: float = 0.5) -> Detector:
    """A narrower copy of ``model`` keeping ``keep`` of the channels of every hidden layer.

    Pruned: all backbone convs (incl. the feature map, with the matching ``fc1`` columns), the
    RPN conv, and the two hidden FC layers. Inputs and the class/box outputs keep their sizes.
    """
    if not 0 < keep <= 1:
        raise ValueError(f"keep must be in (0, 1], got {keep}")
    src = model.eval()
    cfg = copy.deepcopy(src.cfg)
    s1, s2 = src.stage1, src.stage2
    keeps: list[Tensor] = []
    for layer in s1.backbone:
        conv, bn = layer[0], layer[1]
        keeps.append(_top(_conv_scores(conv, bn), _n_keep(conv.out_channels, keep)))
    rpn_idx = _top(_conv_scores(s1.rpn_conv[0], None), _n_keep(cfg.rpn_dim, keep))
    fc1_idx = _top(s2.fc1.weight.detach().abs().sum(1), _n_keep(cfg.fc_dim, keep))
    fc2_idx = _top(s2.fc2.weight.detach().abs().sum(1), _n_keep(cfg.fc_dim, keep))
    cfg.widths = [len(k) for k in keeps]
    cfg.rpn_dim = len(rpn_idx)
    cfg.fc_dim = len(fc1_idx)
    dst = Detector(cfg).eval()
    d1, d2 = dst.stage1, dst.stage2
    prev = torch.arange(3)
    for layer_src, layer_dst, idx in zip(s1.backbone, d1.backbone, keeps, strict=True):
        _copy_conv(layer_dst[0], layer_src[0], idx, prev)
        _copy_bn(layer_dst[1], layer_src[1], idx)
        prev = idx
    _copy_conv(d1.rpn_conv[0], s1.rpn_conv[0], rpn_idx, prev)
    all_a = torch.arange(s1.rpn_cls.out_channels)
    _copy_conv(d1.rpn_cls, s1.rpn_cls, all_a, rpn_idx)
    _copy_conv(d1.rpn_reg, s1.rpn_reg, torch.arange(s1.rpn_reg.out_channels), rpn_idx)
    area = cfg.roi_size**2
    cols = (prev[:, None] * area + torch.arange(area)[None]).flatten()  # channel-major flatten of RoIs
    _copy_linear(d2.fc1, s2.fc1, fc1_idx, cols)
    _copy_linear(d2.fc2, s2.fc2, fc2_idx, fc1_idx)
    _copy_linear(d2.cls, s2.cls, torch.arange(s2.cls.out_features), fc2_idx)
    _copy_linear(d2.reg, s2.reg, torch.arange(s2.reg.out_features), fc2_idx)
    return dst
