"""Chapter 04: what is awkward in a notebook: crash safety, bad input, NaN, optimizer equivalence in a real fit,
fine_tune's two phases, printed output, precision on CPU, exports that unpickle no code."""
import os, sys, math, json, signal, subprocess, warnings, pickle
from pathlib import Path
import numpy as np, pytest, torch
from torch import nn
sys.path.insert(0, os.path.dirname(__file__))
from _toys import regression_dls, toy_lm_dls, TinyLM, tiny_splitter, DLs, ListDL
from ulmfit_lit.learner import *

ROOT = Path(__file__).resolve().parents[1]
ONECYCLE = json.loads((ROOT/'tests'/'fixtures'/'onecycle.json').read_text())

def lm_learner(**kw):
    set_seed(0)
    return Learner(toy_lm_dls(), TinyLM(), splitter=tiny_splitter, cbs=[ModelResetter()], quiet=True, **kw)

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
    for l in (a, b): l.fit(1, 1e-2)
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
    assert learn.scaler is None and math.isfinite(learn.recorder.values[-1][1])

class _CPUScaler(Callback):
    "Give the learner a loss scaler on CPU: the path fp16 training takes on a GPU (scaled backward, unscale, step)."
    order = 1
    def before_fit(self, learn): learn.scaler = torch.amp.GradScaler('cpu', init_scale=2.**12)

class _GradNormSpy(Callback):
    "Record the gradients' total norm just before the optimizer step (after GradientClip, order 20)."
    order = 30
    def __init__(self): self.norms = []
    def before_step(self, learn):
        self.norms.append(torch.norm(torch.stack([p.grad.norm() for p in learn.model.parameters() if p.grad is not None])).item())

def _fit_clipped(scaled: bool, clip: bool = True):
    spy = _GradNormSpy()
    learn = lm_learner()
    learn.fit(1, 1e-2, cbs=[spy] + ([GradientClip(0.1)] if clip else []) + ([_CPUScaler()] if scaled else []))
    return torch.cat([p.detach().flatten() for p in learn.model.parameters()]), spy.norms, learn

def test_loss_scaler_and_clipping_see_the_true_gradients():
    "With a GradScaler the loss is scaled by 4096 before backward; GradientClip must unscale first, then clip."
    w_plain, n_plain, _ = _fit_clipped(scaled=False)
    w_scaled, n_scaled, learn = _fit_clipped(scaled=True)
    assert learn.scaler.get_scale() >= 2.**12                       # the scaler was in use through the fit
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

def test_interrupted_write_keeps_old_checkpoint(tmp_path, monkeypatch):
    learn = lm_learner(path=tmp_path)
    learn.save('ck')
    good = {k: v.clone() for k, v in learn.model.state_dict().items()}
    real_save = torch.save
    def broken_save(obj, f, *a, **k):
        f.write(b'half a checkpoint'); raise KeyboardInterrupt   # dies mid-write
    monkeypatch.setattr(torch, 'save', broken_save)
    with torch.no_grad():
        for p in learn.model.parameters(): p.add_(1.)
    with pytest.raises(KeyboardInterrupt): learn.save('ck')
    monkeypatch.setattr(torch, 'save', real_save)
    learn.load('ck')
    assert all(torch.equal(good[k], v) for k, v in learn.model.state_dict().items())
    assert [p.name for p in (tmp_path/'models').iterdir()] == ['ck.pth']

KILL_SCRIPT = r'''
import sys, os, signal
sys.path.insert(0, {tests!r})
from _toys import toy_lm_dls, TinyLM, tiny_splitter
from ulmfit_lit.learner import *
class KillMidEpoch(Callback):
    def after_batch(self, learn):
        if learn.training and learn.epoch == 1 and learn.iter == 5: os.kill(os.getpid(), signal.SIGKILL)
set_seed(0)
learn = Learner(toy_lm_dls(), TinyLM(), splitter=tiny_splitter, path={path!r}, quiet=True,
                cbs=[ModelResetter(), SaveModelCallback(every_epoch=True, with_opt=True), KillMidEpoch()])
learn.fit_one_cycle(3, 1e-2)
'''

def test_run_killed_mid_epoch_leaves_loadable_checkpoint(tmp_path):
    script = KILL_SCRIPT.format(tests=str(ROOT/'tests'), path=str(tmp_path))
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
    register_model_builder('test_tiny_lm', lambda vocab_sz, emb, hid: TinyLM(vocab_sz, emb, hid))
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
