"""Training of FRCNN-lite on the synthetic shapes: RPN + box-head losses, resumable checkpoints."""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor

from lotus.detectors.dataset import ShapesDataset
from lotus.detectors.model import HEAD_WEIGHTS, RPN_WEIGHTS, Detector, DetectorConfig, encode

logger = logging.getLogger(__name__)

StepCallback = Callable[[int, int, dict[str, float]], None]


@dataclass
class TrainConfig:
    """Optimisation settings.

    :param steps: total optimiser steps
    :param batch_size: images per step
    :param lr: peak AdamW learning rate (cosine decay after ``warmup`` steps)
    :param weight_decay: AdamW weight decay
    :param warmup: linear warm-up steps
    :param checkpoint_every: save a checkpoint every this many steps (and at the end)
    :param seed: data and initialisation seed
    """

    steps: int = 3000
    batch_size: int = 8
    lr: float = 2e-3
    weight_decay: float = 1e-4
    warmup: int = 100
    checkpoint_every: int = 250
    seed: int = 0


def box_iou(a: Tensor, b: Tensor) -> Tensor:
    """IoU matrix [N, M] of boxes ``a`` [N, 4] and ``b`` [M, 4] (xyxy)."""
    lt = torch.maximum(a[:, None, :2], b[None, :, :2])
    rb = torch.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = (rb - lt).clamp(min=0).prod(2)
    area_a = (a[:, 2:] - a[:, :2]).prod(1)
    area_b = (b[:, 2:] - b[:, :2]).prod(1)
    return inter / (area_a[:, None] + area_b[None] - inter).clamp(min=1e-6)


def _sample(pos: Tensor, neg: Tensor, total: int, pos_fraction: float, gen: torch.Generator) -> tuple[Tensor, Tensor]:
    pos_idx = torch.nonzero(pos).flatten()
    neg_idx = torch.nonzero(neg).flatten()
    n_pos = min(pos_idx.numel(), int(total * pos_fraction))
    n_neg = min(neg_idx.numel(), total - n_pos)
    pos_idx = pos_idx[torch.randperm(pos_idx.numel(), generator=gen)[:n_pos]]
    neg_idx = neg_idx[torch.randperm(neg_idx.numel(), generator=gen)[:n_neg]]
    return pos_idx, neg_idx


def detection_loss(
    model: Detector, images: Tensor, targets: list[tuple[Tensor, Tensor]], gen: torch.Generator
) -> dict[str, Tensor]:
    """Faster R-CNN losses of a batch. ``images`` [B, 3, S, S] in [0, 1]; targets (boxes [M, 4], labels [M])."""
    s1, s2 = model.stage1, model.stage2
    feat = s1.features(images)
    logits, deltas = s1.rpn(feat)
    anchors = s1.anchors
    losses = {k: images.new_zeros(()) for k in ("rpn_cls", "rpn_reg", "cls", "reg")}
    for b, (gt, labels) in enumerate(targets):
        # RPN: anchors >= 0.6 IoU (or best per object) positive, < 0.3 negative
        iou = box_iou(anchors, gt)
        best, match = iou.max(1)
        pos = best >= 0.6
        pos[iou.argmax(0)] = True
        neg = (best < 0.3) & ~pos
        pi, ni = _sample(pos, neg, 256, 0.5, gen)
        idx = torch.cat([pi, ni])
        tgt = torch.cat([torch.ones(pi.numel()), torch.zeros(ni.numel())])
        losses["rpn_cls"] += F.binary_cross_entropy_with_logits(logits[b, idx], tgt)
        if pi.numel():
            t = encode(anchors[pi], gt[match[pi]], RPN_WEIGHTS)
            losses["rpn_reg"] += F.smooth_l1_loss(deltas[b, pi], t, beta=1 / 9, reduction="sum") / idx.numel()
        # proposals (no grad) + ground truth -> sampled RoIs for the box head
        with torch.no_grad():
            props, _ = s1.propose(logits[b].detach(), deltas[b].detach(), 0.0)
        rois = torch.cat([props, gt])
        iou = box_iou(rois, gt)
        best, match = iou.max(1)
        pi, ni = _sample(best >= 0.5, best < 0.5, 128, 0.25, gen)
        idx = torch.cat([pi, ni])
        cls_t = torch.cat([labels[match[pi]], torch.zeros(ni.numel(), dtype=torch.int64)])
        cls_logits, reg = s2.head(feat[b : b + 1], rois[idx])
        losses["cls"] += F.cross_entropy(cls_logits, cls_t)
        if pi.numel():
            t = encode(rois[pi], gt[match[pi]], HEAD_WEIGHTS)
            losses["reg"] += F.smooth_l1_loss(reg[: pi.numel()], t, beta=1.0, reduction="sum") / idx.numel()
    n = len(targets)
    return {k: v / n for k, v in losses.items()}


def make_batch(dataset: ShapesDataset, start: int, batch_size: int) -> tuple[Tensor, list[tuple[Tensor, Tensor]]]:
    """Images [B, 3, S, S] and targets of stream items ``start .. start+B-1``; random horizontal flips."""
    imgs, targets = [], []
    for i in range(start, start + batch_size):
        smp = dataset.generate(i)
        img, boxes = smp.image, smp.boxes.copy()
        if i % 2:
            img = img[:, ::-1]
            s = dataset.image_size
            boxes[:, [0, 2]] = s - boxes[:, [2, 0]]
        imgs.append(torch.from_numpy(img.copy()).permute(2, 0, 1).float() / 255.0)
        targets.append((torch.from_numpy(boxes), torch.from_numpy(smp.labels)))
    return torch.stack(imgs), targets


def lr_at(step: int, tc: TrainConfig) -> float:
    if step < tc.warmup:
        return tc.lr * (step + 1) / tc.warmup
    p = (step - tc.warmup) / max(1, tc.steps - tc.warmup)
    return tc.lr * (0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * min(1.0, p))))


def save_checkpoint(path: Path, model: Detector, opt: torch.optim.Optimizer, step: int, tc: TrainConfig) -> None:
    """Write model, optimiser and step atomically to ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    torch.save(
        {
            "model": model.state_dict(),
            "optimizer": opt.state_dict(),
            "step": step,
            "config": model.cfg.to_dict(),
            "train": vars(tc),
        },
        tmp,
    )
    tmp.replace(path)


def set_threads(n: int) -> None:
    """Torch intra-op threads for training, export and measurement."""
    torch.set_num_threads(n)


def load_detector(path: Path) -> Detector:
    """Model from a checkpoint written by ``save_checkpoint`` (eval mode)."""
    ckpt = torch.load(path, map_location="cpu", weights_only=False)
    model = Detector(DetectorConfig(**ckpt["config"]))
    model.load_state_dict(ckpt["model"])
    return model.eval()


def train(
    checkpoint: Path,
    tc: TrainConfig,
    cfg: DetectorConfig | None = None,
    resume: bool = True,
    model: Detector | None = None,
    on_step: StepCallback | None = None,
) -> Detector:
    """Train (or fine-tune ``model``) and save to ``checkpoint``; resumes from it when it exists.

    :param checkpoint: checkpoint path, written every ``tc.checkpoint_every`` steps
    :param tc: optimisation settings
    :param cfg: architecture for a fresh model (ignored when ``model`` or a checkpoint is given)
    :param resume: continue from ``checkpoint`` if present
    :param model: start from this model instead of a fresh one (fine-tuning a pruned model)
    :param on_step: called as ``on_step(step, total, losses)`` after each step
    """
    torch.manual_seed(tc.seed)
    ckpt = None
    if resume and checkpoint.exists():
        ckpt = torch.load(checkpoint, map_location="cpu", weights_only=False)
        model = Detector(DetectorConfig(**ckpt["config"]))
        model.load_state_dict(ckpt["model"])
    elif model is None:
        model = Detector(cfg or DetectorConfig())
    opt = torch.optim.AdamW(model.parameters(), lr=tc.lr, weight_decay=tc.weight_decay)
    start = 0
    if ckpt is not None:
        opt.load_state_dict(ckpt["optimizer"])
        start = int(ckpt["step"])
        logger.info("resuming %s at step %d", checkpoint, start)
    data = ShapesDataset("train", size=tc.steps * tc.batch_size, seed=tc.seed, image_size=model.cfg.image_size)
    model.train()
    for step in range(start, tc.steps):
        gen = torch.Generator().manual_seed(tc.seed * 1_000_003 + step)
        images, targets = make_batch(data, step * tc.batch_size, tc.batch_size)
        for group in opt.param_groups:
            group["lr"] = lr_at(step, tc)
        losses = detection_loss(model, images, targets, gen)
        total = sum(losses.values())
        opt.zero_grad(set_to_none=True)
        total.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 10.0)
        opt.step()
        done = step + 1
        if done % tc.checkpoint_every == 0 or done == tc.steps:
            save_checkpoint(checkpoint, model, opt, done, tc)
        if on_step is not None:
            on_step(done, tc.steps, {k: float(v.detach()) for k, v in losses.items()})
    if start >= tc.steps and not checkpoint.exists():
        save_checkpoint(checkpoint, model, opt, start, tc)
    return model.eval()
