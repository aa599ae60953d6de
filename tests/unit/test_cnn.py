"""The face-crop CNN: trains on real FER2013 faces, resumes after a kill, exports with parity."""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.nn import functional as F

from trainer.cnn import (
    CnnConfig,
    FaceCnn,
    OwnAnswers,
    TrainingData,
    TrainingState,
    WeightAverage,
    augment,
    blank_rectangles,
    cnn_probs,
    export_onnx,
    onnx_parity,
    parameter_count,
    predict_proba,
    read_state,
    smoothed_labels,
    train_cnn,
    training_targets,
    training_views,
)
from trainer.fused import ferplus_votes


@pytest.fixture(scope="module")
def small_data(fer_npz_path: Path) -> TrainingData:
    with np.load(fer_npz_path) as raw:
        images, labels, usage = raw["images"], raw["labels"], raw["usage"]
    train = np.flatnonzero(usage == "Training")[:256]
    val = np.flatnonzero(usage == "PublicTest")[:64]
    aligned = images[train][:, ::-1].copy()  # a stand-in second framing: mirrored rows
    has_aligned = np.arange(len(train)) % 2 == 0
    return TrainingData(
        images[train], aligned, has_aligned, labels[train], images[val], labels[val], 7
    )


CONFIG = CnnConfig(epochs=3, batch_size=64, threads=1, progress=False, patience=10, self_distil=0.0)


def test_network_size_is_the_small_one() -> None:
    net = FaceCnn(7)
    assert 250_000 < parameter_count(net) < 350_000
    assert net(torch.zeros(2, 1, 48, 48)).shape == (2, 7)


def test_views_mix_framings_only_where_an_aligned_crop_exists(small_data: TrainingData) -> None:
    views = training_views(small_data, 1.0, np.random.default_rng(0)).squeeze(1).numpy()
    aligned_rows = small_data.has_aligned
    assert np.array_equal(views[aligned_rows], small_data.aligned[aligned_rows])
    assert np.array_equal(views[~aligned_rows], small_data.original[~aligned_rows])
    none = training_views(small_data, 0.0, np.random.default_rng(0)).squeeze(1).numpy()
    assert np.array_equal(none, small_data.original)


def test_augmentation_keeps_range_and_shape_and_changes_pixels() -> None:
    batch = torch.full((8, 1, 48, 48), 100.0)
    batch[:, :, :, :24] = 200.0
    out = augment(batch, torch.Generator().manual_seed(0))
    assert out.shape == batch.shape and float(out.min()) >= 0 and float(out.max()) <= 255
    assert not torch.equal(out, batch)


def test_cutout_blanks_one_rectangle_of_the_mean_in_chosen_images() -> None:
    batch = torch.rand(64, 1, 48, 48, generator=torch.Generator().manual_seed(1)) * 255
    out = blank_rectangles(batch, torch.Generator().manual_seed(0), chance=0.5)
    mean = batch.mean(dim=(2, 3), keepdim=True)
    changed = (out != batch).squeeze(1)
    touched = changed.flatten(1).any(dim=1)
    assert 16 <= int(touched.sum()) <= 48  # about half of the 64 images
    for image, blanked, m in zip(out, changed, mean, strict=True):
        if not blanked.any():
            continue
        rows, cols = blanked.any(dim=1).nonzero(), blanked.any(dim=0).nonzero()
        box = blanked[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1]
        assert bool(box.all())  # one filled rectangle, nothing outside it
        assert int(blanked.sum()) <= 0.25 * 48 * 48 + 2 * 48
        assert torch.allclose(image[0][blanked], m.flatten())
    never = blank_rectangles(batch, torch.Generator().manual_seed(0), chance=0.0)
    assert torch.equal(never, batch)


def test_augmentation_without_cutout_is_unchanged_by_the_option() -> None:
    batch = torch.rand(8, 1, 48, 48, generator=torch.Generator().manual_seed(2)) * 255
    plain = augment(batch, torch.Generator().manual_seed(3))
    assert torch.equal(plain, augment(batch, torch.Generator().manual_seed(3), erase=0.0))
    assert not torch.equal(plain, augment(batch, torch.Generator().manual_seed(3), erase=1.0))


def test_killed_run_resumes_to_the_same_result(small_data: TrainingData, tmp_path: Path) -> None:
    whole = train_cnn(small_data, CONFIG, tmp_path / "whole")

    def stop_after_first(state: TrainingState) -> None:
        if state.epoch == 1:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train_cnn(small_data, CONFIG, tmp_path / "killed", on_epoch=stop_after_first)
    assert read_state(tmp_path / "killed").epoch == 1
    resumed = train_cnn(small_data, CONFIG, tmp_path / "killed")
    history_whole = read_state(tmp_path / "whole").history
    history_resumed = read_state(tmp_path / "killed").history
    assert [h["epoch"] for h in history_resumed] == [0, 1, 2]
    for a, b in zip(history_whole, history_resumed, strict=True):
        assert a["loss"] == pytest.approx(b["loss"], rel=1e-4)
    for a, b in zip(whole.state_dict().values(), resumed.state_dict().values(), strict=True):
        assert torch.allclose(a.float(), b.float(), atol=1e-4)


def test_weight_average_moves_a_share_toward_the_network() -> None:
    net = FaceCnn(7)
    average = WeightAverage(net, decay=0.9)
    before = [t.clone() for t in average.net.state_dict().values()]
    with torch.no_grad():
        for p in net.parameters():
            p.add_(1.0)
        net.features[0][1].num_batches_tracked.add_(5)  # an integer buffer: copied
    average.update()  # step 1: decay min(0.9, 2 / 11), so 9 / 11 of the way
    for old, new, current in zip(
        before, average.net.state_dict().values(), net.state_dict().values(), strict=True
    ):
        if old.is_floating_point():
            assert torch.allclose(new, old + (current - old) * (9 / 11), atol=1e-6)
        else:
            assert torch.equal(new, current)
    assert not any(p.requires_grad for p in average.net.parameters())
    for _ in range(1000):
        average.update()
    assert average.steps == 1001
    assert all(
        torch.allclose(a, b, atol=1e-5)
        for a, b in zip(average.net.parameters(), net.parameters(), strict=True)
    )


def test_averaged_run_keeps_the_average_and_resumes_to_it(
    small_data: TrainingData, tmp_path: Path
) -> None:
    config = replace(CONFIG, ema=0.9)
    whole = train_cnn(small_data, config, tmp_path / "whole")
    history = read_state(tmp_path / "whole").history
    assert all("raw_val_accuracy" in h for h in history)
    raw = FaceCnn(7)
    raw.load_state_dict(torch.load(tmp_path / "whole" / "checkpoint.pt", weights_only=False)["net"])
    assert not torch.allclose(whole.head[2].weight, raw.head[2].weight)  # the average is kept

    assert_kill_and_resume_match(small_data, config, tmp_path / "killed", whole)


def assert_kill_and_resume_match(
    data: TrainingData, config: CnnConfig, work_dir: Path, whole: FaceCnn
) -> None:
    """A run killed after its first epoch and resumed ends with ``whole``'s weights."""

    def stop_after_first(state: TrainingState) -> None:
        if state.epoch == 1:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train_cnn(data, config, work_dir, on_epoch=stop_after_first)
    resumed = train_cnn(data, config, work_dir)
    for a, b in zip(whole.state_dict().values(), resumed.state_dict().values(), strict=True):
        assert torch.allclose(a.float(), b.float(), atol=1e-4)


def test_targets_mix_the_smoothed_label_with_the_votes() -> None:
    crops = np.zeros((3, 48, 48), np.uint8)
    votes = np.array([[0.5, 0, 0, 0.5, 0, 0, 0], [0, 0, 0, 0, 0, 0, 0], [0, 0, 0, 1, 0, 0, 0]])
    data = TrainingData(
        crops,
        crops,
        np.zeros(3, bool),
        np.array([0, 2, 3]),
        crops,
        np.zeros(3, np.int64),
        7,
        votes=votes.astype(np.float32),
    )
    assert training_targets(data, 0.0, 0.1) is None
    targets = training_targets(data, 0.5, 0.0)
    assert targets is not None
    assert torch.allclose(targets[0], torch.tensor([0.75, 0, 0, 0.25, 0, 0, 0]))
    assert torch.allclose(targets[1], F.one_hot(torch.tensor(2), 7).float())  # no votes: the label
    smoothed = training_targets(data, 1.0, 0.1)
    assert smoothed is not None and torch.allclose(smoothed.sum(dim=1), torch.ones(3))
    assert torch.allclose(smoothed[2], F.one_hot(torch.tensor(3), 7).float())


def test_soft_targets_that_agree_with_the_label_give_label_smoothing() -> None:
    crops = np.zeros((4, 48, 48), np.uint8)
    labels = np.array([0, 3, 6, 1])
    votes = np.eye(7, dtype=np.float32)[labels]
    data = TrainingData(crops, crops, np.zeros(4, bool), labels, crops, labels, 7, votes=votes)
    targets = training_targets(data, 0.5, 0.1)
    assert targets is not None
    logits = torch.randn(4, 7, generator=torch.Generator().manual_seed(0))
    # half the target from votes that agree: the label with half the smoothing
    by_label = F.cross_entropy(logits, torch.from_numpy(labels), label_smoothing=0.05)
    assert float(F.cross_entropy(logits, targets)) == pytest.approx(float(by_label), rel=1e-6)


def test_ferplus_votes_are_shares_of_fer2013_classes(fer_npz_path: Path) -> None:
    names = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
    shares = ferplus_votes(fer_npz_path, names)
    assert shares is not None and shares.shape == (35_887, 7)
    sums = shares.sum(axis=1)
    assert np.allclose(sums[sums > 0], 1.0) and 0 < int((sums == 0).sum()) < 500
    # image 0: neutral 4, sadness 1, anger 3, disgust 2 of ten votes
    assert np.allclose(shares[0], [0.3, 0.2, 0, 0, 0.1, 0, 0.4])


def test_loss_falls_while_training(small_data: TrainingData, tmp_path: Path) -> None:
    train_cnn(small_data, CnnConfig(epochs=4, batch_size=32, threads=1, progress=False), tmp_path)
    history = read_state(tmp_path).history
    assert history[-1]["loss"] < history[0]["loss"]


def test_onnx_export_matches_torch(small_data: TrainingData, tmp_path: Path) -> None:
    net = FaceCnn(7)
    net.eval()
    path = tmp_path / "cnn.onnx"
    export_onnx(net, path)
    parity = onnx_parity(net, path, small_data.val_crops)
    assert parity["rows"] == 64
    assert parity["max_abs_diff"] < 1e-5 and parity["argmax_agreement"] == 1.0


def test_mirrored_export_averages_both_views(small_data: TrainingData, tmp_path: Path) -> None:
    """The mirror graph answers the same for a crop and its mirror image, and matches torch."""
    torch.manual_seed(0)
    net = FaceCnn(7)
    net.eval()
    path = tmp_path / "mirror.onnx"
    export_onnx(net, path, mirror=True)
    crops = small_data.val_crops
    assert onnx_parity(net, path, crops, mirror=True)["max_abs_diff"] < 1e-5
    both = cnn_probs(path, crops)
    flipped = cnn_probs(path, np.ascontiguousarray(crops[:, :, ::-1]))
    assert np.abs(both - flipped).max() < 1e-5
    plain = predict_proba(net, crops)
    mirrored = predict_proba(net, np.ascontiguousarray(crops[:, :, ::-1]))
    assert np.abs(both - (plain + mirrored) / 2).max() < 1e-5
    assert np.abs(plain - both).max() > 1e-4  # the mirror changes the answer


def test_latency_command_measures_a_shape(capsys: pytest.CaptureFixture[str]) -> None:
    from trainer.cnn_latency import main

    assert main(["8,1 16,1"]) == 0
    line = capsys.readouterr().out.strip()
    assert line.startswith("8,1 16,1") and line.endswith("ms")
    assert FaceCnn(7, channels=((8, 1), (16, 1))).head[-1].in_features == 16
    assert "warm" in line and "cold" in line


def test_latency_command_times_int8_shapes_and_onnx_files(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import re

    from trainer.cnn_latency import main

    assert main(["8,1 16,1", "--int8"]) == 0
    int8_bytes = int(re.search(r"([\d,]+) B", capsys.readouterr().out)[1].replace(",", ""))
    net = FaceCnn(7, channels=((8, 1), (16, 1)))
    export_onnx(net, tmp_path / "a.onnx")
    assert int8_bytes != (tmp_path / "a.onnx").stat().st_size  # the int8 file was timed
    assert main(["--onnx", str(tmp_path / "a.onnx"), str(tmp_path / "a.onnx"), "--batch", "2"]) == 0
    line = capsys.readouterr().out.strip()
    size = 2 * (tmp_path / "a.onnx").stat().st_size
    assert line.endswith("ms") and f"{size:,} B" in line and "(batch 2)" in line
    with pytest.raises(SystemExit):
        main(["--onnx", str(tmp_path / "missing.onnx")])
    assert "no such ONNX file" in capsys.readouterr().err


def test_own_answers_average_and_mix_in_with_a_growing_share() -> None:
    own = OwnAnswers(n_rows=3, n_classes=2, final_share=0.5, epochs=5)
    target = torch.tensor([[1.0, 0.0], [1.0, 0.0]])
    rows = torch.tensor([0, 1])
    assert torch.equal(own.mix(target, rows, epoch=3), target)  # nothing seen yet
    own.update(torch.tensor([0]), torch.tensor([[0.0, 0.0]]))  # softmax (0.5, 0.5)
    assert own.share(0) == 0.0 and own.share(4) == 0.5
    mixed = own.mix(target, rows, epoch=2)  # share 0.25 for row 0; row 1 was never seen
    assert torch.allclose(mixed[0], torch.tensor([0.875, 0.125]))  # bias-corrected: (0.5, 0.5)
    assert torch.equal(mixed[1], target[1])
    own.update(torch.tensor([0]), torch.tensor([[math.log(3.0), 0.0]]))  # softmax (0.75, 0.25)
    expected = (0.6 * 0.4 * 0.5 + 0.4 * 0.75) / (1 - 0.6**2)  # the running average, corrected
    assert torch.allclose(own.mix(target, rows, epoch=4)[0, 0], torch.tensor(0.5 + 0.5 * expected))


def test_smoothed_labels_match_cross_entropys_own_smoothing() -> None:
    logits = torch.tensor([[2.0, 0.5, -1.0], [0.0, 1.0, 0.0]])
    labels = torch.tensor([0, 2])
    by_hand = F.cross_entropy(logits, smoothed_labels(labels, 3, 0.1))
    assert torch.allclose(by_hand, F.cross_entropy(logits, labels, label_smoothing=0.1))


def test_self_distilled_run_resumes_to_the_same_weights(
    small_data: TrainingData, tmp_path: Path
) -> None:
    config = replace(CONFIG, self_distil=0.6)
    whole = train_cnn(small_data, config, tmp_path / "whole")
    plain = train_cnn(small_data, CONFIG, tmp_path / "plain")
    assert not torch.allclose(whole.head[2].weight, plain.head[2].weight)  # the targets differ
    seen = torch.load(tmp_path / "whole" / "checkpoint.pt", weights_only=False)["own_answers"]
    assert int(seen["seen"].min()) == config.epochs  # every image, once per epoch

    assert_kill_and_resume_match(small_data, config, tmp_path / "killed", whole)
