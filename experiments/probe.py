"""Sentiment probe of a pretrained language model: pooled encoder features (last, max and mean of the last layer) of
the IMDb sample's reviews, a logistic regression on the 800 training ones (weight decay chosen by 3-fold CV on
them), accuracy on the 200 validation ones: `ulmfit_lit.baseline`'s `pooled_features` and `LinearProbe`, as
`probe_baseline` runs them, with the chosen weight decay shown.

    python experiments/probe.py MODEL_FOLDER [THREADS]      # prints one JSON line; pretrain_sweep.py calls it

MODEL_FOLDER holds one .pth and one .pkl in fastai's layout (a `pretrain_lm` output folder), or is 'imdb' / 'wt103'.
"""
import argparse, json, time

import pandas as pd
import torch

from ulmfit_lit.all import AWD_LSTM, TextDataLoaders, URLs, text_classifier_learner, untar_data
from ulmfit_lit.baseline import LinearProbe, pooled_features


def main():
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('folder', help="the language model: a folder in fastai's layout, or 'imdb' / 'wt103'")
    p.add_argument('threads', type=int, nargs='?', default=2, help='torch threads (default 2)')
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    path = untar_data(URLs.IMDB_SAMPLE)
    df = pd.read_csv(path/'texts.csv')
    dls = TextDataLoaders.from_df(df, path=path, text_col='text', label_col='label', valid_col='is_valid', bs=32)
    learn = text_classifier_learner(dls, AWD_LSTM, pretrained=a.folder, quiet=True, drop_mult=0.)
    t = time.time()
    x_tr, y_tr = pooled_features(learn.model, dls.train)       # every training review, in order (no shuffle, no drop)
    x_va, y_va = pooled_features(learn.model, dls.valid)
    probe = LinearProbe().fit(x_tr, y_tr)
    acc = float((probe.predict(x_va) == y_va).float().mean())
    print(json.dumps(dict(model=a.folder, probe_accuracy=acc, wd=probe.wd, feat_dim=x_tr.shape[1],
                          seconds=time.time() - t)))


if __name__ == '__main__': main()
