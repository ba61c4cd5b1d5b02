"""Sentiment probe of a pretrained language model: pooled encoder features (last, max and mean of the last layer) of
the IMDb sample's reviews, a logistic regression on the 800 training ones (weight decay chosen by 3-fold CV on
them), accuracy on the 200 validation ones.  python bench/probe.py MODEL_FOLDER [THREADS]  (prints one JSON line)"""
import sys, json, time
import numpy as np, torch, torch.nn.functional as F, pandas as pd
from ulmfit_lit.all import *
from ulmfit_lit.awd_lstm import masked_concat_pool
torch.set_num_threads(int(sys.argv[2]) if len(sys.argv) > 2 else 2)
folder = sys.argv[1]
path = untar_data(URLs.IMDB_SAMPLE)
df = pd.read_csv(path/'texts.csv')
dls = TextDataLoaders.from_df(df, path=path, text_col='text', label_col='label', valid_col='is_valid', bs=32)
learn = text_classifier_learner(dls, AWD_LSTM, pretrained=folder, quiet=True, drop_mult=0.)
enc = learn.model[0]; enc.eval()
def feats(dl):
    xs, ys = [], []
    with torch.no_grad():
        for x, y in dl:
            out, mask = enc(x)
            xs.append(masked_concat_pool(out, mask, 72)); ys.append(y)
    return torch.cat(xs), torch.cat(ys)
t = time.time()
import copy
tr_dl = copy.copy(dls.train); tr_dl.shuffle = False; tr_dl.drop_last = False
xtr, ytr = feats(tr_dl); xva, yva = feats(dls.valid)
mu, sd = xtr.mean(0), xtr.std(0) + 1e-6
xtr, xva = (xtr - mu) / sd, (xva - mu) / sd
def fit(x, y, wd):
    w = torch.zeros(x.shape[1], 2, requires_grad=True); b = torch.zeros(2, requires_grad=True)
    opt = torch.optim.LBFGS([w, b], max_iter=200)
    def closure():
        opt.zero_grad(); l = F.cross_entropy(x @ w + b, y) + wd * w.pow(2).sum(); l.backward(); return l
    opt.step(closure); return lambda z: (z @ w + b).argmax(1)
fold = torch.as_tensor(np.random.default_rng(0).permutation(len(ytr)) % 3)
def cv(wd): return np.mean([(fit(xtr[fold != k], ytr[fold != k], wd)(xtr[fold == k]) == ytr[fold == k]).float().mean().item() for k in range(3)])
best = max([1e-4, 1e-3, 1e-2, 1e-1], key=cv)
acc = (fit(xtr, ytr, best)(xva) == yva).float().mean().item()
print(json.dumps(dict(model=folder, probe_accuracy=acc, wd=best, feat_dim=xtr.shape[1], seconds=time.time() - t)))
