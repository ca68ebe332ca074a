"""Proposal traces: generators, CSV files and how the env consumes them."""

from __future__ import annotations

import numpy as np
import pytest

from lotus.core.errors import ConfigError, TraceError
from lotus.envs import TwoStageDetectorEnv
from lotus.envs.traces import GENERATORS, load_trace_csv, make_trace

GEN_NAMES = ["steady", "bursty", "video", "regimes", "crowd"]
N, MEAN, MAX = 3000, 80.0, 300


def _gen(name: str, seed: int, max_count: int = MAX) -> np.ndarray:
    return GENERATORS[name](np.random.default_rng(seed), N, MEAN, max_count)


def _block_median_jump(counts: np.ndarray, block: int = 30) -> float:
    """Largest |log ratio| between medians of consecutive 1 s blocks (30 frames)."""
    med = np.array([np.median(counts[i : i + block]) for i in range(0, len(counts) - block + 1, block)])
    return float(np.max(np.abs(np.diff(np.log(med)))))


def test_generator_registry_is_complete() -> None:
    assert set(GEN_NAMES) == set(GENERATORS)


@pytest.mark.parametrize("name", GEN_NAMES)
def test_generator_same_seed_same_trace(name: str) -> None:
    np.testing.assert_array_equal(_gen(name, 7), _gen(name, 7))


@pytest.mark.parametrize("name", GEN_NAMES)
def test_generator_different_seed_different_trace(name: str) -> None:
    assert not np.array_equal(_gen(name, 7), _gen(name, 8))


@pytest.mark.parametrize("name", GEN_NAMES)
@pytest.mark.parametrize("max_count", [MAX, 50])
def test_generator_counts_within_one_and_max(name: str, max_count: int) -> None:
    counts = _gen(name, 3, max_count)
    assert counts.shape == (N,)
    assert np.issubdtype(counts.dtype, np.integer)
    assert counts.min() >= 1
    assert counts.max() <= max_count


@pytest.mark.parametrize("seed", range(3))
def test_regimes_reach_three_times_the_video_mean(seed: int) -> None:
    counts = GENERATORS["regimes"](np.random.default_rng(seed), 30_000, MEAN, 10 * int(MEAN))
    video = _gen("video", seed)
    blocks = np.array([np.median(counts[i : i + 30]) for i in range(0, len(counts) - 29, 30)])
    assert blocks.max() > 2.5 * video.mean()  # the heaviest regime, 3x
    assert blocks.min() < 0.7 * MEAN  # and the lightest, 0.5x
    assert _block_median_jump(counts) > np.log(1.8)  # it switches between them


def test_steady_stays_near_mean() -> None:
    counts = _gen("steady", 0)
    assert abs(counts.mean() - MEAN) < 0.05 * MEAN
    assert counts.std() < 0.25 * MEAN


@pytest.mark.parametrize("seed", range(5))
def test_video_has_scene_changes_steady_does_not(seed: int) -> None:
    assert _block_median_jump(_gen("video", seed)) > np.log(2.0)
    assert _block_median_jump(_gen("steady", seed)) < np.log(1.3)


def test_bursty_has_bursts() -> None:
    counts = _gen("bursty", 0)
    assert np.percentile(counts, 95) > 3 * np.percentile(counts, 25)


def test_make_trace_is_deterministic_for_generators() -> None:
    a = make_trace("video", np.random.default_rng(5), 500, MEAN, MAX)
    b = make_trace("video", np.random.default_rng(5), 500, MEAN, MAX)
    np.testing.assert_array_equal(a, b)
    assert a.shape == (500,)


def test_csv_without_header(write_trace) -> None:  # noqa: ANN001
    path = write_trace("3\n7\n0\n12\n")
    np.testing.assert_array_equal(load_trace_csv(path), [3, 7, 0, 12])


def test_csv_with_header_and_extra_columns(write_trace) -> None:  # noqa: ANN001
    path = write_trace("proposals,comment\n5,a\n6,b\n\n9,c\n")
    np.testing.assert_array_equal(load_trace_csv(path), [5, 6, 9])


def test_csv_text_on_line_3_names_line_3(write_trace) -> None:  # noqa: ANN001
    path = write_trace("4\n5\nabc\n6\n", "text.csv")
    with pytest.raises(TraceError, match=r"line 3\b") as exc:
        load_trace_csv(path)
    assert "text.csv" in str(exc.value)
    assert isinstance(exc.value, ConfigError)


def test_csv_text_after_header_is_not_a_second_header(write_trace) -> None:  # noqa: ANN001
    path = write_trace("proposals\ncount\n4\n")
    with pytest.raises(TraceError, match="line 2"):
        load_trace_csv(path)


def test_csv_negative_count_rejected(write_trace) -> None:  # noqa: ANN001
    path = write_trace("4\n-2\n6\n")
    with pytest.raises(TraceError, match=r"line 2.*negative"):
        load_trace_csv(path)


@pytest.mark.parametrize("text", ["", "\n\n", "proposals\n"])
def test_csv_without_counts_rejected(write_trace, text: str) -> None:  # noqa: ANN001
    with pytest.raises(TraceError, match="no proposal counts"):
        load_trace_csv(write_trace(text))


def test_missing_csv_rejected(tmp_path) -> None:  # noqa: ANN001
    with pytest.raises(TraceError, match="cannot read"):
        load_trace_csv(tmp_path / "absent.csv")


def test_unknown_trace_name_rejected() -> None:
    with pytest.raises(TraceError, match="unknown trace"):
        make_trace("sparkly", np.random.default_rng(0), 10, MEAN, MAX)


def test_make_trace_cycles_and_caps_csv(write_trace) -> None:  # noqa: ANN001
    path = write_trace("10\n20\n500\n")
    out = make_trace(str(path), np.random.default_rng(0), 8, MEAN, MAX)
    np.testing.assert_array_equal(out, [10, 20, MAX, 10, 20, MAX, 10, 20])


@pytest.mark.parametrize("decision", ["stage", "frame"])
def test_env_uses_csv_trace_cycling(write_trace, decision: str) -> None:  # noqa: ANN001
    counts = [3, 50, 7, 120, 1]
    path = write_trace("proposals\n" + "\n".join(map(str, counts)) + "\n")
    env = TwoStageDetectorEnv(trace=str(path), decision=decision, episode_frames=100)
    env.reset(seed=0)
    seen = []
    while len(seen) < 12:
        _, _, _, _, info = env.step(99)
        if info["frame_done"]:
            seen.append(info["proposals"])
    assert seen == [counts[i % len(counts)] for i in range(12)]


def test_env_csv_trace_is_independent_of_seed(write_trace) -> None:  # noqa: ANN001
    path = write_trace("9\n8\n7\n")
    props = []
    for seed in (0, 1):
        env = TwoStageDetectorEnv(trace=str(path), decision="frame", episode_frames=10)
        env.reset(seed=seed)
        props.append([env.step(50)[4]["proposals"] for _ in range(6)])
    assert props[0] == props[1] == [9, 8, 7, 9, 8, 7]


def test_env_bad_trace_fails_at_reset_with_trace_error(write_trace) -> None:  # noqa: ANN001
    env = TwoStageDetectorEnv(trace=str(write_trace("1\n-1\n")))
    with pytest.raises(TraceError):
        env.reset(seed=0)


def test_crowd_trace_is_heavier_than_video() -> None:
    assert _gen("crowd", 3).mean() > 1.6 * _gen("video", 3).mean()  # about 2x, capped at half the maximum
