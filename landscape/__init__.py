"""landscape: soft quantization and loss-landscape analysis of compressed neural networks."""

__version__ = "0.1.0"
