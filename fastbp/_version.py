"""The version of fastbp: one place, read by the package, the model files and the calibration."""

__version__ = "0.1.0"
