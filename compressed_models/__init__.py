"""The model repository: shipped ONNX artifacts with a manifest per model, and their loader."""
