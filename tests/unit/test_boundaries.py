"""Where a comparison decides membership, the value exactly at the boundary, on both sides.

Times are integers, so distances hit a window exactly (random float times never do, and a
``<`` written for ``<=`` would pass). Training's temporal positives, evaluation's exclusion
window and the split gap must agree on the boundary: a frame ``window`` away from a query is a
training positive, excluded from the query's gallery, and dropped next to a held-out frame.
Validated fields are tried at their smallest invalid value and their smallest valid one.
"""

from __future__ import annotations

import pytest
import torch

from fastap_lab.data.sampling import MPerClassBatchSampler
from fastap_lab.data.splits import split_frames
from fastap_lab.errors import ConfigError
from fastap_lab.lit.datamodule import FramesDataModule
from fastap_lab.losses.objectives import FastAPObjective
from fastap_lab.retrieval.exclusion import GalleryExclusion

# Two videos of integer times; video 1 repeats time 3 and has a lone frame at 9.
TIMES = torch.tensor([0.0, 1.0, 2.0, 3.0, 5.0, 0.0, 2.0, 3.0, 3.0, 9.0])
GROUPS = torch.tensor([0, 0, 0, 0, 0, 1, 1, 1, 1, 1])


def brute_force_near(window: float) -> torch.Tensor:
    """[N, N]: same video and |dt| <= window, other frames only."""
    n = len(TIMES)
    return torch.tensor(
        [
            [
                i != j and GROUPS[i] == GROUPS[j] and abs(TIMES[i] - TIMES[j]) <= window
                for j in range(n)
            ]
            for i in range(n)
        ]
    )


@pytest.mark.parametrize("window", [1.0, 2.0, 3.0])
def test_training_positives_and_evaluation_exclusion_agree_at_the_window(window):
    n = len(TIMES)
    objective = FastAPObjective(positives="temporal", window=window)
    positives = objective.positive_mask(torch.arange(n), torch.zeros(n), TIMES, GROUPS)
    exclusion = GalleryExclusion(
        query_index=torch.arange(n),
        query_times=TIMES,
        gallery_times=TIMES,
        query_groups=GROUPS,
        gallery_groups=GROUPS,
        window=window,
    )
    excluded = ~exclusion.valid_mask(slice(0, n), slice(0, n), n, torch.device("cpu"))
    expected = brute_force_near(window)
    assert torch.equal(positives, expected)
    # The query itself is excluded too; every other excluded frame is a training positive.
    assert torch.equal(excluded & ~torch.eye(n, dtype=torch.bool), expected)
    assert excluded.diagonal().all()
    # Exactly `window` apart (frames 0 and int(window) of video 0) is inside both.
    assert positives[0, int(window)] and excluded[0, int(window)]


def test_split_gap_drops_training_frames_exactly_gap_away():
    # 40 frames at times 0..39, 4 blocks of 10: block 2 (times 20..29) is held out.
    times, groups = torch.arange(40).double(), torch.zeros(40, dtype=torch.long)
    for gap in (0.0, 1.0, 2.0, 2.5):
        train, val = split_frames(times, groups, val_fraction=0.25, num_blocks=4, gap=gap)
        assert val.tolist() == list(range(20, 30))
        distance = torch.minimum((times - 20).abs(), (times - 29).abs())
        outside = torch.ones(40, dtype=torch.bool)
        outside[20:30] = False
        expected = outside & ~(distance <= gap) if gap > 0 else outside
        assert train.tolist() == expected.nonzero().flatten().tolist(), gap
    # gap 2: times 18, 19, 30, 31 dropped (distance 2 and 1); 17 and 32 (distance 3) kept.
    train, _ = split_frames(times, groups, val_fraction=0.25, num_blocks=4, gap=2.0)
    assert {17, 32} <= set(train.tolist()) and not {18, 19, 30, 31} & set(train.tolist())


def test_split_gap_and_exclusion_window_drop_the_same_frames():
    # A training frame exactly `gap` from a held-out frame is dropped from training, just as
    # evaluation with exclusion_window = gap hides it from that held-out query.
    times, groups = torch.arange(40).double(), torch.zeros(40, dtype=torch.long)
    gap = 3.0
    kept, val = split_frames(times, groups, val_fraction=0.25, num_blocks=4, gap=0.0)
    train, _ = split_frames(times, groups, val_fraction=0.25, num_blocks=4, gap=gap)
    exclusion = GalleryExclusion(query_times=times[val], gallery_times=times[kept], window=gap)
    hidden = ~exclusion.valid_mask(slice(0, len(val)), slice(0, len(kept)), len(kept), "cpu")
    dropped = set(kept.tolist()) - set(train.tolist())
    assert dropped == set(kept[hidden.any(dim=0)].tolist()) == {17, 18, 19, 30, 31, 32}


def test_block_and_video_counts_at_their_limits():
    times = torch.arange(20).double()
    one_video = torch.zeros(20, dtype=torch.long)
    # A video needs at least num_blocks frames: 20 frames take 20 blocks, not 21.
    train, val = split_frames(times, one_video, val_fraction=0.5, num_blocks=20)
    assert train.numel() == val.numel() == 10
    with pytest.raises(ConfigError, match=r"data\.num_blocks=21"):
        split_frames(times, one_video, num_blocks=21)
    # num_blocks 2 is the fewest that splits; 1 is refused.
    train, val = split_frames(times, one_video, val_fraction=0.5, num_blocks=2)
    assert val.tolist() == list(range(10, 20)) and train.tolist() == list(range(10))
    with pytest.raises(ConfigError, match=r"data\.num_blocks=1"):
        split_frames(times, one_video, num_blocks=1)
    # The largest valid fraction still leaves a training video; a tiny one holds out one.
    three_videos = torch.arange(30) // 10
    times30 = torch.arange(30).double()
    train, val = split_frames(times30, three_videos, split="video", val_fraction=0.99)
    assert three_videos[train].unique().numel() == 1 and three_videos[val].unique().numel() == 2
    train, val = split_frames(times30, three_videos, split="video", val_fraction=0.01)
    assert three_videos[val].unique().numel() == 1 and three_videos[train].unique().numel() == 2


def test_gap_with_one_frame_blocks_matches_brute_force():
    # Blocks of one frame: the held-out frames are times 2 and 7 (evenly spaced), so a training
    # frame between them must be compared with both neighbours (6 is 1 from 7, 4 from 2).
    times, groups = torch.arange(10).double(), torch.zeros(10, dtype=torch.long)
    train, val = split_frames(times, groups, val_fraction=0.2, num_blocks=10, gap=1.0)
    assert val.tolist() == [2, 7]
    assert train.tolist() == [0, 4, 5, 9]


def test_gap_zero_keeps_a_training_frame_at_the_time_of_a_held_out_one():
    # gap 0 disables the gap: a training frame with the very time of a held-out frame stays.
    times = torch.tensor([0.0, 1.0, 2.0, 3.0, 3.0, 4.0, 5.0, 6.0])
    groups = torch.zeros(8, dtype=torch.long)
    train, val = split_frames(times, groups, val_fraction=0.5, num_blocks=2, gap=0.0)
    assert train.tolist() == [0, 1, 2, 3] and val.tolist() == [4, 5, 6, 7]


def test_equal_times_are_split_in_index_order():
    # Stable ordering: of equal times the lower index goes to the earlier block.
    times, groups = torch.zeros(4000, dtype=torch.float64), torch.zeros(4000, dtype=torch.long)
    train, val = split_frames(times, groups, val_fraction=0.5, num_blocks=2)
    assert train.tolist() == list(range(2000)) and val.tolist() == list(range(2000, 4000))


def test_video_split_needs_two_videos():
    times = torch.arange(20).double()
    train, val = split_frames(times, torch.arange(20) // 10, split="video", val_fraction=0.5)
    assert train.tolist() == list(range(10)) and val.tolist() == list(range(10, 20))
    with pytest.raises(ConfigError) as raised:
        split_frames(times, torch.zeros(20, dtype=torch.long), split="video")
    assert str(raised.value) == (
        "data.split=video: the data has a single video; add a `video` column to labels.csv"
        " or use data.split=blocks"
    )


def test_default_is_ten_blocks_with_a_fifth_held_out():
    times, groups = torch.arange(100).double(), torch.zeros(100, dtype=torch.long)
    train, val = split_frames(times, groups)
    # 10 blocks of 10 frames; 2 held out, evenly spaced: blocks 2 and 7.
    assert val.tolist() == list(range(20, 30)) + list(range(70, 80))
    assert train.numel() == 80


def test_too_many_blocks_says_what_to_do():
    with pytest.raises(ConfigError) as raised:
        split_frames(torch.arange(5).double(), torch.zeros(5, dtype=torch.long), num_blocks=6)
    assert str(raised.value) == (
        "data.num_blocks=6: video 0 has only 5 frames; lower data.num_blocks or use data.split=none"
    )


def test_a_gap_that_leaves_no_training_frame_says_what_to_do():
    times, groups = torch.arange(20).double(), torch.zeros(20, dtype=torch.long)
    with pytest.raises(ConfigError) as raised:
        split_frames(times, groups, val_fraction=0.5, num_blocks=2, gap=10.0)
    assert str(raised.value) == (
        "data.split=blocks: no training frames left (gap=10.0, val_fraction=0.5);"
        " lower data.split_gap or data.val_fraction, or use data.split=none"
    )


@pytest.mark.parametrize("fraction", [0.0, 1.0, -0.1, 1.5])
def test_val_fraction_outside_the_open_interval_is_refused(fraction):
    times, groups = torch.arange(50).double(), torch.zeros(50, dtype=torch.long)
    for split in ("blocks", "video"):
        with pytest.raises(ConfigError, match=rf"data\.val_fraction={fraction}"):
            split_frames(times, groups, split=split, val_fraction=fraction)
        with pytest.raises(ConfigError, match=rf"data\.val_fraction={fraction}"):
            FramesDataModule(split=split, val_fraction=fraction)


def test_val_fraction_is_unused_without_a_split():
    times, groups = torch.arange(10).double(), torch.zeros(10, dtype=torch.long)
    train, val = split_frames(times, groups, split="none", val_fraction=1.0)
    assert train.tolist() == val.tolist() == list(range(10))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"batch_size": 0}, "data.batch_size=0"),
        ({"batch_size": 1}, "data.batch_size=1"),  # training compares frames within a batch
        ({"eval_batch_size": 0}, "data.eval_batch_size=0"),
        ({"sampler": "balanced"}, "data.sampler='balanced'"),
        ({"split": "random"}, "data.split='random'"),
    ],
)
def test_datamodule_refuses_the_smallest_invalid_value(kwargs, message):
    with pytest.raises(ConfigError, match=message.replace(".", r"\.")) as raised:
        FramesDataModule(**kwargs)
    assert "\n" not in str(raised.value)


def test_datamodule_accepts_the_smallest_valid_values():
    module = FramesDataModule(batch_size=2, eval_batch_size=1, val_fraction=0.01)
    assert (module.batch_size, module.eval_batch_size) == (2, 1)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"positives": "temporal", "window": 0.0}, "loss.window=0.0"),
        ({"kernel": "gaussian", "sigma": 0.0}, "loss.sigma=0.0"),
        ({"bins": 0}, "loss.bins=0"),
        ({"positives": "time"}, "loss.positives='time'"),
    ],
)
def test_objective_refuses_the_smallest_invalid_value(kwargs, message):
    with pytest.raises(ConfigError, match=message.replace(".", r"\.")):
        FastAPObjective(**kwargs)


def test_objective_accepts_the_smallest_valid_values():
    objective = FastAPObjective(
        bins=1, kernel="gaussian", sigma=1e-6, positives="temporal", window=1e-9
    )
    assert (objective.bins, objective.window) == (1, 1e-9)


@pytest.mark.parametrize(
    ("m", "batch_size", "valid"),
    [(1, 8, False), (2, 4, True), (2, 3, False), (3, 6, True), (3, 3, False), (4, 6, False)],
)
def test_m_per_class_limits(m, batch_size, valid):
    labels = torch.arange(40) % 4
    if valid:
        batches = list(MPerClassBatchSampler(labels, m=m, batch_size=batch_size))
        assert batches and all(len(batch) == batch_size for batch in batches)
    else:
        with pytest.raises(ConfigError, match=r"data\.(m_per_class|batch_size)="):
            MPerClassBatchSampler(labels, m=m, batch_size=batch_size)


def test_exclusion_window_zero_disables_it_and_negative_is_refused():
    n = len(TIMES)
    exclusion = GalleryExclusion(query_times=TIMES, gallery_times=TIMES, window=0.0)
    assert exclusion.valid_mask(slice(0, n), slice(0, n), n, "cpu").all()
    with pytest.raises(ConfigError, match="exclusion_window=-1e-09"):
        GalleryExclusion(query_times=TIMES, gallery_times=TIMES, window=-1e-9)
