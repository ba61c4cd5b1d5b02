"""ulmfit_lit.checkpoint (appendix D): a fit killed (SIGKILL) in the middle of an epoch goes on, in a new process,
from its last `FitCheckpoint` to the very weights and epoch table of a fit that was never interrupted."""
import json
import os
import signal
import subprocess
import sys

import torch
import pytest
from ulmfit_lit.awd_lstm import AWD_LSTM, awd_lstm_lm_config
from ulmfit_lit.checkpoint import FitCheckpoint
from ulmfit_lit.data import TextDataLoaders
from ulmfit_lit.language_model import language_model_learner
from ulmfit_lit.learner import Callback, set_seed

RUN = r'''
import json, os, signal, sys
import torch
from ulmfit_lit.checkpoint import FitCheckpoint
from ulmfit_lit.learner import Callback, Learner, ModelResetter, TinyLSTMLM, set_seed, tiny_splitter, toy_lm_dls
mode, path = sys.argv[1], sys.argv[2]
class KillMidEpoch(Callback):
    order = 100                                  # after the checkpoint of this batch was written
    def after_batch(self, learn):
        if learn.training and learn.epoch == 1 and learn.iter == 5: os.kill(os.getpid(), signal.SIGKILL)
set_seed(1 if mode == 'resume' else 0)           # a resumed process starts from other weights and random numbers
learn = Learner(toy_lm_dls(), TinyLSTMLM(), splitter=tiny_splitter, cbs=[ModelResetter()], path=path, quiet=True)
cbs = {'whole': [], 'killed': [FitCheckpoint('progress', every=0), KillMidEpoch()],
       'resume': [FitCheckpoint('progress')]}[mode]
learn.fit_one_cycle(3, 1e-2, cbs=cbs)
torch.save(learn.model.state_dict(), os.path.join(path, f'{mode}.pth'))
print(json.dumps(dict(values=learn.recorder.values, losses=learn.recorder.raw_losses)))
'''


def run(mode, path):
    env = dict(os.environ, OMP_NUM_THREADS='1')
    return subprocess.run([sys.executable, '-c', RUN, mode, str(path)], env=env, capture_output=True, text=True,
                          timeout=300)


def test_fit_killed_mid_epoch_resumes_bit_for_bit(tmp_path):
    whole = run('whole', tmp_path)
    assert whole.returncode == 0, whole.stderr[-3000:]
    killed = run('killed', tmp_path)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]
    ck = tmp_path/'models'/'progress.pth'
    state = torch.load(ck, weights_only=True)
    assert (state['epoch'], state['next_iter']) == (1, 6)             # saved after the last batch before the kill
    assert [p.name for p in ck.parent.iterdir()] == ['progress.pth']   # no temporary file left by the kill
    resumed = run('resume', tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    ref, got = json.loads(whole.stdout), json.loads(resumed.stdout)
    assert got['values'] == ref['values'] and len(ref['values']) == 3   # the whole epoch table, epoch 0 included
    n = len(ref['losses'])
    assert got['losses'] == ref['losses'][n - len(got['losses']):] and len(got['losses']) < n   # only what was left
    w_ref, w_got = (torch.load(tmp_path/f'{m}.pth', weights_only=True) for m in ('whole', 'resume'))
    assert all(torch.equal(w_ref[k], w_got[k]) for k in w_ref)
    assert not ck.exists()                                            # a finished fit leaves nothing to resume


SMALL = dict(emb_sz=32, n_hid=64, n_layers=2)


class _KillAt(Callback):
    "Stands in for a kill: stops the fit abruptly after training batch `n` of epoch `epoch`."
    order = 100
    def __init__(self, epoch, n): self.epoch, self.n = epoch, n
    def after_batch(self, learn):
        if learn.training and learn.epoch == self.epoch and learn.iter == self.n: raise KeyboardInterrupt


def test_lm_fit_killed_mid_epoch_resumes_with_the_same_shuffled_batches(home, sample_df, tmp_path):
    "An LM whose loader reshuffles every epoch, killed in epoch 2: a new learner resumes to the very same weights."
    df = sample_df.groupby('is_valid').head(120).reset_index(drop=True).head(40)
    def learner(seed):
        set_seed(seed)          # a new process would start from other seeds: the checkpoint must restore them all
        dls = TextDataLoaders.from_df(df, text_col='text', is_lm=True, valid_pct=0.25, seed=0, bs=8, seq_len=16)
        return language_model_learner(dls, AWD_LSTM, config=dict(awd_lstm_lm_config, **SMALL), pretrained=False,
                                      path=tmp_path, quiet=True)
    learner(0)                  # the first call tokenizes and caches the texts; every later call reads the cache
    whole = learner(0)
    assert whole.dls.train.shuffle and len(whole.dls.train) > 10
    whole.fit_one_cycle(3, 1e-2)
    killed = learner(0)
    with pytest.raises(KeyboardInterrupt):
        killed.fit_one_cycle(3, 1e-2, cbs=[FitCheckpoint('lm_progress', every=0), _KillAt(epoch=1, n=7)])
    resumed = learner(1)
    resumed.fit_one_cycle(3, 1e-2, cbs=FitCheckpoint('lm_progress'))
    for a, b in zip(whole.model.parameters(), resumed.model.parameters()): assert torch.equal(a, b)
    assert resumed.recorder.values == whole.recorder.values
    assert not resumed.model_file('lm_progress').exists()
    # without the loader's epoch state the resumed epoch would read other batches: the weights would differ
    other = learner(0)
    with pytest.raises(KeyboardInterrupt):
        other.fit_one_cycle(3, 1e-2, cbs=[FitCheckpoint('lm_other', every=0), _KillAt(epoch=1, n=7)])
    state = torch.load(other.model_file('lm_other'), weights_only=True)
    state['epoch_rng'] = None
    torch.save(state, other.model_file('lm_other'))
    again = learner(1)
    again.fit_one_cycle(3, 1e-2, cbs=FitCheckpoint('lm_other'))
    assert not all(torch.equal(a, b) for a, b in zip(whole.model.parameters(), again.model.parameters()))
