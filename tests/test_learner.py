"""ulmfit_lit.learner (chapter 04): what is awkward in a notebook: crash safety, bad input, NaN, optimizer
equivalence in a real fit, fine_tune's two phases, printed output, precision on CPU (and its fallbacks), exports that
unpickle no code; and the loop with chapter 03's AWD-LSTM: fastai's per-group lrs at every step and its freezing."""
import json
import math
import os
import pickle
import signal
import subprocess
import sys
import warnings
from pathlib import Path

import matplotlib
import numpy as np
import pytest
import torch
from torch import nn

matplotlib.use('Agg')   # no window: lr_find draws into a figure we inspect
import matplotlib.pyplot as plt  # noqa: E402

import ulmfit_lit.learner as learner_module
from ulmfit_lit.awd_lstm import (AWD_LSTM, awd_lstm_clas_config, awd_lstm_clas_split, awd_lstm_lm_config,
                                 awd_lstm_lm_split, get_language_model, get_text_classifier)
from ulmfit_lit.learner import (Adam, BatchList, Callback, CancelFitException, DataLoaders, GradientClip, Learner,
                                MixedPrecision, ModelResetter, NonFiniteLossError, Perplexity, PlainAdam,
                                ProgressCallback, RNNRegularizer, SaveModelCallback, TinyLSTMLM, accuracy,
                                cpu_has_native_bf16, load_learner, lr_per_group, record_build, register_model_builder,
                                set_seed, tiny_splitter, toy_lm_dls, valley)
from ulmfit_lit.classifier import text_classifier_learner
from ulmfit_lit.data import TextDataLoaders
from ulmfit_lit.language_model import language_model_learner
from ulmfit_lit.learner import build_model

from _ddp_worker import regression_dls   # the one toy regression set, shared with the DDP worker

ROOT = Path(__file__).resolve().parents[1]
ONECYCLE = json.loads((ROOT/'tests'/'fixtures'/'onecycle.json').read_text())


def lm_learner(**kw):
    set_seed(0)
    return Learner(toy_lm_dls(), TinyLSTMLM(), splitter=tiny_splitter, cbs=[ModelResetter()], quiet=True, **kw)

# ---- optimizer --------------------------------------------------------------------------------------------------
def test_adamw_equals_fastai_adam_through_one_cycle():
    "The whole loop with scheduled lr and momentum, wd and no-wd groups: torch AdamW == fastai's literal Adam step."
    ws = []
    for opt in (Adam, PlainAdam):
        set_seed(0)
        # (ReLU before BN: a bias right before BN has a zero gradient, pure rounding noise that Adam amplifies)
        learn = Learner(regression_dls(), nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.BatchNorm1d(8), nn.Linear(8, 2)),
                        loss_func=nn.MSELoss(), opt_func=opt, quiet=True)
        learn.fit_one_cycle(3, 1e-2)
        ws.append(torch.cat([p.detach().flatten() for p in learn.model.parameters()]))
    assert (ws[0] - ws[1]).abs().max() < 1e-5

def test_adam_follows_fastais_own_trajectory():
    """fastai's Adam itself (tests/fixtures/make_adam_reference.py), 40 steps with lr and mom changing every step, wd on
    one group only: our Adam (torch's AdamW with fastai's defaults) gives the same parameters after every step."""
    r = json.loads((Path(__file__).parent/'fixtures'/'adam_fastai.json').read_text())
    w, b = torch.tensor(r['w0']).requires_grad_(), torch.tensor(r['b0']).requires_grad_()
    x, y = torch.tensor(r['x']), torch.tensor(r['y'])
    opt = Adam([{'params': [w]}, {'params': [b]}], lr=1e-2)
    for g, wd in zip(opt.param_groups, r['wd']): g['weight_decay'] = wd
    for st in r['steps']:
        for g in opt.param_groups: g['lr'], g['betas'] = st['lr'], (st['mom'], g['betas'][1])
        loss = ((x @ w + b - y) ** 2).mean()
        loss.backward(); opt.step(); opt.zero_grad()
        assert torch.allclose(w, torch.tensor(st['w']), atol=1e-6) and torch.allclose(b, torch.tensor(st['b']), atol=1e-6)
    assert not torch.allclose(w, torch.tensor(r['w0']), atol=1e-2)          # it moved: the comparison means something

def test_adam_defaults_are_fastais():
    learn = Learner(regression_dls(), nn.Linear(6, 2), loss_func=nn.MSELoss(), quiet=True)
    learn.create_opt()
    hy = ONECYCLE['lm_learner_fit_one_cycle_2ep_lr1e-2']['other_hypers']
    g = [g for g in learn.opt.param_groups if g['do_wd']][0]
    assert g['weight_decay'] == hy['wd'] and g['betas'] == (0.9, hy['sqr_mom']) and g['eps'] == hy['eps']
    # fastai: no weight decay on biases / norm layers
    assert [g['weight_decay'] for g in learn.opt.param_groups if not g['do_wd']] == [0.]

# ---- discriminative lrs, freezing, fine_tune ----------------------------------------------------------------------
def test_lm_and_classifier_slices():
    for split in ('awd_lstm_lm_split', 'awd_lstm_clas_split'):
        ref = ONECYCLE[split]
        np.testing.assert_allclose(lr_per_group(slice(*ref['slice']), ref['n_groups']), ref['lrs_for_slice'], rtol=1e-12)

def test_freeze_patterns_match_fastai():
    ref = ONECYCLE['awd_lstm_clas_split']['requires_grad']
    model = nn.Sequential(*[nn.Linear(3, 3) for _ in range(5)])
    learn = Learner(None, model, splitter=lambda m: [list(l.parameters()) for l in m], quiet=True)
    for call, want in (('freeze()', ref['freeze()']), ('freeze_to(-2)', ref['freeze_to(-2)']),
                       ('freeze_to(-3)', ref['freeze_to(-3)']), ('unfreeze()', ref['unfreeze()'])):
        eval(f'learn.{call}')
        got = ['trainable' if all(p.requires_grad for p in g) else 'frozen' for g in learn.layer_groups]
        assert got == want, call

def test_fine_tune_phases():
    learn = lm_learner()
    seen = []
    class Spy(Callback):
        def before_fit(self, learn): seen.append(([p.requires_grad for p in learn.layer_groups[0]][0], []))
        def before_step(self, learn): seen[-1][1].append(learn.hyper('lr'))
    learn.fine_tune(1, base_lr=2e-3, cbs=[Spy()])
    (frozen0, lrs0), (frozen1, lrs1) = seen
    assert frozen0 is False and frozen1 is True
    peak0 = max(l[-1] for l in lrs0); peak1 = np.max(np.array(lrs1), axis=0)
    assert math.isclose(peak0, 2e-3, rel_tol=0.05)                    # slice(base_lr), pct_start 0.99
    np.testing.assert_allclose(peak1, [1e-3/100, 1e-3], rtol=0.05)     # slice(base_lr/2/100, base_lr/2)

def test_bad_lr_inputs():
    with pytest.raises(ValueError, match='3 layer groups'): lr_per_group([1e-3, 1e-2], 3)
    with pytest.raises(ValueError, match='needs a stop'): lr_per_group(slice(1e-3, None), 3)
    learn = lm_learner()
    with pytest.raises(ValueError, match='n_epoch'): learn.fit(-1)
    with pytest.raises(ValueError, match='Unknown hyper'): learn.set_hyper('momentum', 0.9)
    with pytest.raises(TypeError, match='nn.Module'): Learner(None, lambda x: x)
    with pytest.raises(TypeError, match='metric'): Learner(None, nn.Linear(2, 2), metrics=[3])
    with pytest.raises(ValueError, match='needs data'): Learner(None, nn.Linear(2, 2)).fit(1)

# ---- training and output ------------------------------------------------------------------------------------------
def test_seeded_runs_identical():
    runs = []
    for _ in range(2):
        learn = lm_learner(); learn.fit(1, 1e-2); runs.append(learn.recorder.raw_losses)
    assert runs[0] == runs[1] and len(runs[0]) == len(toy_lm_dls().train)

def test_tiny_lm_learns_toy_language_with_all_tricks():
    learn = lm_learner(metrics=[accuracy, Perplexity()])
    learn.add_cb(RNNRegularizer(alpha=2., beta=1.)); learn.add_cb(GradientClip(0.5))
    learn.fit_one_cycle(3, 1e-2, moms=(0.8, 0.7, 0.8))
    train_loss, valid_loss, acc, ppl = learn.recorder.values[-1]
    assert valid_loss < 0.5 * math.log(20) and math.isclose(ppl, math.exp(valid_loss), rel_tol=1e-9)

def test_rnn_regularizer_changes_gradient_not_reported_loss():
    a, b = lm_learner(), lm_learner()
    b.add_cb(RNNRegularizer(alpha=10., beta=10.))
    for l in (a, b): set_seed(0); l.fit(1, 1e-2)                     # the same dropout masks in both fits
    assert a.recorder.raw_losses[0] == b.recorder.raw_losses[0]       # same first reported loss
    assert a.recorder.raw_losses[-1] != b.recorder.raw_losses[-1]     # different training

def test_table_printed_in_terminal_and_quiet_silences(capsys):
    learn = lm_learner(metrics=accuracy)
    learn.quiet = False
    learn.fit(2, 1e-2)
    out = capsys.readouterr().out.splitlines()
    assert out[0].split() == ['epoch', 'train_loss', 'valid_loss', 'accuracy', 'time']
    assert [l.split()[0] for l in out[1:]] == ['0', '1']
    row = out[1].split()
    assert all(len(v.split('.')[1]) == 6 for v in row[1:4]) and len(row[4]) == 5 and row[4][2] == ':'
    learn.quiet = True; learn.fit(1, 1e-2)
    assert capsys.readouterr().out == ''

def test_nan_loss_stops_with_clear_message_and_keeps_weights_finite():
    learn = lm_learner()
    class PoisonAt3(Callback):
        def after_pred(self, learn):
            if learn.training and learn.iter == 3: learn.pred = learn.pred * float('nan')
    with pytest.raises(NonFiniteLossError, match=r'batch 3.*Training stopped'):
        learn.fit(1, 1e-3, cbs=[PoisonAt3()])
    assert all(torch.isfinite(p).all() for p in learn.model.parameters())
    assert not any(isinstance(c, PoisonAt3) for c in learn.cbs)       # fit-only callbacks removed even on error

def test_cancel_exceptions():
    learn = lm_learner()
    class StopAt2(Callback):
        order = 100                                                   # after the Recorder has logged the batch
        def after_batch(self, learn):
            if learn.training and learn.iter == 2: raise CancelFitException()
    learn.fit(3, 1e-3, cbs=[StopAt2()])
    assert len(learn.recorder.raw_losses) == 3 and learn.recorder.values == []

def test_lr_find_restores_weights_and_suggests():
    learn = lm_learner()
    w = [p.detach().clone() for p in learn.model.parameters()]
    sug = learn.lr_find(num_it=40, show_plot=False)
    assert all(torch.equal(a, b) for a, b in zip(w, learn.model.parameters()))
    assert 1e-7 < sug.valley < 10 and len(learn.recorder.lrs) <= 40

def test_lr_find_schedule_step_by_step():
    "Every step's lr is fastai's start*(end/start)**(i/num_it); the suggestion is the valley of the trimmed curve."
    learn = lm_learner()
    sug = learn.lr_find(start_lr=1e-6, end_lr=1., num_it=30, stop_div=False, show_plot=False)
    rec = learn.recorder
    assert len(rec.lrs) == 30                                   # stop_div=False: all num_it steps, then stop
    for i, lr in enumerate(rec.lrs): assert math.isclose(lr, 1e-6 * (1. / 1e-6) ** (i / 30), rel_tol=1e-9), (i, lr)
    assert sug.valley == valley(rec.lrs[3:-5], rec.losses[3:-5])[0]      # fastai skips num_it//10 first, 5 last
    assert rec.lrs[3] <= sug.valley <= rec.lrs[-6]

def test_valley_matches_fastai_rule():
    losses = [5, 4, 3, 2.5, 2, 1.5, 1.4, 3, 9]
    lrs = [10**i for i in range(-9, 0)]
    # longest decreasing run is indices 0..6 (lds[6]=7): start=6-7=-1, sections=7/3 -> idx=-1+2+1=2
    assert valley(lrs, losses) == (lrs[2], losses[2])

def test_precision_on_cpu():
    learn = lm_learner().to_bf16()
    learn.fit(1, 1e-2)
    assert math.isfinite(learn.recorder.values[-1][1])
    learn = lm_learner().to_fp16()
    with pytest.warns(UserWarning, match='CUDA'): learn.fit(1, 1e-2)
    assert learn.mixed_precision.scaler is None and math.isfinite(learn.recorder.values[-1][1])

def _fit_recording_dtypes(learn, n_epoch=1, lr=1e-2):
    "Fit `learn`, recording the dtype of the LSTM's and the head's outputs at each training forward pass; and warnings."
    seen = []
    hooks = [m.register_forward_hook(lambda mod, i, o, name=name: seen.append((name, (o[0] if isinstance(o, tuple) else o).dtype)))
             for name, m in (('rnn', learn.model.rnn), ('head', learn.model.head))]
    try:
        with warnings.catch_warnings(record=True) as w:
            warnings.simplefilter('always')
            learn.fit(n_epoch, lr)
    finally:
        for h in hooks: h.remove()
    return seen, [str(x.message) for x in w if issubclass(x.category, UserWarning)]

@pytest.mark.parametrize('native', [False, True])
def test_bf16_on_cpu_without_native_support_trains_in_float32(monkeypatch, native):
    """`to_bf16()` on a CPU without native bfloat16 says so in one line and trains in float32 (no crash, no slow
    emulated bf16 LSTM); on one with it, the forward pass really runs in bfloat16. `to_fp16()` on CPU: float32."""
    if native and not cpu_has_native_bf16():
        pytest.skip("this CPU has no native bfloat16: forcing the check True would ask oneDNN for a bf16 LSTM it lacks")
    monkeypatch.setattr(learner_module, 'cpu_has_native_bf16', lambda: native)   # looked up by MixedPrecision.before_fit
    learn = lm_learner().to_bf16()
    seen, msgs = _fit_recording_dtypes(learn)
    n_batches = len(learn.dls.train) + len(learn.dls.valid)
    assert len(seen) == 2 * n_batches
    if native:
        assert {d for _, d in seen} == {torch.bfloat16} and learn.mixed_precision.active
        assert not [m for m in msgs if 'bfloat16' in m]
    else:
        assert {d for _, d in seen} == {torch.float32} and not learn.mixed_precision.active
        bf16_msgs = [m for m in msgs if 'bfloat16' in m]
        assert len(bf16_msgs) == 1 and '\n' not in bf16_msgs[0] and 'float32' in bf16_msgs[0]   # one clear line
    assert learn.recorder.values[-1][1] < math.log(20)                 # and it trained: below chance
    # get_preds goes through the same precision: float32 here too when the CPU has no native bf16
    dtypes = []
    h = learn.model.head.register_forward_hook(lambda m, i, o: dtypes.append(o.dtype))
    try: learn.get_preds()
    finally: h.remove()
    assert set(dtypes) == {torch.bfloat16 if native else torch.float32}
    # to_fp16 on a CPU: float16 needs CUDA, so a warning and float32, whatever the bf16 support
    fp16 = lm_learner().to_fp16()
    seen, msgs = _fit_recording_dtypes(fp16)
    assert {d for _, d in seen} == {torch.float32} and not fp16.mixed_precision.active
    assert len([m for m in msgs if 'CUDA' in m]) == 1

class _GradNormSpy(Callback):
    "Record the gradients' total norm just before the optimizer step (after GradientClip, order 20; before the scaler's step)."
    order = 25
    def __init__(self): self.norms = []
    def before_step(self, learn):
        self.norms.append(torch.norm(torch.stack([p.grad.norm() for p in learn.model.parameters() if p.grad is not None])).item())

def _fit_clipped(scaled: bool, clip: bool = True):
    "A fit with a gradient spy, optionally clipping, optionally through a loss scaler on CPU (the path fp16 takes on a GPU)."
    spy = _GradNormSpy()
    learn = lm_learner()
    scaler = MixedPrecision(dtype=None, scaler=torch.amp.GradScaler('cpu', init_scale=2.**12)) if scaled else None
    learn.fit(1, 1e-2, cbs=[spy] + ([GradientClip(0.1)] if clip else []) + ([scaler] if scaled else []))
    return torch.cat([p.detach().flatten() for p in learn.model.parameters()]), spy.norms, scaler

def test_loss_scaler_and_clipping_see_the_true_gradients():
    "With a GradScaler the loss is scaled by 4096 before backward; GradientClip must unscale first, then clip."
    w_plain, n_plain, _ = _fit_clipped(scaled=False)
    w_scaled, n_scaled, scaler = _fit_clipped(scaled=True)
    assert scaler.scaler.get_scale() >= 2.**12                      # the scaler was in use through the fit
    _, n_free, _ = _fit_clipped(scaled=False, clip=False)
    assert max(n_free) > 0.5                                        # without clipping the gradients are bigger than 0.1...
    assert max(n_scaled) <= 0.1 + 1e-4 and max(n_plain) <= 0.1 + 1e-4   # ...and the clip holds them to 0.1 either way
    # power-of-two scaling is exact, so scaled training equals unscaled training; clipping scaled gradients would not
    torch.testing.assert_close(w_scaled, w_plain, rtol=1e-5, atol=1e-6)

# ---- files ------------------------------------------------------------------------------------------------------
def test_save_load_roundtrip_with_optimizer(tmp_path):
    learn = lm_learner(path=tmp_path)
    learn.fit(1, 1e-2)
    learn.save('a')
    st = {k: v.clone() for k, v in learn.opt.state_dict()['state'][0].items() if torch.is_tensor(v)}
    learn.fit(1, 1e-2)
    learn.load('a')
    for k, v in st.items(): assert torch.equal(learn.opt.state_dict()['state'][0][k], v)
    assert not list((tmp_path/'models').glob('.*tmp'))

KILL_SCRIPT = r'''
import os, signal
from ulmfit_lit.learner import *
class KillMidEpoch(Callback):
    def after_batch(self, learn):
        if learn.training and learn.epoch == 1 and learn.iter == 5: os.kill(os.getpid(), signal.SIGKILL)
set_seed(0)
learn = Learner(toy_lm_dls(), TinyLSTMLM(), splitter=tiny_splitter, path={path!r}, quiet=True,
                cbs=[ModelResetter(), SaveModelCallback(every_epoch=True, with_opt=True), KillMidEpoch()])
learn.fit_one_cycle(3, 1e-2)
'''

def test_run_killed_mid_epoch_leaves_loadable_checkpoint(tmp_path):
    script = KILL_SCRIPT.format(path=str(tmp_path))
    r = subprocess.run([sys.executable, '-c', script], env=dict(os.environ, PYTHONPATH=str(ROOT)), capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == -signal.SIGKILL, r.stderr[-3000:]
    files = sorted(p.name for p in (tmp_path/'models').iterdir())
    assert files == ['model_0.pth'], files
    learn = lm_learner(path=tmp_path)
    learn.load('model_0')
    learn.fit(1, 1e-3)                                                # and training can go on from it

def test_load_rejects_non_checkpoints_and_pickled_code(tmp_path):
    learn = lm_learner(path=tmp_path)
    (tmp_path/'models').mkdir()
    torch.save(torch.zeros(3), tmp_path/'models'/'t.pth')
    with pytest.raises(ValueError, match='not a Learner checkpoint'): learn.load('t')
    marker = tmp_path/'pwned'
    class Evil:
        def __reduce__(self): return (os.system, (f'touch {marker}',))
    with open(tmp_path/'models'/'evil.pth', 'wb') as f: pickle.dump({'model': Evil()}, f, protocol=2)
    with pytest.raises(pickle.UnpicklingError): learn.load('evil')   # weights_only=True refuses code...
    assert not marker.exists()                                        # ...and the payload never ran
    with open(tmp_path/'models'/'evil.pth', 'rb') as f: pickle.load(f)   # the control: a plain unpickle runs it
    assert marker.exists()
    with pytest.raises(FileNotFoundError, match='t.pth'): learn.load('missing')

def test_export_and_load_learner(tmp_path):
    register_model_builder('test_tiny_lm', lambda vocab_sz, emb, hid: TinyLSTMLM(vocab_sz, emb, hid))
    learn = lm_learner(path=tmp_path)
    with pytest.raises(ValueError, match='record_build'): learn.export()
    record_build(learn.model, 'test_tiny_lm', vocab_sz=20, emb=16, hid=32)
    learn.fit(1, 1e-2)
    f = learn.export()
    state = torch.load(f, weights_only=True)                          # plain tensors, strings and dicts only
    assert state['builder'] == 'test_tiny_lm'
    inf = load_learner(f)
    x = toy_lm_dls().valid.batches[0][0]
    learn.model.eval(); learn.model.reset(); inf.model.reset()
    with torch.no_grad(): assert torch.equal(learn.model(x)[0], inf.model(x)[0])
    assert inf.dls.vocab == learn.dls.vocab
    with pytest.raises(TypeError, match='JSON'): record_build(nn.Linear(1, 1), 'x', fn=len)
    state['builder'] = 'nobody'; torch.save(state, tmp_path/'bad.pth')
    with pytest.raises(KeyError, match='nobody'): load_learner(tmp_path/'bad.pth')

def test_save_model_callback_keeps_and_reloads_best(tmp_path):
    learn = lm_learner(path=tmp_path)
    every = SaveModelCallback(every_epoch=True, fname='ep')
    learn.fit(4, 3e-2, cbs=[every, SaveModelCallback(monitor='valid_loss')])
    vals = [v[1] for v in learn.recorder.values]
    best = torch.load(tmp_path/'models'/'model.pth', weights_only=True)['model']
    at_best = torch.load(tmp_path/'models'/f'ep_{int(np.argmin(vals))}.pth', weights_only=True)['model']
    assert all(torch.equal(best[k], v) for k, v in at_best.items())                      # saved at the best epoch
    assert all(torch.equal(best[k], v) for k, v in learn.model.state_dict().items())     # and reloaded at the end
    learn.remove_cb(every)
    with pytest.raises(ValueError, match='monitor'): learn.fit(1, 1e-3, cbs=SaveModelCallback(monitor='acc'))

def test_progress_lines_in_a_log_file(capsys, monkeypatch):
    "With stderr not a terminal (a log file), a long epoch prints a plain progress line now and then, not nothing."
    monkeypatch.setattr(ProgressCallback, 'log_every', 0.)          # every time the bar would be drawn
    learn = lm_learner(); learn.quiet = False
    learn.fit(1, 1e-3)
    err = capsys.readouterr().err
    n = len(learn.dls.train)
    assert f'train 100.00% [{n}/{n}' in err and 'valid 100.00%' in err
    monkeypatch.setattr(ProgressCallback, 'log_every', 1e9)         # the default minute is never reached here
    learn.fit(1, 1e-3)
    assert 'train ' not in capsys.readouterr().err

# ---- with chapter 03's AWD-LSTM: a tiny one learns the toy language; its real LM and classifier splits give fastai's
# ---- per-group lrs, at every one-cycle step, and fastai's freezing pattern
TINY = dict(awd_lstm_lm_config, emb_sz=16, n_hid=24, n_layers=3)     # 3 LSTM layers -> 4 LM groups

def awd_lm_learner(dls, cfg=TINY, drop_mult=0.1, **kw):
    set_seed(0)
    model = get_language_model(AWD_LSTM, len(dls.vocab), dict(cfg), drop_mult=drop_mult)
    return Learner(dls, model, splitter=awd_lstm_lm_split, moms=(0.8, 0.7, 0.8), quiet=True,
                   cbs=[ModelResetter(), RNNRegularizer(alpha=2., beta=1.), GradientClip(0.1)], **kw)

def test_tiny_awd_lstm_learns_toy_language():
    learn = awd_lm_learner(toy_lm_dls(), cfg=dict(TINY, n_hid=32, n_layers=2), metrics=[accuracy, Perplexity()])
    learn.fit_one_cycle(6, 3e-2)
    train_loss, valid_loss, acc, ppl = learn.recorder.values[-1]
    chance, best = math.log(20), math.log(2)
    assert valid_loss < 0.4 * chance, valid_loss          # far below chance (3.00); the best possible is 0.69
    assert valid_loss > best - 0.05                         # and not better than possible: no leak from x to y

def test_lr_find_on_awd_lstm_plots_and_suggests():
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
    dls = toy_lm_dls(bs=4, seq_len=5, n_train=4 * 10 * 5 + 1, n_valid=41)
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
    cfg = dict(awd_lstm_clas_config, emb_sz=16, n_hid=24, n_layers=3)
    model = get_text_classifier(AWD_LSTM, 20, 2, seq_len=8, config=cfg)
    g = torch.Generator().manual_seed(0)
    def batch():
        x = torch.randint(2, 20, (4, 16), generator=g); x[:2, :8] = 1        # two rows padded first
        return x, (x == 7).any(1).long()
    dls = DataLoaders(BatchList([batch() for _ in range(4)]), BatchList([batch() for _ in range(2)]),
                      vocab=[[f'w{i}' for i in range(20)], ['a', 'b']])
    learn = Learner(dls, model, splitter=awd_lstm_clas_split, quiet=True, metrics=accuracy)
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


SMALL = dict(emb_sz=32, n_hid=64, n_layers=2)


@pytest.fixture(scope='module')
def text_dls(tmp_path_factory, sample_df):
    "LM and classifier loaders on 60 + 60 reviews of the sample, with a home of the module's own while it runs."
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv('ULMFIT_LIT_HOME', str(tmp_path_factory.mktemp('learner_text_home')))
        df = sample_df.groupby('is_valid').head(60).reset_index(drop=True)
        dls_lm = TextDataLoaders.from_df(df, text_col='text', is_lm=True, valid_col='is_valid', bs=8)
        dls = TextDataLoaders.from_df(df, text_col='text', label_col='label', valid_col='is_valid',
                                      text_vocab=dls_lm.vocab, bs=8)
        yield dls_lm, dls


def test_perplexity_of_a_huge_loss_is_inf():
    m = Perplexity(); m.total, m.count = 1000., 1
    assert m.value == float('inf')
    m.total = 2.
    assert m.value == pytest.approx(math.exp(2.))


def test_to_fp32_after_bf16_stops_autocast(text_dls):
    _, dls = text_dls
    learn = text_classifier_learner(dls, AWD_LSTM, config=dict(awd_lstm_clas_config, **SMALL), pretrained=False,
                                    metrics=accuracy, quiet=True).to_bf16()
    learn.fit(1, 1e-3)
    assert learn.mixed_precision.dtype == torch.bfloat16
    learn.to_fp32()
    assert not hasattr(learn, 'mixed_precision') or learn.mixed_precision is None
    preds, _ = learn.get_preds()
    fresh = text_classifier_learner(dls, AWD_LSTM, config=dict(awd_lstm_clas_config, **SMALL), pretrained=False, quiet=True)
    fresh.model.load_state_dict(learn.model.state_dict())
    plain, _ = fresh.get_preds()                       # the same weights, never autocast
    assert torch.allclose(preds, plain, atol=1e-6), (preds - plain).abs().max()


def test_model_goes_to_the_data_device_when_the_learner_is_built(text_dls):
    _, dls = text_dls
    dls.to('meta')                                   # a device with no data: shows placement without a GPU
    try:
        learn = text_classifier_learner(dls, AWD_LSTM, config=dict(awd_lstm_clas_config, **SMALL), pretrained=False,
                                        quiet=True)
        assert {p.device.type for p in learn.model.parameters()} == {'meta'}
    finally: dls.to('cpu')


def test_save_model_callback_never_restores_a_file_from_an_earlier_run(text_dls, tmp_path):
    _, dls = text_dls
    learn = text_classifier_learner(dls, AWD_LSTM, config=dict(awd_lstm_clas_config, **SMALL), pretrained=False,
                                    metrics=accuracy, path=tmp_path, quiet=True)
    stale = {k: torch.zeros_like(v) for k, v in learn.model.state_dict().items()}
    (tmp_path/'models').mkdir()
    torch.save({'model': stale}, tmp_path/'models'/'model.pth')       # left by an earlier run
    # a run whose monitor never counts as an improvement saves nothing...
    learn.fit(1, 1e-3, cbs=[SaveModelCallback(comp=lambda new, best: False)])
    # ...so the model keeps what it trained to, and is not replaced by the stale zeros
    assert any(v.abs().sum() > 0 for v in learn.model.state_dict().values() if v.dtype.is_floating_point)


def test_load_learner_needs_no_later_chapter_imported(text_dls, tmp_path):
    "The training loop's `load_learner` imports the module the export file names, never `ulmfit_lit.all` (no circle)."
    dls_lm, _ = text_dls
    learn = language_model_learner(dls_lm, AWD_LSTM, config=dict(awd_lstm_lm_config, **SMALL), pretrained=False,
                                   path=tmp_path, quiet=True)
    f = learn.export('lm.pth')
    script = (f"import sys\nfrom ulmfit_lit.learner import load_learner\nl = load_learner({str(f)!r})\n"
              "assert 'ulmfit_lit.all' not in sys.modules and 'ulmfit_lit.language_model' in sys.modules\n"
              "print(type(l.model).__name__, l.model.build_record['builder'])")
    r = subprocess.run([sys.executable, '-c', script], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.split()[1] == 'awd_lstm_lm'
    # a file naming a module outside this package does not get it imported
    with pytest.raises(KeyError, match='No model builder named'): build_model('nope', {}, 'antigravity')
    assert 'antigravity' not in sys.modules
