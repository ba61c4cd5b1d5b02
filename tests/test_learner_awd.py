"""Chapter 04 with chapter 03's AWD-LSTM: a tiny one learns a toy language; its real LM and classifier splits give
fastai's per-group lrs, at every one-cycle step, and fastai's freezing pattern."""
import os, sys, math, json
from pathlib import Path
import numpy as np, pytest, torch
sys.path.insert(0, os.path.dirname(__file__))
from _toys import toy_lm_dls, toy_stream, lm_batches, ListDL, DLs
from ulmfit_lit.learner import *
awd = pytest.importorskip('ulmfit_lit.awd_lstm')

ROOT = Path(__file__).resolve().parents[1]
ONECYCLE = json.loads((ROOT/'tests'/'fixtures'/'onecycle.json').read_text())
TINY = dict(awd.awd_lstm_lm_config, emb_sz=16, n_hid=24, n_layers=3)     # 3 LSTM layers -> 4 LM groups

def awd_lm_learner(dls, cfg=TINY, drop_mult=0.1, **kw):
    set_seed(0)
    model = awd.get_language_model(awd.AWD_LSTM, len(dls.vocab), dict(cfg), drop_mult=drop_mult)
    return Learner(dls, model, splitter=awd.awd_lstm_lm_split, moms=(0.8, 0.7, 0.8), quiet=True,
                   cbs=[ModelResetter(), RNNRegularizer(alpha=2., beta=1.), GradientClip(0.1)], **kw)

def test_tiny_awd_lstm_learns_toy_language():
    learn = awd_lm_learner(toy_lm_dls(), cfg=dict(TINY, n_hid=32, n_layers=2), metrics=[accuracy, Perplexity()])
    learn.fit_one_cycle(6, 3e-2)
    train_loss, valid_loss, acc, ppl = learn.recorder.values[-1]
    chance, best = math.log(20), math.log(2)
    assert valid_loss < 0.4 * chance, valid_loss          # far below chance (3.00); the best possible is 0.69
    assert valid_loss > best - 0.05                         # and not better than possible: no leak from x to y

def test_lr_find_on_awd_lstm_plots_and_suggests():
    import matplotlib; matplotlib.use('Agg'); import matplotlib.pyplot as plt
    learn = awd_lm_learner(toy_lm_dls())
    n_figs = len(plt.get_fignums())
    sug = learn.lr_find(num_it=60)
    assert len(plt.get_fignums()) == n_figs + 1
    ax = plt.gcf().axes[0]
    assert ax.get_xscale() == 'log' and 'valley' in ax.get_legend().get_texts()[0].get_text()
    assert 1e-6 < sug.valley < 1
    plt.close('all')

def test_lm_split_one_cycle_slice_matches_fastai_every_step():
    "fastai's fit_one_cycle(1, slice(1e-2/2.6**4, 1e-2)) on an LM learner, 10 batches: lrs of all 4 groups, moms."
    stream = toy_stream(4 * 10 * 5 + 1)
    dls = DLs(lm_batches(stream, bs=4, seq_len=5), lm_batches(stream[:41], bs=4, seq_len=5), [f'w{i}' for i in range(20)])
    assert len(dls.train) == 10
    learn = awd_lm_learner(dls)
    ref = ONECYCLE['awd_lstm_lm_split']
    assert learn.n_groups == ref['n_groups'] == 4
    assert [len(g) for g in learn.layer_groups] == [g['n_params'] for g in ref['groups']]   # tied weight once
    learn.fit_one_cycle(1, slice(1e-2/2.6**4, 1e-2))
    steps = ONECYCLE['lm_learner_fit_one_cycle_1ep_slice']['steps']
    assert len(learn.recorder.group_lrs) == len(steps)
    for st, lrs, mom in zip(steps, learn.recorder.group_lrs, learn.recorder.moms):
        np.testing.assert_allclose(lrs, st['lr'], rtol=1e-4)
        np.testing.assert_allclose(mom, st['mom'], rtol=1e-4)

def trainability(learn):
    return ['trainable' if all(p.requires_grad for p in g) else 'frozen' for g in learn.layer_groups]

def test_lm_split_freezing_matches_fastai():
    learn = awd_lm_learner(toy_lm_dls())
    ref = ONECYCLE['awd_lstm_lm_split']['requires_grad']
    learn.freeze();       assert trainability(learn) == ref['freeze()']
    learn.freeze_to(-2);  assert trainability(learn) == ref['freeze_to(-2)']
    learn.freeze_to(-3);  assert trainability(learn) == ref['freeze_to(-3)']
    learn.unfreeze();     assert trainability(learn) == ref['unfreeze()']

def test_classifier_split_lrs_freezing_and_a_frozen_fit():
    set_seed(0)
    cfg = dict(awd.awd_lstm_clas_config, emb_sz=16, n_hid=24, n_layers=3)
    model = awd.get_text_classifier(awd.AWD_LSTM, 20, 2, seq_len=8, config=cfg)
    g = torch.Generator().manual_seed(0)
    def batch():
        x = torch.randint(2, 20, (4, 16), generator=g); x[:2, :8] = 1        # two rows padded first
        return x, (x == 7).any(1).long()
    dls = DLs(ListDL([batch() for _ in range(4)]), ListDL([batch() for _ in range(2)]), [[f'w{i}' for i in range(20)], ['a', 'b']])
    learn = Learner(dls, model, splitter=awd.awd_lstm_clas_split, quiet=True, metrics=accuracy)
    ref = ONECYCLE['awd_lstm_clas_split']
    assert learn.n_groups == ref['n_groups'] == 5
    assert [len(g) for g in learn.layer_groups] == [g['n_params'] for g in ref['groups']]
    learn.set_hyper('lr', slice(*ref['slice']))
    np.testing.assert_allclose(learn.hyper('lr'), ref['lrs_for_slice'], rtol=1e-12)
    for call in ('freeze()', 'freeze_to(-2)', 'freeze_to(-3)', 'unfreeze()'):
        eval(f'learn.{call}'); assert trainability(learn) == ref['requires_grad'][call], call
    learn.freeze()
    frozen = [p.detach().clone() for p in learn.layer_groups[0]]
    learn.fit_one_cycle(1, 1e-2)
    assert all(torch.equal(a, b) for a, b in zip(frozen, learn.layer_groups[0]))        # frozen stays put
    assert len(learn.recorder.values) == 1 and learn.recorder.values[-1][2] is not None
