"""The daemon's model code: manifests and the model repository, ONNX Runtime pipelines, OCR post-processing.

``manifest`` (schema, kinds and tensor roles, versioned repository), ``base`` (the pipeline
interface), ``two_stage`` (``frcnn``, ``ppocr``, :func:`~.two_stage.create_pipeline`), ``detector``
(single-stage ``onnx-detector``), ``image`` and ``nms`` (pre/post-processing), ``importing`` and
``profiling`` (``lotus models import``). ``lotus.compressed_models`` holds only the shipped
artifacts (ONNX files and their manifests); everything that reads or runs them lives here. The
contract is ``docs/models.md``.
"""
