"""What quantize tells the user about its result."""

from __future__ import annotations


def test_quantize_says_how_much_of_the_model_int8_covers():
    """issue 25: a BiLSTM's int8 was 1.00x and nothing said that only a small head was converted."""
    import torch
    from torch import nn

    from slimforge.quantize import QuantizeConfig, quantize
    from slimforge.quantize.core import coverage_line

    class BiLSTM(nn.Module):
        def __init__(self):
            super().__init__()
            self.lstm, self.head = nn.LSTM(16, 64, bidirectional=True, batch_first=True), nn.Linear(128, 2)

        def forward(self, x):
            return self.head(self.lstm(x)[0][:, -1])

    model = BiLSTM().eval()
    calibration = [torch.randn(4, 5, 16) for _ in range(2)]
    result = quantize(model, calibration, QuantizeConfig(backend="torch-dynamic", mode="dynamic"))
    shares = result.info["parameters"]
    assert shares["total"] == sum(p.numel() for p in model.parameters())
    line = coverage_line(result.info)
    lstm_share = 100 * shares["float_by_type"]["LSTM"] / shares["total"]
    assert f"LSTM {lstm_share:.1f}%" in line and lstm_share > 90
    assert "Most of the model stays float" in line
    assert line.startswith("quantized (torch-dynamic): 1 of 1 layers")  # named after the backend: not every backend is int8
