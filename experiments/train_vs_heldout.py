"""The shipped IMDb language model on one loss: full cross-entropy on 1,000 of the reviews it was pretrained on, beside
the same measure on the 1,000 held-out reviews. Pretraining logs the sampled-softmax loss for its training batches,
which is lower than the full cross-entropy by construction, so the two logged curves cannot be compared; this can.

    ULMFIT_LIT_HOME=... python experiments/train_vs_heldout.py      # needs the full IMDb (untar_data(URLs.IMDB))

Writes the section `pretrain_train_vs_heldout` of measurements.json; chapter 15's pretraining curve shows it.
"""
import argparse
import json
import math
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ulmfit_lit.awd_lstm import AWD_LSTM, awd_lstm_lm_config, get_language_model, load_pretrained_lm
from ulmfit_lit.data import LMDataLoader
from ulmfit_lit.download import URLs, untar_data
from ulmfit_lit.language_model import pretrained_files
from ulmfit_lit.measure import record
from ulmfit_lit.pretrain import unsup_corpus

ROOT = Path(__file__).resolve().parents[1]


@torch.no_grad()
def full_cross_entropy(model, store, doc_idxs, bs: int, bptt: int) -> tuple[float, int]:
    "Mean full-softmax cross-entropy of `model` over the documents `doc_idxs` read as LM streams, and the tokens scored."
    model.eval(); model.reset()
    total, n = 0., 0
    for x, y in LMDataLoader(store, bs=bs, seq_len=bptt, doc_idxs=doc_idxs):
        logits = model(x)[0]
        total += F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1), reduction='sum').item()
        n += y.numel()
    return total / n, n


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--n-train', type=int, default=1000, help='training reviews to score (drawn at random)')
    p.add_argument('--seed', type=int, default=0, help='seed of the draw of training reviews')
    p.add_argument('--no-record', action='store_true', help='print only; leave measurements.json alone')
    args = p.parse_args()
    card = json.loads((ROOT/'measurements.json').read_text())['pretrain_run2']['card']
    cfg = card['config']
    t0 = time.time()
    store, vocab, train_idx, valid_idx = unsup_corpus(untar_data(URLs.IMDB), cfg['max_vocab'], cfg['n_valid'], cfg['seed'])
    lm = get_language_model(AWD_LSTM, len(vocab), dict(awd_lstm_lm_config, emb_sz=cfg['emb_sz'], n_hid=cfg['n_hid'],
                                                         n_layers=cfg['n_layers']), cfg['drop_mult'])
    load_pretrained_lm(lm, *pretrained_files(name='imdb'), vocab)
    some_train = np.sort(np.random.default_rng(args.seed).choice(train_idx, args.n_train, replace=False))
    valid_loss, valid_tokens = full_cross_entropy(lm, store, valid_idx, cfg['bs'], cfg['bptt'])
    train_loss, train_tokens = full_cross_entropy(lm, store, some_train, cfg['bs'], cfg['bptt'])
    figures = dict(train_loss=train_loss, valid_loss=valid_loss, train_perplexity=math.exp(train_loss),
                   valid_perplexity=math.exp(valid_loss), n_train_docs=int(len(some_train)), n_valid_docs=int(len(valid_idx)),
                   train_tokens=train_tokens, valid_tokens=valid_tokens, seed=args.seed, seconds=round(time.time() - t0))
    print(f"full cross-entropy, shipped model: {args.n_train} training reviews {train_loss:.3f} "
          f"(perplexity {math.exp(train_loss):.1f}); {len(valid_idx)} held-out reviews {valid_loss:.3f} "
          f"(perplexity {math.exp(valid_loss):.1f}); the card says held-out {card['valid_loss']:.3f}")
    if not args.no_record: record(ROOT/'measurements.json', 'pretrain_train_vs_heldout', figures)


if __name__ == '__main__':
    main()
