"""emotion-edge trainer: datasets in, small ONNX models with manifests out (runs off the device)."""
