"""emogeo: cross-model emotion-vector geometry in small language models (reproducibility bundle)."""

__version__ = "0.1.0"
