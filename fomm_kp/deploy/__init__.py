"""From a trained teacher to a small detector on a Jetson: distillation into a student (distill, with
its settings in distill_config, its data in samples and the teacher's targets in targets), export to
ONNX with the checks against TensorRT 8.5's limits (export, onnx_checks) and TensorRT engines
(tensorrt). The exported graph itself is :mod:`fomm_kp.runtime.onnx_graph`: the onnx backend runs it."""
