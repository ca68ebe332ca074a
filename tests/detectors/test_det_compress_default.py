"""A default ``lotus compress`` run writes only under its work directory: never the package or the git tree."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
from pathlib import Path

import pytest
from typer.testing import CliRunner

pytest.importorskip("torch")

from lotus.core.cli import build_app  # noqa: E402
from lotus.runtime.models.manifest import MODELS_ROOT, ModelRepository, load_manifest  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parents[2]
SMALL = ["--finetune-steps", "1", "--val-images", "4", "--calib-images", "2", "--repeats", "1"]


def _tree_state() -> set[str]:
    """``git status --porcelain`` lines of the checkout (a listing with sizes and mtimes without git)."""
    if shutil.which("git") is None or not (REPO_ROOT / ".git").exists():
        skip = {".git", "__pycache__", ".pytest_cache", ".ruff_cache", ".mypy_cache"}
        return {
            f"{p.relative_to(REPO_ROOT)} {p.stat().st_size} {p.stat().st_mtime_ns}"
            for p in REPO_ROOT.rglob("*")
            if p.is_file() and not skip & set(p.relative_to(REPO_ROOT).parts)
        }
    done = subprocess.run(
        ["git", "status", "--porcelain", "--untracked-files=all"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return set(done.stdout.splitlines())


def _digests(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest() for p in folder.rglob("*") if p.is_file()
    }


@pytest.mark.slow
def test_default_compress_leaves_package_and_git_tree_alone(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    shipped_before = _digests(MODELS_ROOT)
    status_before = _tree_state()
    monkeypatch.chdir(tmp_path)  # the defaults are relative: runs/compress under the working directory

    res = CliRunner().invoke(build_app(), ["compress", *SMALL, "--json"])

    assert res.exit_code == 0, res.output
    assert _tree_state() == status_before  # nothing new or changed in the source tree
    assert _digests(MODELS_ROOT) == shipped_before  # the shipped models are untouched
    work = tmp_path / "runs" / "compress"
    assert (work / "report.json").is_file() and (work / "pruned-int8" / "stage1.onnx").is_file()
    # the model is a servable repository entry: `lotus serve --model-repository runs/compress/models`
    repo = ModelRepository(work / "models")
    path = repo.find("frcnn-lite")
    assert path == work / "models" / "frcnn-lite" / "manifest.yaml" and not repo.is_shipped(path)
    m = load_manifest(path)  # verifies both ONNX files against their sha256
    assert m.name == "frcnn-lite" and m.base_dir == (work / "models" / "frcnn-lite").resolve()
    assert sorted(p.name for p in m.base_dir.iterdir()) == ["manifest.yaml", "stage1.onnx", "stage2.onnx"]
