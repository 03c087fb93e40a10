"""``ember.onnx``: export a model to ONNX by tracing the ops one forward pass runs."""

from .export import TrainingMode, export, is_in_onnx_export
from .graph import OnnxExporterError, TracerWarning, UnsupportedOperatorError, register_op

__all__ = [
    "OnnxExporterError",
    "TracerWarning",
    "TrainingMode",
    "UnsupportedOperatorError",
    "export",
    "is_in_onnx_export",
    "register_op",
]
