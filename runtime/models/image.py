"""The image input of a detector graph, declared by the manifest: size, layout, dtype, channel order, normalisation.

``preprocess`` keys (all optional, see ``docs/models.md``): ``input_size`` (side, or ``[H, W]``;
default: the image tensor's fixed dims), ``layout`` (``NCHW`` / ``NHWC``; default: guessed from
the tensor's shape), ``channel_order`` (``RGB`` / ``BGR``), ``scale`` (multiplier applied to the
0..255 pixels; default 1/255 for float inputs), ``mean`` and ``std`` (scalar or one per channel,
applied after ``scale``). A ``uint8`` input gets the raw resized pixels.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
from PIL import Image

from lotus.core.errors import ModelLoadError
from lotus.runtime.models.base import check_image, param
from lotus.runtime.models.manifest import ModelManifest, Param, TensorSpec

NP_DTYPES = {"float32": np.float32, "float16": np.float16, "uint8": np.uint8, "int32": np.int32, "int64": np.int64}


def guess_layout(shape: list[int | str]) -> Literal["NCHW", "NHWC"]:
    """``NHWC`` when the last dim is 3 (or 1) and the second is not, else ``NCHW``."""
    if len(shape) == 4 and shape[-1] in (1, 3) and shape[1] not in (1, 3):
        return "NHWC"
    return "NCHW"


def _channels(manifest: ModelManifest, key: str, default: float) -> np.ndarray:
    """``preprocess[key]`` as a float32 [3] array (a scalar is broadcast)."""
    value: Param | None = param(manifest, key, default=default)
    values = value if isinstance(value, list) else [value] * 3
    if len(values) != 3 or any(isinstance(v, bool) or not isinstance(v, int | float) for v in values):
        raise ModelLoadError(f"model {manifest.name!r}: preprocess.{key} must be a number or 3 numbers, got {value!r}")
    return np.asarray(values, dtype=np.float32)


@dataclass(frozen=True)
class ImageInput:
    """How an ``[H, W, 3]`` uint8 RGB frame becomes the graph's ``image`` tensor."""

    name: str
    height: int
    width: int
    layout: Literal["NCHW", "NHWC"]
    dtype: type
    bgr: bool
    divisor: float  # pixels are divided by this (1 / scale)
    mean: np.ndarray  # [3], after scaling
    std: np.ndarray  # [3]

    @classmethod
    def from_manifest(cls, manifest: ModelManifest, tensor: TensorSpec) -> ImageInput:
        """The input ``tensor`` (role ``image``) as ``manifest.preprocess`` describes it."""
        name = manifest.name
        size = param(manifest, "input_size")
        if size is None:
            dims = tensor.shape[2:] if guess_layout(tensor.shape) == "NCHW" else tensor.shape[1:3]
            if len(dims) != 2 or not all(isinstance(d, int) and d > 0 for d in dims):
                raise ModelLoadError(
                    f"model {name!r}: input {tensor.name!r} has dynamic size {tensor.shape}: set preprocess.input_size"
                )
            h, w = int(dims[0]), int(dims[1])
        elif isinstance(size, list) and len(size) == 2 and all(isinstance(v, int) and v > 0 for v in size):
            h, w = int(size[0]), int(size[1])
        elif isinstance(size, int) and not isinstance(size, bool) and size > 0:
            h = w = size
        else:
            raise ModelLoadError(f"model {name!r}: preprocess.input_size must be a side or [H, W], got {size!r}")
        layout = param(manifest, "layout", default=guess_layout(tensor.shape))
        order = param(manifest, "channel_order", default="RGB")
        if layout not in ("NCHW", "NHWC") or order not in ("RGB", "BGR"):
            raise ModelLoadError(f"model {name!r}: layout must be NCHW/NHWC and channel_order RGB/BGR")
        dtype = NP_DTYPES[tensor.dtype]
        is_float = tensor.dtype in ("float32", "float16")
        scale = param(manifest, "scale", default=1 / 255 if is_float else 1.0)
        if isinstance(scale, bool) or not isinstance(scale, int | float) or scale <= 0:
            raise ModelLoadError(f"model {name!r}: preprocess.scale must be a positive number, got {scale!r}")
        mean, std = _channels(manifest, "mean", 0.0), _channels(manifest, "std", 1.0)
        if np.any(std <= 0):
            raise ModelLoadError(f"model {name!r}: preprocess.std must be positive")
        if not is_float and (scale != 1 or np.any(mean != 0) or np.any(std != 1)):
            raise ModelLoadError(f"model {name!r}: a {tensor.dtype} input takes raw pixels: drop scale/mean/std")
        return cls(tensor.name, h, w, layout, dtype, order == "BGR", 1.0 / float(scale), mean, std)  # type: ignore[arg-type]

    def __call__(self, image: np.ndarray) -> tuple[np.ndarray, tuple[float, float]]:
        """``[1, C, H, W]`` or ``[1, H, W, C]`` input and the (x, y) scale original/model px."""
        check_image(image)
        h, w = image.shape[:2]
        if (h, w) != (self.height, self.width):
            image = np.asarray(Image.fromarray(image).resize((self.width, self.height), Image.Resampling.BILINEAR))
        if self.bgr:
            image = image[:, :, ::-1]
        if self.dtype is np.uint8:
            x = image
        else:
            x = image.astype(np.float32)
            if self.divisor != 1:
                x = x / self.divisor
            if np.any(self.mean != 0) or np.any(self.std != 1):
                x = (x - self.mean) / self.std
        if self.layout == "NCHW":
            x = x.transpose(2, 0, 1)
        return np.ascontiguousarray(x[None].astype(self.dtype, copy=False)), (w / self.width, h / self.height)
