"""Validation of bonesim against clinical data that needs more than one room.

:mod:`~bonesim.validation.ca_level` runs physiology scenarios through the CA on
a phantom or a real volume and compares realised rates with the clinical
targets (the physiology-level table lives in :mod:`bonesim.physiology.calibration`).
"""
