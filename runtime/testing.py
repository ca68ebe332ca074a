"""A tiny synthetic two-stage detector for the daemon's tests (not a shipped model).

``write_quadrant_model(dir)`` writes ``<dir>/quadrants/manifest.yaml`` plus two ONNX graphs with
the ``frcnn`` interface of :mod:`lotus.runtime.models.two_stage` (so ``dir`` is a model repository
for ``models.repository``): stage 1 scores the four image
quadrants by mean brightness and proposes them brightest first; stage 2 returns those boxes with
the same scores, label ``bright``. So on an image with one bright square the top detection is its
quadrant: correct detections are known in advance. ``work`` adds MatMuls to slow stage 1 down
(queue-full tests). Needs the ``onnx`` package (the ``train`` extra), imported lazily.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from lotus.core.files import sha256_file

SIZE = 64


def _save(model, path: Path) -> None:  # noqa: ANN001
    import onnx

    onnx.checker.check_model(model)
    onnx.save(model, str(path))


def _quad_scores(helper, nodes: list, src: str, kernel: int, prefix: str) -> str:  # noqa: ANN001
    nodes.append(
        helper.make_node(
            "AveragePool", [src], [f"{prefix}_pool"], kernel_shape=[kernel, kernel], strides=[kernel, kernel]
        )
    )
    nodes.append(helper.make_node("ReduceMean", [f"{prefix}_pool"], [f"{prefix}_mean"], axes=[1], keepdims=0))
    nodes.append(helper.make_node("Reshape", [f"{prefix}_mean", "shape4"], [f"{prefix}_flat"]))
    nodes.append(helper.make_node("TopK", [f"{prefix}_flat", "k4"], [f"{prefix}_val", f"{prefix}_idx"]))
    return prefix


def write_quadrant_model(directory: Path, work: int = 0, name: str = "quadrants") -> Path:
    """Write the model folder under ``directory``; returns ``directory`` (the repository root)."""
    from onnx import TensorProto, helper, numpy_helper

    folder = Path(directory) / name
    folder.mkdir(parents=True, exist_ok=True)
    h = SIZE // 2
    boxes = np.array([[0, 0, h, h], [h, 0, SIZE, h], [0, h, h, SIZE], [h, h, SIZE, SIZE]], dtype=np.float32)
    consts = [
        numpy_helper.from_array(np.array([4], dtype=np.int64), "shape4"),
        numpy_helper.from_array(np.array([4], dtype=np.int64), "k4"),
    ]
    # stage 1
    nodes: list = []
    init1 = [*consts, numpy_helper.from_array(boxes, "quad_boxes")]
    src = "image"
    if work:  # MatMuls on a 384x384 matrix that depends on the input (so nothing is constant-folded)
        big = np.random.default_rng(0).standard_normal((384, 384)).astype(np.float32) / 384
        init1 += [numpy_helper.from_array(big, "big"), numpy_helper.from_array(np.array(0.0, dtype=np.float32), "zero")]
        nodes.append(helper.make_node("ReduceMean", ["image"], ["img_mean"], keepdims=0))
        nodes.append(helper.make_node("Mul", ["img_mean", "zero"], ["img_zero"]))
        nodes.append(helper.make_node("Add", ["big", "img_zero"], ["mm_in"]))
        prev = "mm_in"
        for i in range(work):
            nodes.append(helper.make_node("MatMul", [prev, "big"], [f"mm{i}"]))
            prev = f"mm{i}"
        nodes.append(helper.make_node("ReduceMean", [prev], ["mm_mean"], keepdims=0))
        nodes.append(helper.make_node("Mul", ["mm_mean", "zero"], ["mm_zero"]))
        nodes.append(helper.make_node("Add", ["image", "mm_zero"], ["image_w"]))
        src = "image_w"
    nodes.append(helper.make_node("AveragePool", [src], ["features"], kernel_shape=[4, 4], strides=[4, 4]))
    _quad_scores(helper, nodes, src, h, "q")
    nodes.append(helper.make_node("Gather", ["quad_boxes", "q_idx"], ["proposals"], axis=0))
    nodes.append(helper.make_node("Identity", ["q_val"], ["scores"]))
    g1 = helper.make_graph(
        nodes, "stage1",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, 3, SIZE, SIZE])],
        [helper.make_tensor_value_info("features", TensorProto.FLOAT, [1, 3, SIZE // 4, SIZE // 4]),
         helper.make_tensor_value_info("proposals", TensorProto.FLOAT, [4, 4]),
         helper.make_tensor_value_info("scores", TensorProto.FLOAT, [4])],
        init1,
    )  # fmt: skip
    # stage 2
    nodes2: list = []
    _quad_scores(helper, nodes2, "features", SIZE // 8, "f")
    nodes2 += [
        helper.make_node("Shape", ["proposals"], ["pshape"]),
        helper.make_node("Slice", ["pshape", "zero1", "one1"], ["n"]),
        helper.make_node("Slice", ["f_val", "zero1", "n"], ["scores"]),
        helper.make_node("Identity", ["proposals"], ["boxes"]),
        helper.make_node(
            "ConstantOfShape", ["n"], ["labels"], value=helper.make_tensor("v", TensorProto.INT64, [1], [1])
        ),
    ]
    init2 = [*consts, numpy_helper.from_array(np.array([0], dtype=np.int64), "zero1"),
             numpy_helper.from_array(np.array([1], dtype=np.int64), "one1")]  # fmt: skip
    g2 = helper.make_graph(
        nodes2, "stage2",
        [helper.make_tensor_value_info("features", TensorProto.FLOAT, [1, 3, SIZE // 4, SIZE // 4]),
         helper.make_tensor_value_info("proposals", TensorProto.FLOAT, ["n", 4])],
        [helper.make_tensor_value_info("boxes", TensorProto.FLOAT, ["n", 4]),
         helper.make_tensor_value_info("scores", TensorProto.FLOAT, ["n"]),
         helper.make_tensor_value_info("labels", TensorProto.INT64, ["n"])],
        init2,
    )  # fmt: skip
    for graph, fname in ((g1, "stage1.onnx"), (g2, "stage2.onnx")):
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
        model.ir_version = 8
        _save(model, folder / fname)
    stage_io: dict[str, tuple[list[Any], list[Any]]] = {
        "stage1": ([("image", [1, 3, SIZE, SIZE])], [("features", [1, 3, 16, 16]), ("proposals", [4, 4]),
                                                     ("scores", [4])]),
        "stage2": ([("features", [1, 3, 16, 16]), ("proposals", ["n", 4])],
                   [("boxes", ["n", 4]), ("scores", ["n"]), ("labels", ["n"])]),
    }  # fmt: skip

    def spec(items: list) -> list[dict]:
        return [{"name": n, "shape": s, "dtype": "int64" if n == "labels" else "float32"} for n, s in items]

    cost = {"cpu_mcycles": 1.0, "gpu_mcycles": 1.0, "mem_ms": 0.1}
    manifest = {
        "name": name,
        "version": "0.0.1-test",
        "kind": "frcnn",
        "description": "synthetic quadrant-brightness detector for tests",
        "stages": [
            {"name": st, "role": st, "file": f"{st}.onnx", "sha256": sha256_file(folder / f"{st}.onnx"),
             "size_bytes": (folder / f"{st}.onnx").stat().st_size, "inputs": spec(stage_io[st][0]),
             "outputs": spec(stage_io[st][1])}
            for st in ("stage1", "stage2")
        ],
        "preprocess": {"input_size": SIZE},
        "class_names": ["bright"],
        "metrics": {"stage1_ms": 0.1, "stage2_ms": {4: 0.1}, "threads": 1, "device": "cpu"},
        "workload": {
            "name": name, "stage1": cost, "stage2_fixed": cost, "stage2_per_proposal": cost, "jitter_sigma": 0.0,
            "max_proposals": 4, "mean_proposals": 4, "default_fps": 30, "default_deadline_ms": 40,
        },
    }  # fmt: skip
    (folder / "manifest.yaml").write_text(yaml.safe_dump(manifest, sort_keys=False))
    return Path(directory)


def bright_square_png(quadrant: int = 0, size: int = 128) -> bytes:
    """A dark PNG with one bright square inside quadrant ``quadrant`` (0 TL, 1 TR, 2 BL, 3 BR)."""
    import io

    from PIL import Image, ImageDraw

    img = Image.new("RGB", (size, size), (10, 10, 10))
    h = size // 2
    x0, y0 = (quadrant % 2) * h, (quadrant // 2) * h
    ImageDraw.Draw(img).rectangle([x0 + 4, y0 + 4, x0 + h - 5, y0 + h - 5], fill=(250, 250, 250))
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def write_frame_folder(directory: Path, n: int = 4) -> Path:
    """``n`` PNG frames ``000.png``, ``001.png``, ... (:func:`bright_square_png` of quadrants 0..3) in ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        (directory / f"{i:03d}.png").write_bytes(bright_square_png(i % 4))
    return directory


class ServerThread:
    """A real uvicorn server for an app on a free 127.0.0.1 port, in a thread (tests).

    ``with ServerThread(app) as url:`` waits until /readyz says ready (or start-up failed), and
    on exit asks uvicorn to stop and joins the thread (the lifespan restores the clocks).
    """

    def __init__(self, app, ready_timeout_s: float = 60.0, ws_max_size: int = 16 * 1024 * 1024) -> None:  # noqa: ANN001
        import uvicorn

        from lotus.runtime.cli.serve import _free_port

        self.app = app
        self.port = _free_port("127.0.0.1")
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, lifespan="on", log_level="warning",
                                ws_max_size=ws_max_size, timeout_graceful_shutdown=5)  # fmt: skip
        self.server = uvicorn.Server(config)
        self.ready_timeout_s = ready_timeout_s
        self.thread: threading.Thread | None = None

    def __enter__(self) -> str:
        import time

        import httpx

        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + self.ready_timeout_s
        while time.monotonic() < deadline:
            if self.app.state.startup_error is not None:
                self.__exit__()
                raise RuntimeError(f"server start-up failed: {self.app.state.startup_error}")
            try:
                if httpx.get(self.url + "/readyz", timeout=2).status_code == 200:
                    return self.url
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        self.__exit__()
        raise RuntimeError("server did not become ready")

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        if self.thread is not None:
            self.thread.join(timeout=30)
