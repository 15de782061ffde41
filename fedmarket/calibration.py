"""Calibration of purchase propensities (filled in below)."""
