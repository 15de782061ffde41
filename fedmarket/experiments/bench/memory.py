"""Peak memory of a stage: host RSS of this process and its descendants (Ray's raylet and
worker actors are started by this process), and the GPU memory torch allocated here."""

from __future__ import annotations

import threading
from types import TracebackType

import psutil
import torch


def tree_rss(root: psutil.Process) -> int:
    """Bytes resident in ``root`` and every process below it (those that vanish are skipped)."""
    total = 0
    for proc in [root, *root.children(recursive=True)]:
        try:
            total += proc.memory_info().rss
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return total


class PeakMemory:
    """Samples the process tree every ``interval`` seconds while the block runs.

    Sampling is written here because neither torch nor Ray reports the peak of a process
    tree. ``peak_host_mb`` is approximate both ways: spikes between samples are missed, and
    RSS counts pages shared between processes (libraries, Ray's object store) once per
    process. ``peak_gpu_mb`` is exact for this process (torch's allocator counter, without
    the CUDA context and the allocator's cache); clients report their own.
    """

    def __init__(self, interval: float = 0.1) -> None:
        self.interval = interval
        self.peak_host = 0
        self.peak_gpu: int | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._root = psutil.Process()

    def __enter__(self) -> PeakMemory:
        if torch.cuda.is_available():
            torch.cuda.reset_peak_memory_stats()
        self.peak_host = tree_rss(self._root)
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self.peak_host = max(self.peak_host, tree_rss(self._root))
        if torch.cuda.is_available():
            self.peak_gpu = torch.cuda.max_memory_allocated()

    def _sample(self) -> None:
        while not self._stop.wait(self.interval):
            self.peak_host = max(self.peak_host, tree_rss(self._root))

    def to_dict(self) -> dict[str, float | None]:
        return {
            "peak_host_mb": self.peak_host / 2**20,
            "peak_gpu_mb": None if self.peak_gpu is None else self.peak_gpu / 2**20,
        }
