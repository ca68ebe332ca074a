"""Post-training quantization of the exported stages with onnxruntime.quantization, and FP16.

Static QDQ INT8 is calibrated on real synthetic images (the ``calib`` split, disjoint from
train/val); stage 2 is calibrated on the features and proposals stage 1 produces for them.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import onnx
from onnxruntime.quantization import (
    CalibrationDataReader,
    QuantFormat,
    QuantType,
    quantize_dynamic,
    quantize_static,
)

from lotus.detectors.dataset import ShapesDataset

logger = logging.getLogger(__name__)

QUANT_OPS = ["Conv", "Gemm", "MatMul"]
FP16_BLOCK = ["NonMaxSuppression", "RoiAlign", "TopK"]


class _NoPreprocessHint(logging.Filter):
    """Drop onnxruntime's 'consider pre-processing' hint (quant_pre_process is not needed here)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "pre-processing" not in record.getMessage()


@contextlib.contextmanager
def _quiet_hint() -> Iterator[None]:
    root, filt = logging.getLogger(), _NoPreprocessHint()
    root.addFilter(filt)
    try:
        yield
    finally:
        root.removeFilter(filt)


class _ListReader(CalibrationDataReader):
    def __init__(self, feeds: list[dict[str, np.ndarray]]) -> None:
        self._it = iter(feeds)

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self._it, None)


def calibration_feeds(
    stage1: Path, image_size: int, n_images: int = 64, seed: int = 0, max_proposals: int = 100
) -> tuple[list[dict[str, np.ndarray]], list[dict[str, np.ndarray]]]:
    """Stage-1 feeds (images of the ``calib`` split) and stage-2 feeds (their fp32 features + proposals)."""
    from lotus.runtime.models.two_stage import make_session

    sess = make_session(stage1, threads=1)
    data = ShapesDataset("calib", n_images, seed=seed, image_size=image_size)
    f1, f2 = [], []
    for i in range(n_images):
        x = np.ascontiguousarray((data[i].image.astype(np.float32) / 255.0).transpose(2, 0, 1)[None])
        f1.append({"image": x})
        feat, props, _ = sess.run(None, {"image": x})
        if len(props):
            f2.append({"features": feat, "proposals": props[:max_proposals]})
    return f1, f2


def quantize_int8_static(src: Path, dst: Path, feeds: list[dict[str, np.ndarray]], per_channel: bool = False) -> Path:
    """INT8 static QDQ (uint8 activations, int8 weights) of Conv/Gemm/MatMul, MinMax-calibrated on ``feeds``."""
    with _quiet_hint():
        quantize_static(
            str(src),
            str(dst),
            _ListReader(feeds),
            quant_format=QuantFormat.QDQ,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            per_channel=per_channel,
            op_types_to_quantize=QUANT_OPS,
        )
    return dst


def quantize_int8_dynamic(src: Path, dst: Path) -> Path:
    """Dynamic INT8 (weights only, activations quantized at run time) — slower convs on CPU, not shipped."""
    with _quiet_hint():
        quantize_dynamic(str(src), str(dst), weight_type=QuantType.QInt8, op_types_to_quantize=QUANT_OPS)
    return dst


def _split_consumed_outputs(model: onnx.ModelProto) -> onnx.ModelProto:
    """Give graph outputs that other nodes also read (stage 1 ``features``) their own Identity node.

    onnxconverter-common otherwise mixes float and float16 on such tensors.
    """
    g = model.graph
    del g.value_info[:]
    outputs = {o.name for o in g.output}
    extra = []
    for node in list(g.node):
        for i, name in enumerate(node.output):
            if name in outputs:
                node.output[i] = f"{name}_pre"
                for other in g.node:
                    for j, x in enumerate(other.input):
                        if x == name:
                            other.input[j] = f"{name}_pre"
                extra.append(onnx.helper.make_node("Identity", [f"{name}_pre"], [name]))
    g.node.extend(extra)
    return model


def convert_fp16(src: Path, dst: Path) -> Path:
    """FP16 weights/compute for GPUs; float32 I/O, and NMS/RoiAlign/TopK kept in float32."""
    from onnxconverter_common import float16

    model = _split_consumed_outputs(onnx.load(str(src)))
    half = float16.convert_float_to_float16(model, keep_io_types=True, op_block_list=FP16_BLOCK)
    onnx.save(half, str(dst))
    return dst
