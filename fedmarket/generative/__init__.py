"""Generative models over customer features: a semi-supervised GAN classifier and
GAN-based minority oversampling, compared in `fedmarket baselines` with the classical models."""
