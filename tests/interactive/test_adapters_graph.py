"""The chat's graph encoders: a CRSLab model's whole-graph encoder runs once per chat, not on every call."""
import torch

from crslab_c2crs.interactive.adapters import GraphOnce, encode_graphs_once


class Doubling(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.calls = 0

    def forward(self, x):
        self.calls += 1
        return x * 2


def test_a_graph_encoder_runs_once_and_its_output_is_reused():
    model = torch.nn.Module()
    model.encoder = Doubling()
    encode_graphs_once(model, ("encoder",))
    encode_graphs_once(model, ("encoder",))  # wrapping twice keeps one wrapper
    assert isinstance(model.encoder, GraphOnce) and isinstance(model.encoder.encoder, Doubling)
    first, second = model.encoder(torch.ones(2)), model.encoder(torch.ones(2))
    assert first.tolist() == [2.0, 2.0] and second is first and model.encoder.encoder.calls == 1
