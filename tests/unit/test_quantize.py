"""The CNN in int8: static quantization calibrated on real FER2013 crops, checked against float."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest

import trainer.quantize
from trainer.cnn import CnnConfig, TrainingData, cnn_probs, export_onnx, train_cnn
from trainer.errors import ParityError
from trainer.precisions import PRECISIONS
from trainer.quantize import (
    calibration_sample,
    check_kernel_parity,
    dequantized,
    int8_parity,
    kernel_parity,
    quantize_cnn,
    store_cnn,
)


@pytest.fixture(scope="module")
def float_cnn(fer_npz_path: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    with np.load(fer_npz_path) as raw:
        images, labels, usage = raw["images"], raw["labels"], raw["usage"]
    train = np.flatnonzero(usage == "Training")[:384]
    val = np.flatnonzero(usage == "PublicTest")[:128]
    data = TrainingData(
        images[train],
        images[train],
        np.zeros(len(train), bool),
        labels[train],
        images[val],
        labels[val],
        7,
    )
    root = tmp_path_factory.mktemp("quantize")
    config = CnnConfig(epochs=4, batch_size=32, threads=1, progress=False, patience=10)
    net = train_cnn(data, config, root / "work")
    path = root / "cnn_float32.onnx"
    export_onnx(net, path)
    return path, {"train": images[train], "val": images[val]}


def test_int8_model_is_smaller_and_close_to_float(float_cnn: tuple[Path, dict]) -> None:
    float_path, crops = float_cnn
    int8_path = float_path.with_name("cnn_int8.onnx")
    quantize_cnn(float_path, int8_path, calibration_sample(crops["train"], seed=0, rows=200))
    assert int8_path.stat().st_size < float_path.stat().st_size / 3
    graph = onnx.load(str(int8_path)).graph
    int8_weights = [t for t in graph.initializer if t.data_type == onnx.TensorProto.INT8]
    assert len(int8_weights) >= 5  # every conv and the linear layer
    assert [i.name for i in graph.input] == ["crop"] and graph.output[0].name == "probabilities"
    parity = int8_parity(float_path, int8_path, crops["val"])
    assert parity["rows"] == 128
    assert parity["argmax_agreement"] >= 0.8  # a 4-epoch net: many near ties
    assert 0.0 < parity["max_abs_diff"] < 0.2  # really quantized, and still close
    softmax = [n for n in graph.node if n.op_type == "Softmax"]
    assert len(softmax) == 1 and not any(
        n.op_type == "QuantizeLinear" and softmax[0].output[0] in n.input for n in graph.node
    )  # probabilities stay float: fine enough for the stacker's logarithm


def test_int8_probabilities_are_not_in_steps(float_cnn: tuple[Path, dict]) -> None:
    from device.inference.classifier import open_session

    float_path, crops = float_cnn
    int8_path = float_path.with_name("cnn_int8_steps.onnx")
    quantize_cnn(float_path, int8_path, calibration_sample(crops["train"], seed=0, rows=200))
    (probs,) = open_session(int8_path).run(None, {"crop": crops["val"].astype(np.float32)[:, None]})
    assert np.allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    assert (probs > 0).all()  # no class rounded away to 0


def test_calibration_sample_is_fixed_by_the_seed() -> None:
    crops = np.arange(50 * 4, dtype=np.uint8).reshape(50, 2, 2)
    first = calibration_sample(crops, seed=3, rows=10)
    assert np.array_equal(first, calibration_sample(crops, seed=3, rows=10))
    assert not np.array_equal(first, calibration_sample(crops, seed=4, rows=10))
    assert len(calibration_sample(crops, seed=0, rows=500)) == 50


def test_every_precision_is_stored_and_answers_close_to_float(
    float_cnn: tuple[Path, dict], tmp_path: Path
) -> None:
    float_path, crops = float_cnn
    calibration = calibration_sample(crops["train"], seed=0, rows=200)
    for precision in PRECISIONS:
        path = tmp_path / f"cnn_{precision}.onnx"
        store_cnn(float_path, path, precision, calibration)
        parity = int8_parity(float_path, path, crops["val"])  # reference execution: any CPU
        assert parity["argmax_agreement"] >= 0.8, precision
        if precision == "float32":
            assert path.read_bytes() == float_path.read_bytes()
        else:
            assert path.stat().st_size < float_path.stat().st_size / 3, precision


def test_int8_weights_compute_in_float(float_cnn: tuple[Path, dict], tmp_path: Path) -> None:
    float_path, crops = float_cnn
    path = tmp_path / "cnn_int8_weights.onnx"
    store_cnn(float_path, path, "int8-weights", crops["train"][:0])
    graph = onnx.load(str(path)).graph
    kinds = {n.op_type for n in graph.node}
    assert "QuantizeLinear" not in kinds and "DequantizeLinear" in kinds
    int8 = [t for t in graph.initializer if t.data_type == onnx.TensorProto.INT8]
    assert len([t for t in int8 if not t.name.endswith("_zero_point")]) >= 5
    float_probs = cnn_probs(float_path, crops["val"])
    assert np.abs(cnn_probs(path, crops["val"]) - float_probs).max() < 0.05  # weights rounded
    assert kernel_parity(path, crops["val"])["max_abs_diff"] < 1e-4  # float kernels: no drift


def test_float_passes_the_kernel_check_and_int8_beyond_tolerance_is_refused(
    float_cnn: tuple[Path, dict], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    float_path, crops = float_cnn
    assert check_kernel_parity(float_path, crops["val"], "float32")["max_abs_diff"] < 1e-4
    int8_path = tmp_path / "cnn_int8.onnx"
    quantize_cnn(float_path, int8_path, calibration_sample(crops["train"], seed=0, rows=200))
    # int8 kernels requantize with integer sums, the reference in float: never bit-equal, and
    # on AVX2 without VNNI far apart. A tolerance below that difference must refuse the model.
    differs = kernel_parity(int8_path, crops["val"])["max_abs_diff"]
    assert differs > 0.0
    monkeypatch.setattr(trainer.quantize, "KERNEL_TOLERANCE", differs / 2)
    with pytest.raises(ParityError, match=r"reference execution.*--cnn-precision float32") as err:
        check_kernel_parity(int8_path, crops["val"], "int8")
    assert "\n" not in str(err.value)


def test_dequantized_int8_cnn_is_a_float_graph_close_to_its_reference(
    float_cnn: tuple[Path, dict], tmp_path: Path
) -> None:
    float_path, crops = float_cnn
    int8_path = tmp_path / "cnn_int8.onnx"
    quantize_cnn(float_path, int8_path, calibration_sample(crops["train"], seed=0, rows=200))
    back = tmp_path / "cnn_back.onnx"
    dequantized(int8_path, back)
    graph = onnx.load(str(back)).graph
    kinds = [n.op_type for n in graph.node]
    assert "QuantizeLinear" not in kinds and "DequantizeLinear" not in kinds
    quantizers = [n for n in onnx.load(str(int8_path)).graph.node if n.op_type == "QuantizeLinear"]
    assert kinds.count("Clip") == len(quantizers)  # each activation's range, ReLU included
    assert all(t.data_type == onnx.TensorProto.FLOAT for t in graph.initializer)
    reference = cnn_probs(int8_path, crops["val"], reference=True)
    parity = int8_parity(back, int8_path, crops["val"])  # only the rounding is gone
    assert parity["argmax_agreement"] >= 0.9 and parity["max_abs_diff"] < 0.2
    float_probs = cnn_probs(float_path, crops["val"])
    assert (
        np.abs(cnn_probs(back, crops["val"]) - reference).max()
        <= np.abs(float_probs - reference).max() + 0.05
    )  # as close to the int8 network as the original float one
    copied = tmp_path / "copied.onnx"
    dequantized(float_path, copied)
    assert copied.read_bytes() == float_path.read_bytes()
