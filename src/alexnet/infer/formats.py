"""Export formats and exporters: plain constants, so `alexnet export --help` needs no torch."""

FORMATS = ("onnx", "pt2", "torchscript", "safetensors")
ONNX_OPSET = 18  # current for both exporters in torch 2.x and supported by onnxruntime ≥ 1.14
EXPORTERS = ("auto", "dynamo", "torchscript")
