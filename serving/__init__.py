"""The inference service and its prediction log (FastAPI, ONNX Runtime or Neuron)."""
