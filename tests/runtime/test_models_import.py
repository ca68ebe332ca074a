"""Serving your own models: ``lotus models import`` of foreign ONNX graphs, then a real daemon serves them.

The foreign models are tiny torch modules exported here with their own tensor names. The
single-stage one scores the four image quadrants by mean brightness (so the right answer is known)
and labels each box with its quadrant; the two-stage one proposes the quadrants brightest first.
"""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import httpx
import numpy as np
import pytest
from typer.testing import CliRunner

torch = pytest.importorskip("torch")

from lotus.core.cli import build_app, main  # noqa: E402
from lotus.core.errors import ConfigError, ModelLoadError  # noqa: E402
from lotus.runtime.api import create_app  # noqa: E402
from lotus.runtime.config import load_settings  # noqa: E402
from lotus.runtime.models.manifest import MODELS_ROOT, ModelRepository, read_manifest  # noqa: E402
from lotus.runtime.models.two_stage import create_pipeline  # noqa: E402
from lotus.runtime.pipeline import decode_image  # noqa: E402
from lotus.runtime.testing import ServerThread, bright_square_png  # noqa: E402

SIZE = 64  # model input side, px
LABELS = ["top-left", "top-right", "bottom-left", "bottom-right"]
pytestmark = pytest.mark.timeout(120)


def _quads() -> torch.Tensor:
    h = SIZE // 2
    return torch.tensor([[0, 0, h, h], [h, 0, SIZE, h], [0, h, h, SIZE], [h, h, SIZE, SIZE]], dtype=torch.float32)


class Quadrants(torch.nn.Module):
    """conv (channel mean) + fixed head: boxes [4, 4] px, scores [4] = quadrant brightness, labels [4] = 0..3."""

    def __init__(self, extra_score: bool = False) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 1, 1, bias=False)
        with torch.no_grad():
            self.conv.weight.fill_(1 / 3)
        self.register_buffer("quads", _quads())
        self.register_buffer("ids", torch.arange(4))
        self.extra_score = extra_score

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        s = torch.nn.functional.avg_pool2d(self.conv(x), SIZE // 2).reshape(4)
        out = (self.quads + 0 * s[:, None], s, self.ids + (0 * s).long())
        return (*out, 1 - s) if self.extra_score else out


class Stage1(torch.nn.Module):
    """Feature map [1, 3, 16, 16] and the four quadrants as proposals, brightest first."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("quads", _quads())

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        s = torch.nn.functional.avg_pool2d(x.mean(1, keepdim=True), SIZE // 2).reshape(4)
        vals, idx = torch.sort(s, descending=True)
        return torch.nn.functional.avg_pool2d(x, 4), self.quads[idx], vals


class Stage2(torch.nn.Module):
    """Each proposal back as a box, its score its order (1, 1/2, 1/3, ...), label 1."""

    def forward(self, fmap: torch.Tensor, rois: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        rank = torch.cumsum(torch.ones_like(rois[:, 0]), 0)
        return rois + 0 * fmap.mean(), 1 / rank, (rank * 0 + 1).long()


def _export(module: torch.nn.Module, args: tuple, path: Path, inputs: list[str], outputs: list[str], dyn=None) -> Path:
    torch.onnx.export(module.eval(), args, str(path), input_names=inputs, output_names=outputs, dynamo=False,
                      opset_version=17, dynamic_axes=dyn)  # fmt: skip
    return path


@pytest.fixture(scope="module")
def onnx_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("onnx")
    x = torch.zeros(1, 3, SIZE, SIZE)
    names = ["det_boxes", "det_scores", "det_classes"]
    rois = {"rois_in": {0: "n"}, "final_boxes": {0: "n"}, "final_scores": {0: "n"}, "final_labels": {0: "n"}}
    (d / "labels.txt").write_text("\n".join(LABELS) + "\n")
    return {
        "single": _export(Quadrants(), (x,), d / "quadrants.onnx", ["input"], names),
        "ambiguous": _export(Quadrants(True), (x,), d / "ambiguous.onnx", ["input"], ["b", "out_a", "c", "out_b"]),
        "stage1": _export(Stage1(), (x,), d / "s1.onnx", ["img"], ["fmap", "rois", "roi_conf"]),
        "stage2": _export(Stage2(), (torch.zeros(1, 3, 16, 16), torch.zeros(3, 4)), d / "s2.onnx",
                          ["fmap_in", "rois_in"], ["final_boxes", "final_scores", "final_labels"], rois),
        "labels": d / "labels.txt",
    }  # fmt: skip


def _cli(*args: str):  # noqa: ANN202
    return CliRunner().invoke(build_app(), ["models", *args])


def _import(repo: Path, *args: str) -> None:
    res = _cli("import", *args, "--repository", str(repo), "--runs", "2")
    assert res.exit_code == 0, (res.output, res.exception)


@pytest.fixture(scope="module")
def repo(onnx_files: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("models")
    _import(root, str(onnx_files["single"]), "--name", "quads", "--kind", "onnx-detector", "--labels",
            str(onnx_files["labels"]), "--post", "nms_iou=0.5", "--post", "score_threshold=0.2")  # fmt: skip
    _import(root, str(onnx_files["stage1"]), str(onnx_files["stage2"]), "--name", "two", "--kind", "frcnn")
    return root


def test_import_maps_foreign_names_to_roles(repo: Path) -> None:
    m = read_manifest(repo / "quads" / "1" / "manifest.yaml")  # verifies the copied file's sha256
    assert m.kind == "onnx-detector" and m.version == "1" and m.class_names == LABELS
    st = m.stage("stage1")
    assert st.file == "model.onnx" and st.size_bytes == (repo / "quads" / "1" / "model.onnx").stat().st_size
    assert {t.name: t.role for t in st.inputs + st.outputs} == {
        "input": "image", "det_boxes": "boxes", "det_scores": "scores", "det_classes": "labels"}  # fmt: skip
    assert m.metrics.stage1_ms > 0 and m.workload.stage1.gpu_mcycles > 0 and m.workload.max_proposals == 1
    two = read_manifest(repo / "two" / "1" / "manifest.yaml")
    roles = {t.name: t.role for st in two.stages for t in st.inputs + st.outputs}
    assert roles == {"img": "image", "fmap": "features", "rois": "proposals", "roi_conf": "proposal_scores",
                     "fmap_in": "features", "rois_in": "proposals", "final_boxes": "boxes",
                     "final_scores": "scores", "final_labels": "labels"}  # fmt: skip
    assert set(two.metrics.stage2_ms) == {1, 2, 4} and two.workload.max_proposals == 4  # 4 = stage 1's fixed count
    assert two.workload.stage2_per_proposal.cpu_mcycles >= 0


def test_foreign_two_stage_model_runs(repo: Path) -> None:
    pipe = create_pipeline(read_manifest(repo / "two" / "1" / "manifest.yaml"), threads=1)
    assert pipe.two_stage
    dets = pipe(decode_image(bright_square_png(2, size=128)))
    assert [d.box for d in dets][0] == (0.0, 64.0, 64.0, 128.0) and dets[0].score == 1.0 and len(dets) == 4
    assert len(pipe(decode_image(bright_square_png(2)), max_proposals=2)) == 2


@pytest.fixture(scope="module")
def server(repo: Path, tmp_path_factory: pytest.TempPathFactory):  # noqa: ANN201
    settings = load_settings(None, {
        "board": {"backend": "sim", "state_file": str(tmp_path_factory.mktemp("state") / "state.json")},
        "models": {"repository": str(repo), "load": [{"name": "quads"}, {"name": "two"}], "threads": 1,
                   "warmup_frames": 1},
        "governor": {"policy": "drl"},
    })  # fmt: skip
    with ServerThread(create_app(settings)) as url:
        yield url


@pytest.mark.parametrize("quadrant", [1, 3])
def test_served_over_v1_detect_with_one_decision(server: str, quadrant: int) -> None:
    r = httpx.post(f"{server}/v1/detect?model=quads", content=bright_square_png(quadrant, size=128),
                   headers={"Content-Type": "image/png"}, timeout=30)  # fmt: skip
    assert r.status_code == 200, r.text
    doc = r.json()
    h = 64
    x0, y0 = (quadrant % 2) * h, (quadrant // 2) * h
    assert [d["label"] for d in doc["detections"]] == [LABELS[quadrant]]  # score_threshold drops the dark ones
    assert doc["detections"][0]["box"] == [x0, y0, x0 + h, y0 + h] and doc["detections"][0]["class_id"] == quadrant
    gov = doc["governor"]
    assert gov["action_stage2"] is None and isinstance(gov["action_next"], int)  # one decision, before the run
    assert doc["timings_ms"]["decision_stage2"] == 0 and doc["timings_ms"]["decision_next"] > 0


def test_two_stage_import_keeps_the_in_frame_decision(server: str) -> None:
    r = httpx.post(f"{server}/v1/detect?model=two", content=bright_square_png(0, size=128),
                   headers={"Content-Type": "image/png"}, timeout=30)  # fmt: skip
    doc = r.json()
    assert r.status_code == 200 and doc["detections"][0]["box"] == [0, 0, 64, 64] and doc["num_proposals"] == 4
    assert isinstance(doc["governor"]["action_stage2"], int) and isinstance(doc["governor"]["action_next"], int)


def test_served_over_tritonclient(server: str) -> None:
    import tritonclient.http as triton

    client = triton.InferenceServerClient(url=server.removeprefix("http://"))
    assert client.is_model_ready("quads")
    image = decode_image(bright_square_png(2, size=128))
    inp = triton.InferInput("image", list(image.shape), "UINT8")
    inp.set_data_from_numpy(image)
    wanted = [triton.InferRequestedOutput(n) for n in ("boxes", "scores", "labels")]
    res = client.infer("quads", [inp], outputs=wanted)
    np.testing.assert_array_equal(res.as_numpy("boxes"), [[0, 64, 64, 128]])
    assert res.as_numpy("labels").tolist() == [b"bottom-left"] and res.as_numpy("scores")[0] > 0.5


def test_refuses_to_write_into_the_package(onnx_files: dict[str, Path]) -> None:
    import lotus.runtime

    before = sorted(p.name for p in MODELS_ROOT.iterdir())
    for target in (MODELS_ROOT, MODELS_ROOT / "sub", Path(lotus.runtime.__file__).parent / "models"):
        res = _cli("import", str(onnx_files["single"]), "--name", "x", "--kind", "onnx-detector", "-r", str(target))
        assert isinstance(res.exception, ConfigError) and "read-only" in str(res.exception), res.output
    assert sorted(p.name for p in MODELS_ROOT.iterdir()) == before and not (MODELS_ROOT / "sub").exists()


def test_ambiguous_mapping_names_the_map_option(onnx_files: dict[str, Path], tmp_path: Path) -> None:
    args = ["import", str(onnx_files["ambiguous"]), "--name", "amb", "--kind", "onnx-detector", "-r", str(tmp_path)]
    res = _cli(*args)
    assert isinstance(res.exception, ModelLoadError)
    assert "cannot tell which output is 'scores'" in str(res.exception) and "--map scores=out_a" in str(res.exception)
    assert not (tmp_path / "amb").exists()
    res = _cli(*args, "--map", "scores=out_b", "--runs", "1")
    assert res.exit_code == 0, res.output
    out = {t.name: t.role for t in read_manifest(tmp_path / "amb" / "1" / "manifest.yaml").stage("stage1").outputs}
    assert out == {"b": "boxes", "out_a": None, "c": "labels", "out_b": "scores"}


def test_bad_arguments_are_one_line(onnx_files: dict[str, Path], tmp_path: Path, capsys) -> None:  # noqa: ANN001
    cases = [
        (["quadrants.onnx"], "does not exist"),
        ([str(onnx_files["single"]), "--kind", "frcnn"], "takes two ONNX files"),
        ([str(onnx_files["single"]), "--map", "scores"], "expected ROLE=TENSOR"),
        ([str(onnx_files["single"]), "--map", "scores=nope"], "has no output 'nope'"),
        ([str(onnx_files["labels"])], "cannot load ONNX file"),
    ]
    for extra, words in cases:
        args = ["models", "import", *extra, "--name", "m", "-r", str(tmp_path)]
        if "--kind" not in extra:
            args += ["--kind", "onnx-detector"]
        with pytest.raises(SystemExit) as exit_info:
            main(args)
        err = capsys.readouterr().err
        assert exit_info.value.code == 2 and err.startswith("error: ") and words in err, err
        assert err.count("\n") == 1 and "Traceback" not in err


def _digest(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


def test_verify_catches_a_tampered_file(repo: Path, tmp_path: Path) -> None:
    copy = tmp_path / "repo"
    shutil.copytree(repo, copy)
    res = _cli("verify", "-r", str(copy), "--no-shipped")
    assert res.exit_code == 0 and res.output.count("ok ") == 2, res.output
    f = copy / "quads" / "1" / "model.onnx"
    data = bytearray(f.read_bytes())
    data[-8] ^= 0xFF
    f.write_bytes(bytes(data))
    res = _cli("verify", "quads", "-r", str(copy))
    assert isinstance(res.exception, ModelLoadError) and "1 of 1 model versions failed" in str(res.exception)
    assert "model.onnx is corrupt" in res.output
    assert _digest(repo / "quads" / "1" / "model.onnx") != _digest(f)  # the original is untouched


def test_versions_highest_served_unless_pinned(onnx_files: dict[str, Path], tmp_path: Path) -> None:
    shutil.copytree(MODELS_ROOT / "frcnn-lite", tmp_path / "quads")  # a flat folder: version 1
    for _ in range(2):
        _import(tmp_path, str(onnx_files["single"]), "--name", "quads", "--kind", "onnx-detector")
    r = ModelRepository(tmp_path)
    assert list(r.versions("quads")) == [1, 2, 3]
    assert r.find("quads") == tmp_path / "quads" / "3" / "manifest.yaml" and r.load("quads").version == "3"
    assert r.find("quads", "1") == tmp_path / "quads" / "manifest.yaml" and r.load("quads", version=1).kind == "frcnn"
    with pytest.raises(ModelLoadError, match=r"no version 7 .* \(versions: 1, 2, 3\)"):
        r.find("quads", 7)
    assert r.models()["quads"] == tmp_path / "quads" / "3" / "manifest.yaml"
    res = _cli("list", "-r", str(tmp_path), "--json")
    row = next(m for m in __import__("json").loads(res.output)["models"] if m["name"] == "quads")
    assert row["served"] == "3" and row["versions"] == ["1", "2", "3"] and row["kind"] == "onnx-detector"
    res = _cli("show", "quads", "-r", str(tmp_path), "--version", "2")
    assert res.exit_code == 0 and "det_scores" in res.output and "role scores" in res.output
    with pytest.raises(ConfigError, match="already exists"):
        from lotus.runtime.models.importing import import_model

        import_model([onnx_files["single"]], "quads", "onnx-detector", tmp_path, version=2)
    cfg = load_settings(None, {"models": {"repository": str(tmp_path), "load": [{"name": "quads"}], "threads": 1}})
    from lotus.runtime.pipeline import load_models

    model = load_models(cfg.models)["quads"]
    assert model.version == "3" and model.io_spec()["stages"]["stage1"]["outputs"][1] == {
        "name": "det_scores", "datatype": "FP32", "shape": [4], "role": "scores"}  # fmt: skip
