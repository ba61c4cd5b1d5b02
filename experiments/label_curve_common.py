"""Shared pieces of the label-curve experiments (Howard & Ruder 2018, Figure 3, on real IMDb).

One tokenization and one vocab for every method: the shipped IMDb LM's vocab (16,008 words). The IMDb train reviews
(25,000) and a fixed balanced draw of 2,000 IMDb test reviews (seed 0) are tokenized once (in this process, 1 worker)
and cached as token ids. Pools (disjoint, all from IMDb *train*):
  - DEV:   2,000 train reviews (balanced, seed 1234) used only to choose settings (tuning);
  - DRAW:  the other 23,000 train reviews, from which every N-review training set is drawn (balanced).
The 2,000 TEST reviews are only ever scored by the final curve, never looked at while choosing settings.
"""
from __future__ import annotations
import json, os, time
from pathlib import Path

os.environ.setdefault('OMP_NUM_THREADS', '1')
import numpy as np
import torch
import torch.nn.functional as F

torch.set_num_threads(1)

import tempfile

from ulmfit_lit.awd_lstm import AWD_LSTM, load_itos, masked_concat_pool
from ulmfit_lit.baseline import BagOfWords, LinearProbe
from ulmfit_lit.classifier import text_classifier_learner
from ulmfit_lit.corpus import tokenize_texts_to_store
from ulmfit_lit.data import SortedDL, TextBlock, TextDataLoaders
from ulmfit_lit.download import URLs, ulmfit_home, untar_data
from ulmfit_lit.files import atomic_write
from ulmfit_lit.language_model import pretrained_files
from ulmfit_lit.learner import accuracy, set_seed
from ulmfit_lit.recipe import model_configs

EXP = Path(__file__).resolve().parent
HOME = ulmfit_home()                               # the token-id cache of the 27,000 reviews lives there, not in git
CACHE = HOME/'label_curve_cache.npz'
WORK = Path(tempfile.mkdtemp(prefix='label_curve_'))   # learners' model folders
CATS = ['neg', 'pos']
N_TEST, N_DEV = 2000, 2000


def lm_vocab() -> list[str]:
    return load_itos(pretrained_files(False, 'imdb')[1])


def _balanced(labels_idx: dict, n: int, rng) -> np.ndarray:
    "n/2 of each class from {label: array of indices}, shuffled."
    out = np.concatenate([rng.choice(labels_idx[c], n // 2, replace=False) for c in (0, 1)])
    return rng.permutation(out)


class Data:
    "Token ids of IMDb train (positions 0..24999) and the fixed 2,000 test reviews (positions 25000..26999)."
    def __init__(self):
        if not CACHE.exists(): self._build()
        z = np.load(CACHE)
        self.ids, self.offsets, self.labels = z['ids'], z['offsets'], z['labels']
        self.n_train = int(z['n_train'])
        self.vocab = lm_vocab()
        self.test_idx = np.arange(self.n_train, len(self.labels))
        tr = np.arange(self.n_train)
        rng = np.random.default_rng(1234)
        self.dev_idx = _balanced({c: tr[self.labels[tr] == c] for c in (0, 1)}, N_DEV, rng)
        rest = np.setdiff1d(tr, self.dev_idx)
        self.pool = {c: rest[self.labels[rest] == c] for c in (0, 1)}

    def _build(self):
        t = time.time()
        imdb = untar_data(URLs.IMDB)
        texts, labels = [], []
        for c, cat in enumerate(CATS):
            for f in sorted((imdb/'train'/cat).glob('*.txt')): texts.append(f.read_text()); labels.append(c)
        n_train = len(texts)
        test = [(f, c) for c, cat in enumerate(CATS) for f in sorted((imdb/'test'/cat).glob('*.txt'))]
        rng = np.random.default_rng(0)
        for c in (0, 1):                                   # 1,000 of each class, seed 0
            cand = [f for f, cc in test if cc == c]
            for j in sorted(rng.choice(len(cand), N_TEST // 2, replace=False)):
                texts.append(cand[j].read_text()); labels.append(c)
        tok = tokenize_texts_to_store(texts, n_workers=1)
        store = tok.numericalize(lm_vocab())
        np.savez(CACHE, ids=store.ids, offsets=store.offsets, labels=np.array(labels, dtype=np.int64),
                 n_train=n_train)
        print(f"# tokenized {len(texts)} reviews in {time.time() - t:.0f}s -> {CACHE}", flush=True)

    def draw(self, n: int, draw: int, kind: str = 'final') -> np.ndarray:
        "A balanced draw of n training reviews from the DRAW pool (never DEV or TEST); seeded by (kind, n, draw)."
        seed = {'final': 0, 'tune': 1}[kind] * 1_000_000 + n * 100 + draw
        return _balanced(self.pool, n, np.random.default_rng(seed))

    def dl(self, idx, bs=64, shuffle=False, seed=None) -> SortedDL:
        idx = np.asarray(idx)
        return SortedDL(self, self.labels[idx], bs=bs, seq_len=72, shuffle=shuffle, drop_last=shuffle, doc_idxs=idx, seed=seed)

    def dls(self, train_idx, valid_idx, bs=32, seed=0) -> TextDataLoaders:
        train = self.dl(train_idx, bs=bs, shuffle=True, seed=seed)
        valid = self.dl(valid_idx, bs=64)
        return TextDataLoaders(train, valid, self.vocab, list(CATS), text_block=TextBlock(), path=EXP, device='cpu')

    def ntokens(self, idx) -> int:
        idx = np.asarray(idx); return int((self.offsets[idx + 1] - self.offsets[idx]).sum())


def evaluate(learn, data: Data, idx, bs: int = 64) -> float:
    "Accuracy of `learn` on reviews `idx` (sorted-by-length batches, eval mode)."
    probs, targs = learn.get_preds(dl=data.dl(idx, bs=bs))
    return float((probs.argmax(1) == targs).float().mean())


# ----------------------------------------------------------------------------------------------------------- ULMFiT
def clas_config(pretrained=True) -> dict:
    return model_configs(None, 'imdb')[1]          # emb 256, 2 x 768 (the shipped LM's sizes), classifier dropouts


def make_learner(dls, pretrained: bool, drop_mult: float, wd=None, lin_ftrs=None, ps=None, quiet=True):
    learn = text_classifier_learner(dls, AWD_LSTM, config=clas_config(), drop_mult=drop_mult,
                                    pretrained='imdb' if pretrained else False, metrics=accuracy, path=WORK,
                                    quiet=quiet, wd=wd, lin_ftrs=lin_ftrs, ps=ps)
    return learn


def run_stages(learn, stages, log=None):
    """stages: list of dicts {freeze_to, epochs, lr, disc (2.6 ** 4 spread, if freeze_to != -1), pct_start?, div?}.
    Returns per-stage records (last epoch's train/valid loss and valid accuracy, seconds)."""
    recs = []
    for st in stages:
        g = st['freeze_to']
        learn.freeze_to(g)
        lr = st['lr']
        if st.get('disc', 2.6 ** 4) != 1 and g != -1: lr = slice(lr / st.get('disc', 2.6 ** 4), lr)
        t = time.time()
        kw = {k: st[k] for k in ('pct_start', 'div', 'wd', 'moms') if k in st}
        learn.fit_one_cycle(st['epochs'], lr, **kw)
        vals = [list(map(float, v)) for v in learn.recorder.values[-st['epochs']:]]
        recs.append(dict(st, seconds=round(time.time() - t, 1), epochs_values=vals))
        if log: log(recs[-1])
    return recs


# ------------------------------------------------------------------------------------------------------------ probe
def pooled_features(data: Data, idx, cache: dict | None = None, bs: int = 64) -> torch.Tensor:
    "Masked concat pool (last, max, mean) of the shipped LM's last layer, for reviews `idx` (cached by position)."
    idx = np.asarray(idx)
    cache = {} if cache is None else cache
    todo = [int(i) for i in idx if int(i) not in cache]
    if todo:
        dls = data.dls(todo[:2], todo[:2])
        learn = make_learner(dls, True, 0.)
        enc = learn.model[0]; enc.eval()
        dl = data.dl(np.array(todo), bs=bs)
        order = dl.epoch_order()
        pos = 0
        with torch.no_grad():
            for (x, y) in dl:
                out, mask = enc(x)
                f = masked_concat_pool(out, mask, 72)
                for k in range(len(x)): cache[todo[order[pos + k]]] = f[k].clone()
                pos += len(x)
    return torch.stack([cache[int(i)] for i in idx])


def probe_fit(xtr, ytr, wds=(1e-4, 1e-3, 1e-2, 1e-1), folds=3, seed=0):
    "The package's LinearProbe: standardised features, logistic regression, wd by 3-fold CV; returns (predict, wd)."
    probe = LinearProbe(wds, folds, seed).fit(xtr, ytr)
    return probe.predict, probe.wd


# -------------------------------------------------------------------------------------------------------------- bow
def bow_predict(data: Data, train_idx, seed=0):
    "The package's NB-bigram logistic regression (BagOfWords), wd by 3-fold CV on the training reviews."
    bow = BagOfWords(len(data.vocab), (1e-4, 1e-3, 1e-2), 3, seed).fit(docs(data, train_idx), data.labels[train_idx])
    return bow.predict


def docs(data: Data, idx):
    return [data.ids[data.offsets[i]:data.offsets[i + 1]] for i in idx]


def append_json(file: Path, rec: dict):
    "Append `rec` to the JSON list in `file` (the package's atomic write: a kill leaves the old list whole)."
    rows = json.loads(file.read_text()) if file.exists() else []
    rows.append(rec)
    atomic_write(file, json.dumps(rows, indent=1))


# ------------------------------------------------------------------------------------------ neural runs (ULMFiT, scratch)
def init_head_from_probe(learn, predict_parts):
    "Head = BN(768) -> dropout -> Linear(768, 2): set it to the probe's standardise + logistic regression (eval mode)."
    w, b, mu, sd = predict_parts
    blk = learn.model[1].layers[0]
    bn, lin = blk[0], blk[-1]
    assert isinstance(bn, torch.nn.BatchNorm1d) and lin.weight.shape == (2, w.shape[0]), blk
    with torch.no_grad():
        bn.running_mean.copy_(mu); bn.running_var.copy_((sd ** 2 - bn.eps).clamp_min(1e-8))
        bn.weight.fill_(1.)
        W = w.t().contiguous()                                        # (2, 768)
        bn.bias.copy_(torch.linalg.pinv(W) @ b)                        # W @ beta = b: the probe's bias
        lin.weight.copy_(W)


def probe_fit_parts(xtr, ytr, wds=(1e-4, 1e-3, 1e-2, 1e-1), folds=3, seed=0):
    "probe_fit, but also returning (w, b, mu, sd) so a classifier head can start as the probe."
    mu, sd = xtr.mean(0), xtr.std(0) + 1e-6
    z = (xtr - mu) / sd
    fold = torch.as_tensor(np.random.default_rng(seed).permutation(len(ytr)) % folds)
    def fit(x, y, wd):
        w = torch.zeros(x.shape[1], 2, requires_grad=True); b = torch.zeros(2, requires_grad=True)
        opt = torch.optim.LBFGS([w, b], max_iter=200)
        def closure():
            opt.zero_grad(); l = F.cross_entropy(x @ w + b, y) + wd * w.pow(2).sum(); l.backward(); return l
        opt.step(closure); return w.detach(), b.detach()
    def cv(wd):
        accs = []
        for k in range(folds):
            w, b = fit(z[fold != k], ytr[fold != k], wd)
            accs.append(((z[fold == k] @ w + b).argmax(1) == ytr[fold == k]).float().mean().item())
        return float(np.mean(accs))
    scores = {wd: cv(wd) for wd in wds}
    best = max(wds, key=lambda wd: scores[wd])
    w, b = fit(z, ytr, best)
    return (w, b, mu, sd), best, scores


def neural_run(data: Data, train_idx, cfg: dict, seed: int = 0, trace_idx=None, log=print, valid_idx=None) -> tuple:
    """Train one classifier on reviews `train_idx` by `cfg`; returns (learn, record).
    cfg: pretrained (bool), drop_mult, bs, head ('default' = fastai's [50] MLP head; 'probe' = a linear head started
    as the probe: standardise + logistic regression fit by LBFGS, wd by 3-fold CV, on the frozen LM's pooled features),
    wd (optimizer weight decay, default 0.01), stages: [{freeze_to, epochs | steps, lr, disc, pct_start?, div?}].
    `steps`: epochs = ceil(steps / batches per epoch). With `trace_idx`, accuracy on those reviews after every stage."""
    t0 = time.time()
    set_seed(seed)
    n = len(train_idx)
    bs = min(cfg.get('bs', 32), n)
    # per-epoch validation: `valid_idx` (dev reviews, for epoch curves while tuning), else 2 dev reviews (free)
    dls = data.dls(train_idx, data.dev_idx[:2] if valid_idx is None else valid_idx, bs=bs, seed=seed)
    learn = make_learner(dls, cfg['pretrained'], cfg['drop_mult'], wd=cfg.get('wd'),
                         lin_ftrs=[] if cfg.get('head') == 'probe' else None)
    rec = dict(n=n, seed=seed, cfg=cfg, stages=[], trace=[])
    if cfg.get('head') == 'probe':
        t = time.time()
        learn.model.eval()
        feats = pooled_features_model(learn, data, train_idx)
        parts, wd, scores = probe_fit_parts(feats, torch.as_tensor(data.labels[train_idx]))
        init_head_from_probe(learn, parts)
        rec['probe'] = dict(wd=wd, cv=scores, seconds=round(time.time() - t, 1))
        if trace_idx is not None: rec['trace'].append(dict(after='probe_head', acc=evaluate(learn, data, trace_idx)))
    if cfg.get('head') == 'cached':
        t = time.time()
        feats = pooled_features_model(learn, data, train_idx)
        train_head_cached(learn, feats, torch.as_tensor(data.labels[train_idx]), cfg['head_epochs'], cfg['head_lr'],
                          bs=bs, seed=seed, wd=cfg.get('wd') or 0.01)
        rec['head'] = dict(epochs=cfg['head_epochs'], lr=cfg['head_lr'], seconds=round(time.time() - t, 1))
        if trace_idx is not None: rec['trace'].append(dict(after='cached_head', acc=evaluate(learn, data, trace_idx)))
    nb = max(1, n // bs)                                                 # training batches per epoch (drop_last)
    for st in cfg['stages']:
        st = dict(st)
        full_train, steps = learn.dls.train, None
        if 'steps' in st:
            st['epochs'] = max(1, int(round(st['steps'] / nb)))
            if st['steps'] < nb:          # less than an epoch: this stage sees a fresh random subset of `steps` batches
                rng = np.random.default_rng(seed * 1000 + len(rec['stages']))
                sub = rng.choice(np.asarray(train_idx), st['steps'] * bs, replace=False)
                learn.dls.train = data.dl(sub, bs=bs, shuffle=True, seed=seed)
                steps = st['steps']
        t = time.time()
        run_stages(learn, [st])
        learn.dls.train = full_train
        srec = dict(freeze_to=st['freeze_to'], epochs=st['epochs'], lr=st['lr'], steps=steps or st['epochs'] * nb,
                    seconds=round(time.time() - t, 1), train_loss=float(learn.recorder.values[-1][0]))
        if valid_idx is not None:
            srec['epoch_values'] = [[round(float(v), 4) for v in row] for row in learn.recorder.values[-st['epochs']:]]
        if trace_idx is not None:
            srec['acc'] = evaluate(learn, data, trace_idx)
        rec['stages'].append(srec)
        if log: log(f"   stage {srec}")
    rec['train_seconds'] = round(time.time() - t0, 1)
    if cfg.get('bn_recal_trace') and trace_idx is not None:     # diagnostic: BN stats from eval-mode encoder features
        recalibrate_bn(learn, data, train_idx)
        rec['trace'].append(dict(after='bn_recalibrated', acc=evaluate(learn, data, trace_idx)))
    return learn, rec


def recalibrate_bn(learn, data: Data, idx):
    "Re-estimate the head's BatchNorm running stats on `idx` with the encoder in eval mode (no dropout), as at test time."
    feats = pooled_features_model(learn, data, idx)
    head = learn.model[1].layers
    bns = [m for m in head.modules() if isinstance(m, torch.nn.BatchNorm1d)]
    for m in bns: m.reset_running_stats(); m.momentum = None          # cumulative average
    head.train()
    with torch.no_grad(): head(feats)
    head.eval()
    for m in bns: m.momentum = 0.1


def pooled_features_model(learn, data: Data, idx, bs: int = 64) -> torch.Tensor:
    "Pooled features of `learn`'s own encoder (eval mode) for reviews `idx`, in `idx` order."
    enc = learn.model[0]; was = enc.training; enc.eval()
    dl = data.dl(np.asarray(idx), bs=bs)
    order = dl.epoch_order()
    out = torch.empty(len(idx), 3 * enc.module.emb_sz)
    pos = 0
    with torch.no_grad():
        for (x, y) in dl:
            o, mask = enc(x)
            out[torch.as_tensor(order[pos:pos + len(x)])] = masked_concat_pool(o, mask, 72)
            pos += len(x)
    enc.train(was)
    return out


def train_head_cached(learn, feats, y, epochs: int, lr: float, bs: int = 32, seed: int = 0, wd: float = 0.01):
    """fastai's frozen first stage, on cached features: the head (BN/dropout/linear blocks) trained for `epochs` on the
    frozen encoder's pooled features (eval mode: no encoder dropout), one-cycle (AdamW, betas (0.8..0.7, 0.99),
    pct_start 0.25, div 25, final div 1e5, as fit_one_cycle), batches of `bs` (last partial batch dropped)."""
    head = learn.model[1].layers
    g = torch.Generator().manual_seed(seed)
    params = [p for p in head.parameters()]
    opt = torch.optim.AdamW(params, lr=lr, betas=(0.8, 0.99), eps=1e-5, weight_decay=wd)
    nb = max(1, len(y) // bs)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=epochs * nb, pct_start=0.25,
                                                div_factor=25., final_div_factor=1e5 / 25., base_momentum=0.7,
                                                max_momentum=0.8, cycle_momentum=True)
    head.train()
    for _ in range(epochs):
        perm = torch.randperm(len(y), generator=g)
        for i in range(nb):
            b = perm[i * bs:(i + 1) * bs]
            loss = F.cross_entropy(head(feats[b]), y[b])
            opt.zero_grad(); loss.backward(); opt.step(); sched.step()
    head.eval()
