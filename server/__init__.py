"""The Flower ServerApp of fedmarket."""
