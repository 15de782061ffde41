"""The hand-written LSTM backward against autograd and against torch's own LSTM."""

from __future__ import annotations

import torch

from fedmarket.models.lstm_recurrence import lstm_recurrence


def _inputs(dtype: torch.dtype, batch: int = 3, steps: int = 5, hidden: int = 2):
    gen = torch.Generator().manual_seed(0)
    projected = torch.randn(batch, steps, 4 * hidden, generator=gen, dtype=dtype)
    w_hh = torch.randn(4 * hidden, hidden, generator=gen, dtype=dtype)
    bias = torch.randn(4 * hidden, generator=gen, dtype=dtype)
    return [t.requires_grad_() for t in (projected, w_hh, bias)]


def test_gradients_equal_autograd_of_the_recurrence_in_float64() -> None:
    """gradcheck: the analytic backward (D, the W_hh and bias gradients, through the output
    and the last cell state) against finite differences."""

    def both(projected, w_hh, bias):
        out, c = lstm_recurrence(projected, w_hh, bias)
        return out, c

    assert torch.autograd.gradcheck(both, _inputs(torch.float64), eps=1e-6, atol=1e-7)


def test_forward_and_backward_equal_torch_lstm() -> None:
    torch.manual_seed(1)
    lstm = torch.nn.LSTM(4, 3, batch_first=True)
    x = torch.randn(5, 7, 4, requires_grad=True)
    expected, (_, c_last) = lstm(x)
    projected = x @ lstm.weight_ih_l0.t()
    out, c = lstm_recurrence(projected, lstm.weight_hh_l0, lstm.bias_ih_l0 + lstm.bias_hh_l0)
    torch.testing.assert_close(out, expected, atol=1e-6, rtol=0)
    torch.testing.assert_close(c, c_last[0], atol=1e-6, rtol=0)
    assert out.stride() == expected.stride()  # time-major memory: dropout masks line up
    weight = torch.randn(5, 7, 3)
    ours = torch.autograd.grad((out * weight).sum() + c.sum(), [x, *lstm.parameters()])
    theirs = torch.autograd.grad((expected * weight).sum() + c_last.sum(), [x, *lstm.parameters()])
    for a, b in zip(ours, theirs, strict=True):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=0)
