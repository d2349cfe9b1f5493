"""Shared test set-up: one torch thread (2-core CI machines; equal results need equal thread counts)."""
import torch

torch.set_num_threads(1)
