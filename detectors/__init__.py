"""Two-stage detectors: model definitions, synthetic data, training, stage-split ONNX export."""
