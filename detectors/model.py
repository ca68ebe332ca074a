"""FRCNN-lite: a small Faster R-CNN-style detector split into two exportable stages.

Stage 1 (``Stage1``): image [1, 3, S, S] in [0, 1] -> feature map [1, C, S/8, S/8], proposals
[P, 4] (xyxy, input pixels) and objectness scores [P]; P varies with the scene (score
threshold + NMS). Stage 2 (``Stage2``): feature map + proposals [N, 4] -> final boxes [M, 4],
scores [M], labels [M] (1..K; 0 is background) after class-aware NMS.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import torch
from torch import Tensor, nn

from lotus.detectors.ops import nms, roi_align

RPN_WEIGHTS = (1.0, 1.0, 1.0, 1.0)
HEAD_WEIGHTS = (10.0, 10.0, 5.0, 5.0)
CLAMP_LOG = math.log(1000.0 / 16)


@dataclass
class DetectorConfig:
    """Architecture and inference parameters. Widths are what pruning shrinks."""

    num_classes: int = 5
    image_size: int = 192
    widths: list[int] = field(default_factory=lambda: [24, 48, 48, 96, 96])
    strides: list[int] = field(default_factory=lambda: [2, 2, 1, 2, 1])
    rpn_dim: int = 96
    fc_dim: int = 128
    anchor_sizes: list[float] = field(default_factory=lambda: [16.0, 32.0, 64.0])
    anchor_ratios: list[float] = field(default_factory=lambda: [0.5, 1.0, 2.0])
    pre_nms_top_n: int = 600
    post_nms_top_n: int = 300
    rpn_nms_iou: float = 0.7
    rpn_score_thresh: float = 0.05
    roi_size: int = 7
    sampling_ratio: int = 2
    box_score_thresh: float = 0.05
    box_nms_iou: float = 0.5
    max_detections: int = 100

    @property
    def stride(self) -> int:
        return math.prod(self.strides)

    @property
    def feat_size(self) -> int:
        return self.image_size // self.stride

    @property
    def num_anchors(self) -> int:
        return len(self.anchor_sizes) * len(self.anchor_ratios)

    def to_dict(self) -> dict:
        return asdict(self)


def conv_bn(cin: int, cout: int, stride: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


def make_anchors(cfg: DetectorConfig) -> Tensor:
    """Anchors [H*W*A, 4] xyxy, ordered (y, x, anchor) to match the RPN head output layout."""
    base = []
    for size in cfg.anchor_sizes:
        for ratio in cfg.anchor_ratios:
            w, h = size / math.sqrt(ratio), size * math.sqrt(ratio)
            base.append([-w / 2, -h / 2, w / 2, h / 2])
    base_t = torch.tensor(base, dtype=torch.float32)
    c = (torch.arange(cfg.feat_size, dtype=torch.float32) + 0.5) * cfg.stride
    cy, cx = torch.meshgrid(c, c, indexing="ij")
    shifts = torch.stack([cx, cy, cx, cy], -1).reshape(-1, 1, 4)
    return (shifts + base_t[None]).reshape(-1, 4)


def decode(ref: Tensor, deltas: Tensor, weights: tuple[float, ...], size: float) -> Tensor:
    """Apply (dx, dy, dw, dh) ``deltas`` [N, 4] to ``ref`` boxes [N, 4]; clip to [0, size]."""
    w, h = ref[:, 2] - ref[:, 0], ref[:, 3] - ref[:, 1]
    cx, cy = ref[:, 0] + 0.5 * w, ref[:, 1] + 0.5 * h
    dx, dy = deltas[:, 0] / weights[0], deltas[:, 1] / weights[1]
    dw = (deltas[:, 2] / weights[2]).clamp(max=CLAMP_LOG)
    dh = (deltas[:, 3] / weights[3]).clamp(max=CLAMP_LOG)
    pcx, pcy, pw, ph = cx + dx * w, cy + dy * h, w * torch.exp(dw), h * torch.exp(dh)
    boxes = torch.stack([pcx - 0.5 * pw, pcy - 0.5 * ph, pcx + 0.5 * pw, pcy + 0.5 * ph], 1)
    return boxes.clamp(0.0, size)


def encode(ref: Tensor, gt: Tensor, weights: tuple[float, ...]) -> Tensor:
    """Regression targets [N, 4] that turn ``ref`` boxes into ``gt`` boxes (inverse of ``decode``)."""
    w, h = ref[:, 2] - ref[:, 0], ref[:, 3] - ref[:, 1]
    cx, cy = ref[:, 0] + 0.5 * w, ref[:, 1] + 0.5 * h
    gw, gh = gt[:, 2] - gt[:, 0], gt[:, 3] - gt[:, 1]
    gx, gy = gt[:, 0] + 0.5 * gw, gt[:, 1] + 0.5 * gh
    return torch.stack(
        [
            weights[0] * (gx - cx) / w,
            weights[1] * (gy - cy) / h,
            weights[2] * torch.log(gw / w),
            weights[3] * torch.log(gh / h),
        ],
        1,
    )


class Stage1(nn.Module):
    """Backbone + RPN + proposal selection. Input [1, 3, S, S] float in [0, 1]."""

    def __init__(self, cfg: DetectorConfig) -> None:
        super().__init__()
        self.cfg = cfg
        layers, cin = [], 3
        for cout, s in zip(cfg.widths, cfg.strides, strict=True):
            layers.append(conv_bn(cin, cout, s))
            cin = cout
        self.backbone = nn.Sequential(*layers)
        self.rpn_conv = nn.Sequential(nn.Conv2d(cin, cfg.rpn_dim, 3, 1, 1), nn.ReLU(inplace=True))
        self.rpn_cls = nn.Conv2d(cfg.rpn_dim, cfg.num_anchors, 1)
        self.rpn_reg = nn.Conv2d(cfg.rpn_dim, cfg.num_anchors * 4, 1)
        self.register_buffer("anchors", make_anchors(cfg), persistent=False)
        self.pre_nms_k = min(cfg.pre_nms_top_n, cfg.feat_size**2 * cfg.num_anchors)
        for m in (self.rpn_cls, self.rpn_reg):
            nn.init.normal_(m.weight, std=0.01)
            nn.init.zeros_(m.bias)

    def features(self, x: Tensor) -> Tensor:
        """Feature map [B, C, S/8, S/8] of images [B, 3, S, S]."""
        return self.backbone((x - 0.5) / 0.25)

    def rpn(self, feat: Tensor) -> tuple[Tensor, Tensor]:
        """Objectness logits [B, HWA] and deltas [B, HWA, 4]."""
        t = self.rpn_conv(feat)
        b = feat.shape[0]
        logits = self.rpn_cls(t).permute(0, 2, 3, 1).reshape(b, -1)
        deltas = self.rpn_reg(t).permute(0, 2, 3, 1).reshape(b, -1, 4)
        return logits, deltas

    def propose(self, logits: Tensor, deltas: Tensor, score_thresh: float) -> tuple[Tensor, Tensor]:
        """Proposals [P, 4] and scores [P] of one image from logits [HWA] and deltas [HWA, 4]."""
        cfg = self.cfg
        scores = torch.sigmoid(logits)
        top, idx = torch.topk(scores, self.pre_nms_k)
        boxes = decode(self.anchors[idx], deltas[idx], RPN_WEIGHTS, float(cfg.image_size))
        keep = nms(boxes, top, cfg.rpn_nms_iou, score_thresh, cfg.post_nms_top_n)
        return boxes[keep], top[keep]

    def forward(self, image: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        feat = self.features(image)
        logits, deltas = self.rpn(feat)
        proposals, scores = self.propose(logits[0], deltas[0], self.cfg.rpn_score_thresh)
        return feat, proposals, scores


class Stage2(nn.Module):
    """RoIAlign + box head + class-aware NMS for one image."""

    def __init__(self, cfg: DetectorConfig) -> None:
        super().__init__()
        self.cfg = cfg
        c = cfg.widths[-1]
        self.fc1 = nn.Linear(c * cfg.roi_size**2, cfg.fc_dim)
        self.fc2 = nn.Linear(cfg.fc_dim, cfg.fc_dim)
        self.cls = nn.Linear(cfg.fc_dim, cfg.num_classes + 1)
        self.reg = nn.Linear(cfg.fc_dim, 4)
        nn.init.normal_(self.cls.weight, std=0.01)
        nn.init.normal_(self.reg.weight, std=0.001)
        nn.init.zeros_(self.cls.bias)
        nn.init.zeros_(self.reg.bias)
        offsets = torch.arange(cfg.num_classes, dtype=torch.float32) * (cfg.image_size + 1.0)
        self.register_buffer("class_offsets", offsets, persistent=False)  # class-aware NMS, no Cast op

    def head(self, feat: Tensor, rois: Tensor) -> tuple[Tensor, Tensor]:
        """Class logits [N, K+1] and deltas [N, 4] of ``rois`` [N, 4] on ``feat`` [1, C, H, W]."""
        cfg = self.cfg
        x = roi_align(feat, rois, 1.0 / cfg.stride, cfg.roi_size, cfg.sampling_ratio)
        x = torch.relu(self.fc1(x.flatten(1)))
        x = torch.relu(self.fc2(x))
        return self.cls(x), self.reg(x)

    def forward(self, feat: Tensor, proposals: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        cfg = self.cfg
        logits, deltas = self.head(feat, proposals)
        boxes = decode(proposals, deltas, HEAD_WEIGHTS, float(cfg.image_size))
        probs = torch.softmax(logits, 1)[:, 1:]
        scores, labels = probs.max(1)
        offset = self.class_offsets[labels][:, None]
        keep = nms(boxes + offset, scores, cfg.box_nms_iou, cfg.box_score_thresh, cfg.max_detections)
        return boxes[keep], scores[keep], labels[keep] + 1


class Detector(nn.Module):
    """Both stages together; ``forward`` runs one image end to end (eager inference)."""

    def __init__(self, cfg: DetectorConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.stage1 = Stage1(cfg)
        self.stage2 = Stage2(cfg)

    def forward(self, image: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        feat, proposals, _ = self.stage1(image)
        return self.stage2(feat, proposals)

    def num_params(self) -> int:
        return sum(p.numel() for p in self.parameters())
