"Run by torchrun in tests/test_distributed.py: a tiny AWD-LSTM language model trained under learn.distrib_ctx()."
import os
import sys

import torch

from ulmfit_lit.awd_lstm import AWD_LSTM, awd_lstm_lm_config, get_language_model
from ulmfit_lit.data import LMDataLoader, TextDataLoaders
from ulmfit_lit.learner import Learner, ModelResetter, accuracy, set_seed


def lm_learner(path):
    "The same tiny LM and data in every process: bs=8 streams of 10 tokens, no dropout, seeded shuffles."
    g = torch.Generator().manual_seed(0)
    docs = [torch.randint(2, 30, (int(n),), generator=g).numpy() for n in torch.randint(20, 60, (60,), generator=g)]
    train = LMDataLoader(docs[:50], bs=8, seq_len=10, shuffle=True, seed=0)
    valid = LMDataLoader(docs[50:], bs=8, seq_len=10)
    dls = TextDataLoaders(train, valid, [str(i) for i in range(30)], device='cpu')
    set_seed(0)
    model = get_language_model(AWD_LSTM, 30, dict(awd_lstm_lm_config, emb_sz=16, n_hid=24, n_layers=2), drop_mult=0.)
    return Learner(dls, model, cbs=[ModelResetter()], metrics=accuracy, path=path, quiet=True)


if __name__ == '__main__':
    out = sys.argv[1]
    learn = lm_learner(out)
    with learn.distrib_ctx():
        learn.fit(2, 1e-2)
        streams = []                                   # each stream's tokens as this rank reads them, batch after batch
        for x, y in learn.dls.train:                   # (after fit: a pass draws the next epoch's shuffle)
            assert x.shape[0] == 4                     # 8 streams shared by 2 processes
            streams.append(torch.cat([x, y[:, -1:]], 1))
    rank = int(os.environ['RANK'])
    torch.save(dict(weights={k: v.detach().clone() for k, v in learn.model.state_dict().items()},
                    values=learn.recorder.values, streams=streams), os.path.join(out, f'lm_rank{rank}.pt'))
