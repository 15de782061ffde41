"""`fedmarket export` on a finished run: export time, the difference to PyTorch, and scoring
throughput of the exported files against PyTorch, one thread each.

Usage::

    .venv/bin/python scripts/bench_export.py RUN_DIR [--out /tmp/fm-export] [--repeats 5]

Exports RUN_DIR's federated model to ONNX and to TorchScript (``fedmarket.scoring.export``,
the code behind `fedmarket export`), then scores the run's pooled test customers (raw
features, normalisation inside) with ONNX Runtime, ``torch.jit.load`` and the PyTorch module
the files were made from (``RawScorer``, under ``torch.no_grad``), all on one thread and in one
batch; each is timed ``--repeats`` times after one warm-up and the median is reported. A
benchmark, not a test.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from fedmarket.data import store
from fedmarket.scoring import export
from fedmarket.scoring.raw_scorer import RawScorer, raw_features
from fedmarket.scoring.run_model import load_run_model


def _median_seconds(fn: Callable[[], object], repeats: int) -> float:
    fn()  # warm-up: session and allocator start-up is not scoring
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--out", type=Path, default=Path("/tmp/fm-export"))
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(1)
    results = {}
    for fmt in export.FORMATS:
        results[fmt] = export.export_run(args.run_dir, fmt, args.out / fmt, overwrite=True)
        r = results[fmt]
        print(
            f"{fmt}: exported in {r.seconds:.1f} s, max abs difference to PyTorch "
            f"{r.max_abs_diff:.2g} on {r.n_customers:,} test customers"
        )
    run = load_run_model(args.run_dir)
    raw = raw_features(run.norm, store.load_pooled(run.config.data_dir, "test").X)
    scorer = RawScorer.from_run(run)
    x = torch.from_numpy(raw)

    def pytorch() -> object:
        with torch.no_grad():
            return scorer(x)

    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = options.inter_op_num_threads = 1
    session = ort.InferenceSession(
        str(results["onnx"].model_file), options, providers=["CPUExecutionProvider"]
    )
    traced = torch.jit.load(str(results["torchscript"].model_file))

    def torchscript() -> object:
        with torch.no_grad():
            return traced(x)

    runners = {
        "PyTorch (RawScorer)": pytorch,
        "ONNX Runtime": lambda: session.run(None, {export.INPUT_NAME: raw}),
        "TorchScript": torchscript,
    }
    got = np.asarray(runners["ONNX Runtime"]()[0], np.float64)  # type: ignore[index]
    ref = pytorch().numpy().astype(np.float64)  # type: ignore[attr-defined]
    print(f"ONNX Runtime vs PyTorch module, max abs difference {np.abs(got - ref).max():.2g}")
    print(f"onnxruntime {ort.__version__}, torch {torch.__version__}, {len(raw):,} customers")
    for name, fn in runners.items():
        seconds = _median_seconds(fn, args.repeats)
        print(f"{name:>20}: {seconds * 1000:8.1f} ms, {len(raw) / seconds:10,.0f} customers/s")


if __name__ == "__main__":
    main()
