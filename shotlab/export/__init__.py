"""Export: ONNX and TensorRT bundles with their validation report (see shared/DESIGN.md)."""
