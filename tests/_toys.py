"Tiny models and loaders (the dls interface of CONVENTIONS.md) shared by the chapter-04 tests."
import math, torch
from torch import nn

class ListDL:
    "A list of (x, y) batches; iterating again gives the same batches (enough for these tests)."
    def __init__(self, batches): self.batches = batches
    def __len__(self): return len(self.batches)
    def __iter__(self): return iter(self.batches)

class DLs:
    "dls interface: .train, .valid, .device, .vocab"
    def __init__(self, train, valid, vocab=None, device='cpu'):
        self.train, self.valid, self.vocab, self.device = train, valid, vocab, torch.device(device)

def regression_dls(n_batches=8, bs=4, n=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(n, 2, generator=g)
    def batch():
        x = torch.randn(bs, n, generator=g)
        return x, x @ w + 0.01 * torch.randn(bs, 2, generator=g)
    return DLs(ListDL([batch() for _ in range(n_batches)]), ListDL([batch() for _ in range(2)]))

def toy_stream(n, vocab_sz=20, seed=0):
    "Each token is followed by one of two tokens: best loss log(2), chance log(vocab_sz)."
    g = torch.Generator().manual_seed(seed)
    toks, t = [], 0
    for c in torch.randint(0, 2, (n,), generator=g).tolist():
        t = (2*t + 1) % vocab_sz if c else (3*t + 2) % vocab_sz
        toks.append(t)
    return torch.tensor(toks)

def lm_batches(stream, bs=8, seq_len=12):
    bl = (len(stream) - 1) // bs
    x, y = stream[:bs*bl].view(bs, bl), stream[1:bs*bl+1].view(bs, bl)
    return ListDL([(x[:, i:i+seq_len], y[:, i:i+seq_len]) for i in range(0, bl, seq_len)])

def toy_lm_dls(vocab_sz=20, n_train=3000, n_valid=600, bs=8, seq_len=12):
    return DLs(lm_batches(toy_stream(n_train, vocab_sz, 0), bs, seq_len),
               lm_batches(toy_stream(n_valid, vocab_sz, 1), bs, seq_len), [f'w{i}' for i in range(vocab_sz)])

class TinyLM(nn.Module):
    def __init__(self, vocab_sz=20, emb=16, hid=32):
        super().__init__()
        self.emb, self.rnn, self.head = nn.Embedding(vocab_sz, emb), nn.LSTM(emb, hid, batch_first=True), nn.Linear(hid, vocab_sz)
        self.hidden = None
    def reset(self): self.hidden = None
    def forward(self, x):
        raw, h = self.rnn(self.emb(x), self.hidden)
        self.hidden = tuple(t.detach() for t in h)
        return self.head(raw), raw, raw

def tiny_splitter(m): return [list(m.emb.parameters()) + list(m.rnn.parameters()), list(m.head.parameters())]
