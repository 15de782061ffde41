"""Performance harness: the centralised floor, the federated simulation with the same
work, and DP-SGD throughput, measured side by side (`fedmarket bench`)."""

from fedmarket.experiments.bench.config import BenchConfig
from fedmarket.experiments.bench.harness import run_bench, stages

__all__ = ["BenchConfig", "run_bench", "stages"]
