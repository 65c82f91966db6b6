"""The study's deep, rlstm, lstm and convdeep written in PyTorch, for timing lrpnet against torch on
the same graph (``benchmarks/backends.py``).

``torch_twin(model, device)`` returns a ``torch.nn.Module`` that computes what the lrpnet ``model``
computes, with the model's weights copied, layer for layer as lrpnet records them:

- the input (N, 28, 84) is cut into T column slices inside the forward pass, as ``TimeSlice`` does
  (step t sees columns [t W/T, (t+1) W/T), flattened row-major, or as an (H, W/T) image for conv);
- a ReLU unit is ``relu(x W - softplus(b))`` with W kept as (in, out), as ``Dense`` keeps it
  (lrpnet/cells/relu_blocks.py); a conv is TensorFlow's SAME cross-correlation, the sum pool is
  2x2/2 SAME (zero padding after an odd edge), and the conv features are flattened in (H, W, C)
  order, as lrpnet/cells/conv_stack.py does on its NHWC arrays;
- deep and convdeep drop out where lrpnet's do when the model has ``dropout_keep`` (``dropout="thesis"``,
  the default): naive masks on the front layer's output, on [front ; r_t], on m_t -> r_{t+1} and on
  m_T before the read-out, in training;
- rlstm computes its three gates in one product (columns i, f, o of "cell.gates", as
  lrpnet/cells/gates.py does) and its candidate in another, with the naive R-LSTM's dropout (fresh
  inverted masks with keep 0.8 on the front layer, on i, f, o, c~ and h_t: lrpnet/cells/rlstm.py),
  on in training;
- lstm is ``torch.nn.LSTM`` (cuDNN on a GPU) + ``nn.Linear`` with the weights of
  ``lrpnet.cells.lstm.params_to_torch``, reading ``lrpnet.io.pytorch.torch_sequence`` of the images.

lrpnet's package converts only ``nn.Sequential`` and LSTM/GRU models from torch (``from_torch``), the
other direction and these recurrent architectures exist nowhere else, hence this file.
``max_relative_error(model, twin, x)`` checks a twin against its model on a batch.
"""
from __future__ import annotations

import numpy
import torch
import torch.nn.functional as F
from torch import nn

ARCHS = ("deep", "rlstm", "lstm", "convdeep")


def _param(params, name, device):
    return nn.Parameter(torch.as_tensor(numpy.ascontiguousarray(params[name]), device=device))


class ReLUUnit(nn.Module):
    """relu(x W - softplus(b)), W of shape (in, out); inverted dropout with ``keep`` in training."""

    def __init__(self, params, name, device, keep=None):
        super().__init__()
        self.W, self.b = _param(params, f"{name}.W", device), _param(params, f"{name}.b", device)
        self.p = 0.0 if keep is None else 1.0 - keep

    def forward(self, x):
        a = F.relu(x @ self.W - F.softplus(self.b))
        return F.dropout(a, self.p, self.training) if self.p else a


class Linear(nn.Module):
    """x W + b, W of shape (in, out): the read-out and the R-LSTM gates."""

    def __init__(self, params, name, device):
        super().__init__()
        self.W, self.b = _param(params, f"{name}.W", device), _param(params, f"{name}.b", device)

    def forward(self, x):
        return x @ self.W + self.b


class Sliced(nn.Module):
    """Base: step t's slice of the image, flattened (or as an (N, 1, H, W/T) image for conv)."""

    def __init__(self, model):
        super().__init__()
        self.T, self.cols = model.T, model.columns

    def slice(self, x, t, as_image=False):
        part = x[:, :, t * self.cols:(t + 1) * self.cols]
        return part[:, None] if as_image else part.reshape(x.shape[0], -1)


class DeepCell(nn.Module):
    """m_t = relu(W [front(x_t) ; r_t] - softplus(b)), r_{t+1} = relu(W' m_t - softplus(b')); with
    ``keep`` (the model's ``dropout_keep``), naive dropout where lrpnet's Deep has it
    (lrpnet/cells/relu_blocks.py): on front(x_t), on [front(x_t) ; r_t] and on m_t -> r_{t+1}."""

    def __init__(self, params, device, keep=None):
        super().__init__()
        self.p = 0.0 if keep is None else 1.0 - keep
        self.front = ReLUUnit(params, "cell.front0", device, keep=keep)
        self.mid = ReLUUnit(params, "cell.mid", device)
        self.state = ReLUUnit(params, "cell.state", device)

    def drop(self, a):
        return F.dropout(a, self.p, self.training) if self.p else a

    def forward(self, x, r):
        m = self.mid(self.drop(torch.cat([self.front(x), r], dim=1)))
        return m, self.state(self.drop(m))


def sumpool_same(a):
    """2x2 stride-2 sum pool with TensorFlow's SAME padding: a zero row/column after an odd edge."""
    a = F.pad(a, (0, a.shape[-1] % 2, 0, a.shape[-2] % 2))
    return F.avg_pool2d(a, 2) * 4


class ConvStack(nn.Module):
    """5x5 conv (SAME) -> ReLU -> sum pool -> 3x3 conv (SAME) -> ReLU -> sum pool -> flatten (H, W, C)."""

    def __init__(self, params, device):
        super().__init__()
        # lrpnet's conv kernels are (kh, kw, in, out); torch's are (out, in, kh, kw)
        self.W1 = nn.Parameter(torch.as_tensor(params["conv.conv1.W"].transpose(3, 2, 0, 1).copy(), device=device))
        self.W2 = nn.Parameter(torch.as_tensor(params["conv.conv2.W"].transpose(3, 2, 0, 1).copy(), device=device))
        self.b1, self.b2 = _param(params, "conv.conv1.b", device), _param(params, "conv.conv2.b", device)

    def forward(self, x):
        a1 = F.relu(F.conv2d(x, self.W1, -F.softplus(self.b1), padding=self.W1.shape[-1] // 2))
        a2 = F.relu(F.conv2d(sumpool_same(a1), self.W2, -F.softplus(self.b2), padding=self.W2.shape[-1] // 2))
        p2 = sumpool_same(a2)
        return p2.permute(0, 2, 3, 1).reshape(x.shape[0], -1)


class Deep(Sliced):
    """Deep (and ConvDeep with ``conv``): the Deep cell over T steps, then [dropout ->] top ReLU -> linear."""

    def __init__(self, model, params, device, conv=False):
        super().__init__(model)
        keep = getattr(model, "dropout_keep", None)
        self.conv = ConvStack(params, device) if conv else None
        self.cell = DeepCell(params, device, keep)
        self.top, self.out = ReLUUnit(params, "top", device), Linear(params, "out", device)

    def forward(self, x):
        r = x.new_zeros(x.shape[0], self.cell.state.W.shape[1])
        for t in range(self.T):
            s = self.conv(self.slice(x, t, as_image=True)) if self.conv is not None else self.slice(x, t)
            m, r = self.cell(s, r)
        return self.out(self.top(self.cell.drop(m)))


class RLSTM(Sliced):
    """Front ReLU -> R-LSTM cell (sigmoid gates, ReLU candidate, h = o c) -> linear, naive dropout."""

    def __init__(self, model, params, device):
        super().__init__(model)
        keep = model.keep
        self.p = 1.0 - keep
        self.front = ReLUUnit(params, "front", device, keep=keep)
        self.gates = Linear(params, "cell.gates", device)          # columns i, f, o
        self.cand = ReLUUnit(params, "cell.cand", device, keep=keep)
        self.out = Linear(params, "out", device)

    def drop(self, a):
        return F.dropout(a, self.p, self.training)

    def forward(self, x):
        n, units = x.shape[0], self.out.W.shape[0]
        h = c = x.new_zeros(n, units)
        for t in range(self.T):
            z = torch.cat([self.front(self.slice(x, t)), h], dim=1)
            i, f, o = (self.drop(g) for g in torch.sigmoid(self.gates(z)).chunk(3, dim=1))
            c = f * c + i * self.cand(z)
            h = self.drop(o * c)
        return self.out(h)


class LSTM(nn.Module):
    """torch.nn.LSTM over the T column slices, then nn.Linear on h_T."""

    def __init__(self, model, params, device):
        super().__init__()
        from lrpnet.cells.lstm import params_to_torch
        self.T = model.T
        hidden = params["out.W"].shape[0]
        self.rnn = nn.LSTM(model.n_in, hidden, batch_first=True).to(device)
        self.rnn.load_state_dict({k: torch.as_tensor(numpy.asarray(v)) for k, v in params_to_torch(params).items()})
        self.out = nn.Linear(hidden, params["out.W"].shape[1]).to(device)
        self.out.load_state_dict({"weight": torch.as_tensor(params["out.W"].T.copy()),
                                  "bias": torch.as_tensor(params["out.b"])})

    def forward(self, x):
        from lrpnet.io.pytorch import torch_sequence
        seq, _ = self.rnn(torch_sequence(x, self.T))
        return self.out(seq[:, -1])


def torch_twin(model, device="cpu"):
    """A torch module computing ``model``'s function (deep, rlstm, lstm, convdeep) with its weights."""
    from lrpnet import backend
    params = {k: backend.to_numpy(v) for k, v in model.params.items()}
    if model.arch == "deep":
        return Deep(model, params, device)
    if model.arch == "convdeep":
        return Deep(model, params, device, conv=True)
    if model.arch == "rlstm":
        return RLSTM(model, params, device)
    if model.arch == "lstm":
        return LSTM(model, params, device)
    raise ValueError(f"no torch twin for architecture {model.arch!r}; expected one of {', '.join(ARCHS)}")


def for_gradients(twin):
    """``twin`` set up for input gradients of the test-time function: eval mode (no dropout), except
    an nn.LSTM, which stays in training mode because cuDNN's RNN backward runs only there (it has no
    dropout, so the function is the same)."""
    twin.eval()
    if isinstance(twin, LSTM):
        twin.rnn.train()
    return twin


def study_loss(logits, y):
    """lrpnet's loss: softmax cross-entropy over the logits and one extra logit fixed at 0, batch mean."""
    z = torch.cat([logits, logits.new_zeros(logits.shape[0], 1)], dim=1)
    return F.cross_entropy(z, y)


def training_step(model, x, y, lr, device="cpu"):
    """A function doing one Adam step of ``model``'s twin on (x, y) (numpy arrays) with the study's loss,
    dropout on, as lrpnet's training step does."""
    net = torch_twin(model, device)
    net.train()
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    tx, ty = torch.as_tensor(x, device=device), torch.as_tensor(y, device=device)

    def step():
        opt.zero_grad(set_to_none=True)
        study_loss(net(tx), ty).backward()
        opt.step()
    return step


def max_relative_error(model, twin, x):
    """max |torch logits - lrpnet logits| / max |lrpnet logits| on the host images ``x`` (eval mode)."""
    want = model.predict(x)
    twin.eval()
    device = next(twin.parameters()).device
    with torch.no_grad():
        got = twin(torch.as_tensor(x, device=device)).cpu().numpy()
    return float(numpy.abs(got - want).max() / max(numpy.abs(want).max(), 1e-30))
