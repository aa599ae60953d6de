"""A small CNN on the aligned 48x48 grey face crop (PyTorch; trainer only, never on the device).

Four conv blocks (32, 48, 96x2, 160 channels; 0.28 M parameters), global average pooling,
dropout and one linear layer. The network takes raw 0..255 grey values and normalises them
itself, and the exported ONNX graph ends in a softmax named ``probabilities``, so the device only
casts its crop to float32.

Training: AdamW with a one-cycle schedule, label smoothing, on-the-fly augmentation (mirror,
small rotations, scale and shifts, brightness and contrast), optionally an exponential moving
average of the weights (``WeightAverage``), early stopping on a validation set
(FER2013's PublicTest), a fixed seed, a checkpoint after every epoch (a killed run resumes where
it stopped), all cores, and a progress bar with ETA.
"""

from __future__ import annotations

import copy
import logging
import math
import os
import time
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import torch
from torch import nn
from torch.nn import functional as F
from tqdm import tqdm

logger = logging.getLogger(__name__)

# (width, convs) per block. Chosen for the device's time budget: ((32,1),(64,2),(96,2),(128,1))
# costs 0.49 ms per face in onnxruntime on one core here, these 0.30 ms
# (`python -m trainer.cnn_latency`, docs/fused.md).
CHANNELS: tuple[tuple[int, int], ...] = ((32, 1), (48, 1), (96, 2), (160, 1))
PIXEL_MEAN, PIXEL_STD = 128.0, 64.0
INPUT_NAME, OUTPUT_NAME = "crop", "probabilities"


@dataclass(frozen=True)
class CnnConfig:
    epochs: int = 45
    batch_size: int = 128
    learning_rate: float = 3e-3
    weight_decay: float = 5e-4
    label_smoothing: float = 0.1
    dropout: float = 0.3
    patience: int = 8  # epochs without a better validation accuracy before stopping
    aligned_share: float = 0.5  # chance a training face is shown as its aligned crop
    erase: float = 0.0  # chance a training face gets one rectangle blanked out (cutout)
    ema: float = 0.0  # decay per step of the weights' moving average (0: off), see WeightAverage
    ferplus_share: float = 0.0  # share of the FER+ vote distribution in each target (0: none)
    self_distil: float = 0.6  # final share of its own past answers in each target (OwnAnswers)
    seed: int = 0
    channels: tuple[tuple[int, int], ...] = CHANNELS  # (width, convs) per block
    threads: int = field(default_factory=lambda: os.cpu_count() or 1)
    progress: bool = True


def conv_block(c_in: int, c_out: int, convs: int) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i in range(convs):
        layers += [
            nn.Conv2d(c_in if i == 0 else c_out, c_out, 3, padding=1, bias=False),
            nn.BatchNorm2d(c_out),
            nn.ReLU(inplace=True),
        ]
    return nn.Sequential(*layers, nn.MaxPool2d(2))


class FaceCnn(nn.Module):
    """Grey crop (N, 1, 48, 48) in 0..255 → class logits (N, n_classes)."""

    def __init__(
        self,
        n_classes: int,
        dropout: float = 0.3,
        channels: tuple[tuple[int, int], ...] = CHANNELS,
    ) -> None:
        super().__init__()
        self.n_classes = n_classes
        blocks: list[nn.Module] = []
        c_in = 1
        for width, convs in channels:
            blocks.append(conv_block(c_in, width, convs))
            c_in = width
        self.features = nn.Sequential(*blocks)
        self.head = nn.Sequential(nn.Flatten(), nn.Dropout(dropout), nn.Linear(c_in, n_classes))

    def forward(self, crop: torch.Tensor) -> torch.Tensor:
        x = self.features((crop - PIXEL_MEAN) / PIXEL_STD)
        logits: torch.Tensor = self.head(F.adaptive_avg_pool2d(x, 1))
        return logits


class WithSoftmax(nn.Module):
    """What is exported: probabilities instead of logits.

    With ``mirror`` the network also reads each crop mirrored left to right, in the same batch,
    and the two answers are averaged: about +1 point of fused accuracy for twice the CNN's work.
    """

    def __init__(self, net: FaceCnn, mirror: bool = False) -> None:
        super().__init__()
        self.net = net
        self.mirror = mirror

    def forward(self, crop: torch.Tensor) -> torch.Tensor:
        if not self.mirror:
            return torch.softmax(self.net(crop), dim=1)
        n = crop.shape[0]
        probs = torch.softmax(self.net(torch.cat([crop, crop.flip(3)])), dim=1)
        return (probs[:n] + probs[n:]) / 2


def parameter_count(net: nn.Module) -> int:
    return sum(p.numel() for p in net.parameters())


def augment(batch: torch.Tensor, generator: torch.Generator, erase: float = 0.0) -> torch.Tensor:
    """Random mirror, rotation (±12°), scale (0.9 to 1.1), shift (±8 %), brightness and contrast.

    With chance ``erase`` an image also gets a rectangle blanked out (``blank_rectangles``).
    """
    n = batch.shape[0]

    def uniform(low: float, high: float) -> torch.Tensor:
        return low + (high - low) * torch.rand(n, generator=generator)

    angle = uniform(-12, 12) * math.pi / 180
    scale = uniform(0.9, 1.1)
    mirror = torch.where(torch.rand(n, generator=generator) < 0.5, -1.0, 1.0)
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    theta = torch.zeros(n, 2, 3)
    theta[:, 0, 0], theta[:, 0, 1] = cos * mirror, -sin
    theta[:, 1, 0], theta[:, 1, 1] = sin * mirror, cos
    theta[:, 0, 2], theta[:, 1, 2] = uniform(-0.16, 0.16), uniform(-0.16, 0.16)
    grid = F.affine_grid(theta, list(batch.shape), align_corners=False)
    moved = F.grid_sample(batch, grid, padding_mode="border", align_corners=False)
    contrast = uniform(0.7, 1.3).view(n, 1, 1, 1)
    brightness = uniform(-25, 25).view(n, 1, 1, 1)
    mean = moved.mean(dim=(2, 3), keepdim=True)
    out = ((moved - mean) * contrast + mean + brightness).clamp(0, 255)
    return blank_rectangles(out, generator, erase) if erase > 0 else out


def blank_rectangles(
    batch: torch.Tensor, generator: torch.Generator, chance: float
) -> torch.Tensor:
    """Cutout: with ``chance`` per image, one rectangle set to the image's mean.

    The rectangle covers 4 to 25 % of the crop (aspect 1:2 to 2:1, anywhere, clipped at the
    border), so no single part of the face (the mouth, one eye) can carry the decision alone.
    """
    n, _, height, width = batch.shape
    rand = torch.rand(n, 5, generator=generator)
    area = (0.04 + 0.21 * rand[:, 0]) * height * width
    aspect = torch.exp((rand[:, 1] - 0.5) * 2 * math.log(2.0))
    h, w = (area * aspect).sqrt(), (area / aspect).sqrt()
    top, left = rand[:, 2] * height - h / 2, rand[:, 3] * width - w / 2
    ys = torch.arange(height).view(1, height, 1)
    xs = torch.arange(width).view(1, 1, width)
    inside = (ys >= top.view(n, 1, 1)) & (ys < (top + h).view(n, 1, 1))
    inside = inside & (xs >= left.view(n, 1, 1)) & (xs < (left + w).view(n, 1, 1))
    inside = inside & (rand[:, 4] < chance).view(n, 1, 1)
    mean = batch.mean(dim=(2, 3), keepdim=True)
    return torch.where(inside.unsqueeze(1), mean, batch)


class WeightAverage:
    """An exponential moving average of a network's weights and batch-norm statistics.

    After every optimiser step ``update`` moves the average a share (1 - decay) of the way to
    the network's current weights; early on the decay is at most (1 + step) / (10 + step), so
    the random initialisation does not linger. The average, not the last weights, is what is
    validated, kept as the best and exported: the same network at no cost per frame. Integer
    buffers (batch norm's step count) are copied, not averaged.
    """

    def __init__(self, source: FaceCnn, decay: float) -> None:
        self.net = copy.deepcopy(source)
        self.net.requires_grad_(False)
        self.decay = decay
        self.steps = 0
        pairs = list(zip(self.net.state_dict().values(), source.state_dict().values(), strict=True))
        self._floats = [(a, b) for a, b in pairs if a.is_floating_point()]
        self._others = [(a, b) for a, b in pairs if not a.is_floating_point()]

    def update(self) -> None:
        self.steps += 1
        share = 1.0 - min(self.decay, (1 + self.steps) / (10 + self.steps))
        with torch.no_grad():
            averages, currents = zip(*self._floats, strict=True)
            torch._foreach_lerp_(list(averages), list(currents), share)
            for average, current in self._others:
                average.copy_(current)

    def state_dict(self) -> dict[str, Any]:
        return {"net": self.net.state_dict(), "steps": self.steps}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Resume from ``state_dict()``'s output (or ``average_of`` a network)."""
        self.net.load_state_dict(state["net"])
        self.steps = int(state["steps"])


def average_of(net: FaceCnn) -> dict[str, Any]:
    """A fresh average's state: the network's weights, no steps taken."""
    return {"net": net.state_dict(), "steps": 0}


@dataclass
class TrainingState:
    epoch: int = 0
    best_accuracy: float = -1.0
    best_epoch: int = -1
    history: list[dict[str, float]] = field(default_factory=list)
    seconds: float = 0.0


@dataclass(frozen=True)
class TrainingData:
    """Training faces in two framings and the validation crops, as uint8 (N, 48, 48)."""

    original: npt.NDArray[np.uint8]  # the dataset's own framing, every training image
    aligned: npt.NDArray[np.uint8]  # aligned crops; zeros where no face was found
    has_aligned: npt.NDArray[np.bool_]
    labels: npt.NDArray[np.int64]
    val_crops: npt.NDArray[np.uint8]
    val_labels: npt.NDArray[np.int64]
    n_classes: int
    votes: npt.NDArray[np.float32] | None = None  # FER+ vote shares per class; zero rows: none


def training_targets(data: TrainingData, share: float, smoothing: float) -> torch.Tensor | None:
    """Class probabilities to learn, or None for plain (smoothed) labels.

    Each row is the dataset's label, smoothed, mixed with its FER+ vote distribution: ``share``
    of the target comes from the ten annotators' votes (rows without votes keep the label).
    """
    if share <= 0 or data.votes is None:
        return None
    label = smoothed_labels(torch.from_numpy(data.labels), data.n_classes, smoothing)
    votes = torch.from_numpy(data.votes.astype(np.float32))
    has_votes = votes.sum(dim=1, keepdim=True) > 0
    return torch.where(has_votes, (1.0 - share) * label + share * votes, label)


SELF_MOMENTUM = 0.6  # weight of the older answers in each image's running average


class OwnAnswers:
    """Self-distillation: each training image's running average of the network's own answers.

    Every time an image is trained on, its softmax (on that epoch's augmented, randomly mirrored
    view) enters an exponential average (``SELF_MOMENTUM``, bias-corrected; temporal ensembling,
    Laine & Aila 2017). Targets mix in that average with a share that grows linearly from 0 in
    the first epoch to ``final_share`` in the last (progressive self-knowledge distillation,
    Kim et al. 2021), so the network learns from an ensemble of its past selves over mirrors and
    augmentations: what test-time mirroring buys, at no cost per frame.
    """

    def __init__(self, n_rows: int, n_classes: int, final_share: float, epochs: int) -> None:
        self.average = torch.zeros(n_rows, n_classes)
        self.seen = torch.zeros(n_rows, dtype=torch.int64)
        self.final_share = final_share
        self.epochs = epochs

    def share(self, epoch: int) -> float:
        return self.final_share * epoch / max(self.epochs - 1, 1)

    def mix(self, target: torch.Tensor, index: torch.Tensor, epoch: int) -> torch.Tensor:
        """``target`` (rows of class probabilities) with this epoch's share of the averages."""
        seen = self.seen[index]
        if self.share(epoch) <= 0:
            return target
        corrected = self.average[index] / (1.0 - SELF_MOMENTUM ** seen.clamp(min=1)).unsqueeze(1)
        share = self.share(epoch) * (seen > 0).float().unsqueeze(1)
        return (1.0 - share) * target + share * corrected

    def update(self, index: torch.Tensor, logits: torch.Tensor) -> None:
        probs = torch.softmax(logits.detach(), dim=1)
        self.average[index] = SELF_MOMENTUM * self.average[index] + (1 - SELF_MOMENTUM) * probs
        self.seen[index] += 1

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {"average": self.average, "seen": self.seen}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        self.average, self.seen = state["average"], state["seen"]


def smoothed_labels(labels: torch.Tensor, n_classes: int, smoothing: float) -> torch.Tensor:
    """One-hot rows with label smoothing, as ``cross_entropy(label_smoothing=...)`` uses."""
    target = torch.full((len(labels), n_classes), smoothing / n_classes)
    target[torch.arange(len(labels)), labels] += 1.0 - smoothing
    return target


def training_views(data: TrainingData, share: float, rng: np.random.Generator) -> torch.Tensor:
    """One view per training image this epoch: its aligned crop with chance ``share``."""
    pick = data.has_aligned & (rng.random(len(data.labels)) < share)
    views = np.where(pick[:, None, None], data.aligned, data.original)
    return torch.from_numpy(views.astype(np.float32)).unsqueeze(1)


def train_cnn(
    data: TrainingData,
    config: CnnConfig,
    work_dir: Path,
    *,
    on_epoch: Callable[[TrainingState], None] | None = None,
) -> FaceCnn:
    """Train (or resume) in ``work_dir``; returns the network with its best validation weights.

    ``on_epoch`` is called after each epoch's checkpoint is written.
    """
    torch.set_num_threads(config.threads)
    torch.manual_seed(config.seed)
    work_dir.mkdir(parents=True, exist_ok=True)
    net = FaceCnn(data.n_classes, config.dropout, config.channels)
    optimizer = torch.optim.AdamW(
        net.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay
    )
    steps = math.ceil(len(data.labels) / config.batch_size)
    schedule = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, config.learning_rate, epochs=config.epochs, steps_per_epoch=steps
    )
    average = WeightAverage(net, config.ema) if config.ema > 0 else None
    own = _own_answers(data, config)
    state = _resume(work_dir, net, optimizer, schedule, average=average, own=own)
    kept = average.net if average is not None else net  # what is validated, kept and returned
    targets = training_targets(data, config.ferplus_share, config.label_smoothing)  # once per run
    bar = tqdm(
        total=config.epochs,
        initial=state.epoch,
        unit="epoch",
        desc="cnn",
        disable=not config.progress,
    )
    with bar:
        while state.epoch < config.epochs and not _patience_out(state, config):
            started = time.perf_counter()
            loss = _one_epoch(
                net,
                optimizer,
                schedule,
                data,
                config,
                epoch=state.epoch,
                average=average,
                targets=targets,
                own=own,
            )
            accuracy = evaluate_accuracy(kept, data.val_crops, data.val_labels)
            raw = evaluate_accuracy(net, data.val_crops, data.val_labels) if average else None
            state.seconds += time.perf_counter() - started
            _record(state, work_dir, kept, loss, accuracy, raw_accuracy=raw)
            state.epoch += 1
            _checkpoint(work_dir, net, optimizer, schedule, state, average=average, own=own)
            bar.update(1)
            bar.set_postfix(loss=f"{loss:.3f}", val_acc=f"{accuracy:.4f}", best=state.best_epoch)
            if on_epoch is not None:
                on_epoch(state)
    kept.load_state_dict(torch.load(work_dir / "best.pt", weights_only=True))
    kept.eval()
    return kept


def _own_answers(data: TrainingData, config: CnnConfig) -> OwnAnswers | None:
    if config.self_distil <= 0:
        return None
    return OwnAnswers(len(data.labels), data.n_classes, config.self_distil, config.epochs)


def _patience_out(state: TrainingState, config: CnnConfig) -> bool:
    return state.best_epoch >= 0 and state.epoch - state.best_epoch > config.patience


def _one_epoch(
    net: FaceCnn,
    optimizer: torch.optim.Optimizer,
    schedule: torch.optim.lr_scheduler.LRScheduler,
    data: TrainingData,
    config: CnnConfig,
    *,
    epoch: int,
    average: WeightAverage | None = None,
    targets: torch.Tensor | None = None,
    own: OwnAnswers | None = None,
) -> float:
    """One pass; the views, order and augmentation depend only on the seed and the epoch.

    ``targets``: class probabilities per training row (``training_targets``), else the labels;
    ``own``: the network's own past answers, mixed into the targets and updated (``OwnAnswers``).
    """
    rng = np.random.default_rng([config.seed, epoch])
    generator = torch.Generator().manual_seed(config.seed * 1000 + epoch)
    torch.manual_seed(config.seed * 1000 + epoch)  # dropout: the same after a resume
    views = training_views(data, config.aligned_share, rng)
    labels = torch.from_numpy(data.labels)
    order = torch.from_numpy(rng.permutation(len(labels)))
    net.train()
    total, count = 0.0, 0
    for start in range(0, len(order), config.batch_size):
        index = order[start : start + config.batch_size]
        batch = augment(views[index], generator, config.erase)
        logits = net(batch)
        if targets is None and own is None:
            loss = F.cross_entropy(logits, labels[index], label_smoothing=config.label_smoothing)
        else:
            target = (
                smoothed_labels(labels[index], data.n_classes, config.label_smoothing)
                if targets is None
                else targets[index]
            )
            if own is not None:
                target = own.mix(target, index, epoch)
                own.update(index, logits)
            loss = F.cross_entropy(logits, target)
        optimizer.zero_grad()
        loss.backward()  # type: ignore[no-untyped-call]
        optimizer.step()
        schedule.step()
        if average is not None:
            average.update()
        total += loss.item() * len(index)
        count += len(index)
    return total / max(count, 1)


def predict_proba(
    net: FaceCnn, crops: npt.NDArray[np.uint8], batch: int = 512, mirror: bool = False
) -> npt.NDArray[np.float32]:
    """Softmax probabilities (N, n_classes) for uint8 crops (N, 48, 48), as exported."""
    net.eval()
    model = WithSoftmax(net, mirror)
    out = []
    with torch.no_grad():
        for start in range(0, len(crops), batch):
            x = torch.from_numpy(crops[start : start + batch].astype(np.float32)).unsqueeze(1)
            out.append(model(x).numpy())
    return np.concatenate(out) if out else np.zeros((0, net.n_classes), np.float32)


def evaluate_accuracy(
    net: FaceCnn, crops: npt.NDArray[np.uint8], labels: npt.NDArray[np.int64]
) -> float:
    probs = predict_proba(net, crops)
    return float((probs.argmax(axis=1) == labels).mean()) if len(labels) else 0.0


def _record(
    state: TrainingState,
    work_dir: Path,
    net: FaceCnn,
    loss: float,
    accuracy: float,
    *,
    raw_accuracy: float | None = None,
) -> None:
    """One epoch in the history; ``raw_accuracy``: the last weights', when ``net`` is an average."""
    entry = {"epoch": state.epoch, "loss": loss, "val_accuracy": accuracy}
    if raw_accuracy is not None:
        entry["raw_val_accuracy"] = raw_accuracy
    state.history.append(entry)
    logger.info("epoch %d: loss %.4f, validation accuracy %.4f", state.epoch, loss, accuracy)
    if accuracy > state.best_accuracy:
        state.best_accuracy, state.best_epoch = accuracy, state.epoch
        _save_atomic(net.state_dict(), work_dir / "best.pt")


def _checkpoint(
    work_dir: Path,
    net: FaceCnn,
    optimizer: torch.optim.Optimizer,
    schedule: torch.optim.lr_scheduler.LRScheduler,
    state: TrainingState,
    *,
    average: WeightAverage | None = None,
    own: OwnAnswers | None = None,
) -> None:
    payload = {
        "net": net.state_dict(),
        "optimizer": optimizer.state_dict(),
        "schedule": schedule.state_dict(),
        "state": asdict(state),
    }
    if average is not None:
        payload["average"] = average.state_dict()
    if own is not None:
        payload["own_answers"] = own.state_dict()
    _save_atomic(payload, work_dir / "checkpoint.pt")


def _resume(
    work_dir: Path,
    net: FaceCnn,
    optimizer: torch.optim.Optimizer,
    schedule: torch.optim.lr_scheduler.LRScheduler,
    *,
    average: WeightAverage | None = None,
    own: OwnAnswers | None = None,
) -> TrainingState:
    path = work_dir / "checkpoint.pt"
    if not path.is_file():
        return TrainingState()
    payload = torch.load(path, weights_only=False)
    net.load_state_dict(payload["net"])
    if average is not None:  # a checkpoint without one (made before it existed) starts it here
        average.load_state_dict(payload.get("average") or average_of(net))
    if own is not None and "own_answers" in payload:
        own.load_state_dict(payload["own_answers"])
    optimizer.load_state_dict(payload["optimizer"])
    schedule.load_state_dict(payload["schedule"])
    state = TrainingState(**payload["state"])
    logger.info("resuming CNN training after epoch %d from %s", state.epoch, path)
    return state


def _save_atomic(obj: Any, path: Path) -> None:
    tmp = path.with_suffix(".tmp")
    torch.save(obj, tmp)
    tmp.replace(path)


def read_state(work_dir: Path) -> TrainingState:
    """The history of a finished or interrupted run in ``work_dir``."""
    payload = torch.load(work_dir / "checkpoint.pt", weights_only=False)
    return TrainingState(**payload["state"])


def export_onnx(net: FaceCnn, path: Path, size: int = 48, mirror: bool = False) -> None:
    """The network with a softmax, input ``crop`` (N, 1, size, size) float32 0..255."""
    net.eval()
    example = torch.zeros(1, 1, size, size)
    with warnings.catch_warnings():  # the TorchScript exporter: no onnxscript dependency
        warnings.simplefilter("ignore", DeprecationWarning)
        _export(WithSoftmax(net, mirror), example, path)


def _export(model: WithSoftmax, example: torch.Tensor, path: Path) -> None:
    torch.onnx.export(
        model,
        (example,),
        str(path),
        input_names=[INPUT_NAME],
        output_names=[OUTPUT_NAME],
        dynamic_axes={INPUT_NAME: {0: "n"}, OUTPUT_NAME: {0: "n"}},
        opset_version=17,
        dynamo=False,
    )


def onnx_parity(
    net: FaceCnn, path: Path, crops: npt.NDArray[np.uint8], mirror: bool = False
) -> dict[str, float]:
    """Largest |torch - onnxruntime| probability difference and argmax agreement on ``crops``."""
    return probability_agreement(predict_proba(net, crops, mirror=mirror), cnn_probs(path, crops))


def cnn_probs(
    path: Path, crops: npt.NDArray[np.uint8], batch: int = 1024, *, reference: bool = False
) -> npt.NDArray[np.float32]:
    """An exported CNN on uint8 crops (N, size, size), through onnxruntime as the device runs it.

    ``reference``: onnxruntime's reference execution (no graph optimization), which does not
    depend on the CPU (``device.inference.classifier.open_session``).
    """
    from device.inference.classifier import open_session

    session = open_session(path, reference=reference)
    parts = [
        session.run([OUTPUT_NAME], {INPUT_NAME: crops[i : i + batch].astype(np.float32)[:, None]})[
            0
        ]
        for i in range(0, len(crops), batch)
    ]
    return np.concatenate(parts).astype(np.float32) if parts else np.zeros((0, 0), np.float32)


def probability_agreement(
    ours: npt.NDArray[np.float32], theirs: npt.NDArray[np.float32]
) -> dict[str, float]:
    """How close two models' probabilities on the same rows are: max |Δp| and argmax agreement."""
    if not len(ours):
        return {"rows": 0, "max_abs_diff": 0.0, "argmax_agreement": 1.0}
    return {
        "rows": len(ours),
        "max_abs_diff": float(np.abs(ours - theirs).max()),
        "argmax_agreement": float((ours.argmax(1) == theirs.argmax(1)).mean()),
    }
