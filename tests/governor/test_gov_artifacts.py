"""Policy artifacts (ONNX + metadata JSON): every load error is a PolicyError naming the file."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from lotus.core.cli import build_app
from lotus.core.errors import PolicyError
from lotus.envs.core import Resolved
from lotus.envs.scenario import Scenario
from lotus.governor.artifacts import load_artifact, resolve_artifact, sha256_file
from lotus.governor.onnx_policy import OnnxPolicy
from lotus.governor.registry import build_policy
from lotus.governor.shield import Shield

app = build_app()


@pytest.fixture
def artifact(trained, tmp_path: Path) -> Path:  # noqa: ANN001
    """A private copy of the trained ztt artifact: its metadata JSON path."""
    src, _ = trained["ztt"]
    out = tmp_path / "policy"
    out.mkdir()
    for name in ("ztt.json", "ztt.onnx"):
        shutil.copy(src / name, out / name)
    return out / "ztt.json"


def _edit(path: Path, change: Callable[[dict], None]) -> None:
    meta = json.loads(path.read_text())
    change(meta)
    path.write_text(json.dumps(meta))


def _error(path: Path, expect=None) -> str:  # noqa: ANN001
    with pytest.raises(PolicyError) as exc:
        load_artifact(path, expect)
    return str(exc.value)


def test_valid_artifact_loads(artifact: Path, actions) -> None:  # noqa: ANN001
    art = load_artifact(artifact, actions)
    assert art.family == "ztt" and art.actions == actions
    assert art.onnx_path == artifact.with_suffix(".onnx") and art.json_path == artifact
    assert load_artifact(artifact.with_suffix(".onnx")).json_path == artifact  # an .onnx path finds its JSON


def test_resolve_artifact() -> None:
    from lotus.governor.artifacts import SHIPPED_DIR

    assert resolve_artifact("drl") == SHIPPED_DIR / "drl.json"
    assert resolve_artifact("x/y.onnx") == Path("x/y.json")
    assert resolve_artifact(Path("a.json")) == Path("a.json")


def test_missing_json(tmp_path: Path) -> None:
    msg = _error(tmp_path / "nope.json")
    assert "nope.json" in msg and "does not exist" in msg


def test_missing_shipped_policy_names_the_file() -> None:
    msg = _error("no-such-policy")
    assert "no-such-policy.json" in msg and "does not exist" in msg


@pytest.mark.parametrize("text", ["{not json", "", "\x00\x01"])
def test_unreadable_json(artifact: Path, text: str) -> None:
    artifact.write_text(text)
    msg = _error(artifact)
    assert str(artifact) in msg and "unreadable" in msg


@pytest.mark.parametrize("text", ["[1, 2]", '"drl"', "42", "null"])
def test_json_not_an_object(artifact: Path, text: str) -> None:
    artifact.write_text(text)
    msg = _error(artifact)
    assert str(artifact) in msg and "JSON object" in msg


@pytest.mark.parametrize("key", ["schema_version", "policy", "action_table", "action_map", "onnx_file", "onnx_sha256"])
def test_missing_key(artifact: Path, key: str) -> None:
    _edit(artifact, lambda m: m.pop(key))
    msg = _error(artifact)
    assert str(artifact) in msg and repr(key) in msg


@pytest.mark.parametrize("version", [0, 2, 99])
def test_wrong_schema_version(artifact: Path, version: int) -> None:
    from lotus.core.schema import SCHEMA_VERSION

    _edit(artifact, lambda m: m.update(schema_version=version))
    msg = _error(artifact)
    assert str(artifact) in msg and f"v{version}" in msg and f"v{SCHEMA_VERSION}" in msg and "retrain" in msg


def test_string_schema_version_message_is_not_self_contradictory(artifact: Path) -> None:
    _edit(artifact, lambda m: m.update(schema_version="1"))
    msg = _error(artifact)
    assert "v1, this lotus speaks v1" not in msg


def test_missing_onnx(artifact: Path) -> None:
    artifact.with_suffix(".onnx").unlink()
    msg = _error(artifact)
    assert "ztt.onnx" in msg and "does not exist" in msg


def test_onnx_file_pointing_elsewhere(artifact: Path) -> None:
    _edit(artifact, lambda m: m.update(onnx_file="other.onnx"))
    msg = _error(artifact)
    assert str(artifact.parent / "other.onnx") in msg


@pytest.mark.parametrize("where", ["append", "flip", "truncate"])
def test_onnx_bytes_changed(artifact: Path, where: str) -> None:
    onnx = artifact.with_suffix(".onnx")
    data = bytearray(onnx.read_bytes())
    if where == "append":
        data += b"\x00"
    elif where == "flip":
        data[len(data) // 2] ^= 0xFF
    else:
        data = data[: len(data) // 2]
    onnx.write_bytes(bytes(data))
    msg = _error(artifact)
    assert str(onnx) in msg and "hash" in msg


@pytest.mark.parametrize(("board", "mode"), [("orin-nano", "7W"), ("orin-nano", "MAXN_SUPER"), ("orin-nx", None)])
def test_action_table_mismatch(artifact: Path, board: str, mode: str | None) -> None:
    other = Resolved.from_scenario(Scenario(board=board, power_mode=mode)).actions
    msg = _error(artifact, other)
    assert str(artifact) in msg and "20x5" in msg and f"{other.n_cpu}x{other.n_gpu}" in msg
    assert "orin-nano" in msg and "15W" in msg


def test_same_shape_but_different_clocks_is_a_mismatch(artifact: Path, actions) -> None:  # noqa: ANN001
    from lotus.core.schema import ActionTable

    shifted = ActionTable(tuple(c + 1000 for c in actions.cpu_khz), actions.gpu_hz)
    assert str(artifact) in _error(artifact, shifted)


def test_garbage_onnx_with_matching_hash_fails_at_session_creation(artifact: Path, actions) -> None:  # noqa: ANN001
    onnx = artifact.with_suffix(".onnx")
    onnx.write_bytes(b"definitely not a protobuf")
    _edit(artifact, lambda m: m.update(onnx_sha256=sha256_file(onnx)))
    load_artifact(artifact, actions)  # metadata is fine
    with pytest.raises(PolicyError) as exc:
        OnnxPolicy.load(artifact, actions)
    assert str(onnx) in str(exc.value) and "cannot be loaded" in str(exc.value)


def test_unknown_family(artifact: Path, actions) -> None:  # noqa: ANN001
    _edit(artifact, lambda m: m.update(policy="zzz"))
    with pytest.raises(PolicyError, match="unknown family 'zzz'") as exc:
        OnnxPolicy.load(artifact, actions)
    assert str(artifact) in str(exc.value)


@pytest.mark.parametrize("table", [{"cpu_khz": [115200]}, [1, 2], "15W"], ids=["no-gpu", "list", "str"])
def test_malformed_action_table_is_a_policy_error(artifact: Path, actions, table: object) -> None:  # noqa: ANN001
    _edit(artifact, lambda m: m.update(action_table=table))
    _error(artifact, actions)


def test_non_string_onnx_file_is_a_policy_error(artifact: Path) -> None:
    _edit(artifact, lambda m: m.update(onnx_file=5))
    _error(artifact)


@pytest.mark.parametrize("amap", [[500] * 9, [0, 1], [-1] * 9], ids=["out-of-range", "short", "negative"])
def test_bad_action_map_is_rejected_at_load(artifact: Path, actions, amap: list[int]) -> None:  # noqa: ANN001
    _edit(artifact, lambda m: m.update(action_map=amap))
    with pytest.raises(PolicyError):
        OnnxPolicy.load(artifact, actions)


def test_registry_shields_policy_files(artifact: Path, actions, env_obs: np.ndarray) -> None:  # noqa: ANN001
    pol = build_policy(str(artifact), actions)
    assert isinstance(pol, Shield) and pol.load_error is None and pol.name == "shield(ztt)"
    assert ((pol.act(env_obs) >= 0) & (pol.act(env_obs) < actions.n)).all()
    bare = build_policy(str(artifact), actions, shield=False)
    assert isinstance(bare, OnnxPolicy)


def test_registry_falls_back_on_corrupt_file(artifact: Path, actions, env_obs: np.ndarray) -> None:  # noqa: ANN001
    artifact.with_suffix(".onnx").write_bytes(b"x")
    pol = build_policy(str(artifact), actions)
    assert isinstance(pol, Shield) and pol.inner is None and pol.name == "shield(stock)"
    assert "hash" in pol.load_error
    with pytest.raises(PolicyError):
        build_policy(str(artifact), actions, shield=False)


def test_lotus_sim_with_corrupt_policy_file_runs_stock(artifact: Path, tmp_path: Path) -> None:
    """``lotus sim --policy corrupt.json``: the shield logs the load error and runs stock."""
    artifact.write_text('{"policy": "drl"}')
    out = tmp_path / "sim"
    result = CliRunner().invoke(app, ["sim", "--policy", str(artifact), "--duration", "10", "--out", str(out),
                                      "--json"])  # fmt: skip
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["policy"] == "shield(stock)" and doc["frames"] > 0 and doc["throttled_pct"] == 0.0
    assert (out / "rollout.csv").is_file() and (out / "rollout.png").stat().st_size > 0


def test_lotus_sim_with_corrupt_policy_file_warns_on_stderr(artifact: Path, tmp_path: Path) -> None:
    import subprocess
    import sys

    artifact.with_suffix(".onnx").write_bytes(b"corrupt")
    lotus = Path(sys.executable).with_name("lotus")
    proc = subprocess.run(
        [str(lotus), "sim", "--policy", str(artifact), "--duration", "5", "--out", str(tmp_path / "s"), "--json"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["policy"] == "shield(stock)"
    assert "WARNING lotus.governor.shield" in proc.stderr and "hash" in proc.stderr and "Traceback" not in proc.stderr
