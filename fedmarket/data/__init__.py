"""The data side: raw retailer exports to per-partition tensors ready for training."""
