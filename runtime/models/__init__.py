"""The daemon's model code: manifests and the model repository, ONNX Runtime pipelines, OCR post-processing.

``lotus.compressed_models`` holds only the shipped artifacts (ONNX files and their manifests);
everything that reads or runs them lives here.
"""
