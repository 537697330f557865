"""Training: backbones, embeddings, baselines, fine-tuning, metrics (see shared/DESIGN.md)."""
