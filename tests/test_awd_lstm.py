"""ulmfit_lit.awd_lstm (chapter 03): bad input, crash safety and integration checks (more parity checks live in
nbs/03_awd_lstm): checkpoints that do not fit, the vocab pickle, training behaviour, fastai's random draws."""
import json
import pickle
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from ulmfit_lit.awd_lstm import (AWD_LSTM, WeightDropout, _packed, awd_lstm_clas_split, awd_lstm_lm_split,
                                 check_state_dict, get_language_model, get_text_classifier, load_itos,
                                 load_pretrained_lm, match_embeds)
import copy
from torch import nn
from ulmfit_lit.awd_lstm import SigmoidRange, awd_lstm_clas_config, sigmoid_range

FX = Path(__file__).parent / 'fixtures' / 'awd_tiny'
CFG = json.loads((FX / 'config.json').read_text())


def tiny_lm(vocab=CFG['vocab'], **kw):
    return get_language_model(AWD_LSTM, vocab, config=CFG['lm_config'], **kw)


def tiny_clas(vocab=CFG['vocab'], **kw):
    return get_text_classifier(AWD_LSTM, vocab, 2, config=CFG['clas_config'], **kw)


def ref(name):
    return torch.from_numpy(np.load(FX / f'{name}.npy'))


# --- checkpoints that do not fit --------------------------------------------------------------------------------

def test_wrong_size_names_key_and_both_sizes():
    sd = torch.load(FX / 'lm_state.pth', weights_only=True)
    model = tiny_lm(vocab=40)
    with pytest.raises(RuntimeError) as e: model.load_state_dict(sd)
    msg = str(e.value)
    assert "'0.encoder.weight'" in msg and '(50, 16)' in msg and '(40, 16)' in msg
    assert 'match_embeds' in msg   # says how to fix it


def test_wrong_hidden_size_in_classifier():
    sd = torch.load(FX / 'clas_state.pth', weights_only=True)
    model = get_text_classifier(AWD_LSTM, 50, 2, config=dict(CFG['clas_config'], n_hid=32))
    with pytest.raises(RuntimeError) as e: model.load_state_dict(sd)
    msg = str(e.value)
    assert "'0.module.rnns.0.weight_hh_l0_raw'" in msg and '(96, 24)' in msg and '(128, 32)' in msg


def test_missing_key_names_key_and_size():
    sd = torch.load(FX / 'lm_state.pth', weights_only=True)
    del sd['0.rnns.1.module.bias_ih_l0']
    with pytest.raises(RuntimeError) as e: tiny_lm().load_state_dict(sd)
    assert "missing key '0.rnns.1.module.bias_ih_l0'" in str(e.value) and '(96,)' in str(e.value)


def test_old_fastai_keys_are_explained():
    sd = torch.load(FX / 'wt103style_lm.pth', weights_only=True)
    with pytest.raises(RuntimeError, match='clean_raw_keys'): tiny_lm().load_state_dict(sd)


def test_non_strict_load_still_possible():
    sd = torch.load(FX / 'lm_state.pth', weights_only=True)
    del sd['1.decoder.bias']
    res = tiny_lm().load_state_dict(sd, strict=False)
    assert res.missing_keys == ['1.decoder.bias']


def test_own_checkpoint_round_trip(tmp_path):
    m = tiny_lm()
    torch.save(m.state_dict(), tmp_path / 'lm.pth')
    m2 = tiny_lm()
    m2.load_state_dict(torch.load(tmp_path / 'lm.pth', weights_only=True))
    m.eval(); m2.eval(); m.reset(); m2.reset()
    x = ref('lm_input')
    with torch.no_grad(): assert torch.equal(m(x)[0], m2(x)[0])
    assert m2[1].decoder.weight is m2[0].encoder.weight     # still tied after loading


# --- the pretrained checkpoint and its vocab pickle -------------------------------------------------------------

class _Boom:
    "A pickled object whose loading touches the file `marker`: proof that unpickling ran code."
    def __init__(self, marker: Path): self.marker = marker
    def __reduce__(self): return (Path.touch, (self.marker,))


def test_vocab_pickle_cannot_run_code(tmp_path):
    marker = tmp_path/'payload_ran'
    bad = tmp_path / 'itos.pkl'
    bad.write_bytes(pickle.dumps(['xxunk', _Boom(marker)]))
    with pytest.raises(ValueError, match='not a plain vocab pickle'): load_itos(bad)
    assert not marker.exists()                                   # refused before anything ran
    pickle.loads(bad.read_bytes())                               # the control: a plain pickle.load runs the payload
    assert marker.exists()


def test_vocab_pickle_must_be_strings(tmp_path):
    bad = tmp_path / 'itos.pkl'
    bad.write_bytes(pickle.dumps(['a', 2, 'b']))
    with pytest.raises(ValueError, match='list of strings'): load_itos(bad)


def test_load_pretrained_with_optimizer_state(tmp_path):
    "A checkpoint saved as {'model': ..., 'opt': ...} loads like the bare state dict."
    wgts = torch.load(FX / 'wt103style_lm.pth', weights_only=True)
    torch.save({'model': wgts, 'opt': {'state': {}, 'param_groups': []}}, tmp_path / 'ck.pth')
    vocab = json.loads((FX / 'wt103style_new_vocab.json').read_text())
    m = load_pretrained_lm(tiny_lm(len(vocab)), tmp_path / 'ck.pth', FX / 'wt103style_itos.pkl', vocab)
    fastai = torch.load(FX / 'wt103style_loaded_state.pth', weights_only=True)
    for k, v in m.state_dict().items(): torch.testing.assert_close(v, fastai[k], rtol=0, atol=1e-6)


def test_match_embeds_does_not_change_its_input():
    wgts = torch.load(FX / 'wt103style_lm.pth', weights_only=True)
    before = {k: v.clone() for k, v in wgts.items()}
    match_embeds(wgts, load_itos(FX / 'wt103style_itos.pkl'), ['xxunk', 'neverseen'])
    assert wgts.keys() == before.keys() and all(torch.equal(wgts[k], before[k]) for k in wgts)


# --- bad arguments ------------------------------------------------------------------------------------------------

def test_drop_mult_too_large():
    with pytest.raises(ValueError, match='drop_mult'): tiny_lm(drop_mult=5.)


def test_unknown_arch():
    with pytest.raises(ValueError, match='AWD_LSTM'): get_language_model(torch.nn.LSTM, 10)


def test_ps_must_match_layers():
    with pytest.raises(ValueError, match='dropout values'):
        tiny_clas(lin_ftrs=[50, 20], ps=[0.1])


def test_weight_dropout_needs_one_layer_lstm():
    with pytest.raises(TypeError): WeightDropout(torch.nn.LSTM(3, 4, num_layers=2), 0.5)
    with pytest.raises(TypeError): WeightDropout(torch.nn.GRU(3, 4), 0.5)


# --- training behaviour -------------------------------------------------------------------------------------------

def test_truncated_bptt_training_steps_without_warnings():
    "Consecutive training steps: state carried and detached (no 'backward through the graph a second time'), no warnings."
    torch.manual_seed(0)
    m = tiny_lm().train()
    opt = torch.optim.SGD(m.parameters(), lr=0.1)
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        for bs in (8, 8, 5, 8):                      # a batch size change in the middle
            x = torch.randint(0, 50, (bs, 12))
            logits, raw, out = m(x)
            assert logits.shape == (bs, 12, 50) and raw.shape == out.shape == (bs, 12, 16)
            F.cross_entropy(logits.reshape(-1, 50), x.reshape(-1)).backward()
            opt.step(); opt.zero_grad()
    assert all(p.grad is None or torch.isfinite(p.grad).all() for p in m.parameters())


def test_weight_dropout_gradient_reaches_raw_weight():
    torch.manual_seed(0)
    m = tiny_lm().train()
    m(torch.randint(0, 50, (4, 10)))[0].sum().backward()
    for rnn in m[0].rnns:
        g = rnn.weight_hh_l0_raw.grad
        assert g is not None and (g != 0).any() and (g == 0).any()   # kept entries learn, dropped ones do not


def test_fused_kernel_runs():
    "The LSTM runs as one fused op per layer, not a Python loop over time steps."
    m = tiny_lm().train()
    x = torch.randint(0, 50, (4, 30))
    with torch.profiler.profile() as prof: m(x)
    names = [e.key for e in prof.key_averages()]
    assert sum(n == 'aten::lstm' for n in names) == 1            # one entry, called 3 times
    assert [e.count for e in prof.key_averages() if e.key == 'aten::lstm'] == [3]


def test_eval_is_deterministic_and_reset_restores():
    m = tiny_lm().eval()
    x = ref('lm_input')
    with torch.no_grad():
        m.reset(); a = m(x)[0]; b = m(x)[0]
        m.reset(); c = m(x)[0]
    assert not torch.equal(a, b) and torch.equal(a, c)


def test_double_precision_model():
    "The hidden state follows the model's dtype after reset."
    m = tiny_lm().double().eval(); m.reset()
    with torch.no_grad(): out = m(ref('lm_input'))[0]
    assert out.dtype == torch.float64


def test_classifier_trains_on_padded_batch():
    torch.manual_seed(0)
    m = tiny_clas(seq_len=8, max_len=16).train()
    x = torch.randint(2, 50, (3, 24))
    x[1, :8] = 1; x[2, :16] = 1; x[2, 20:] = 1              # padded first in chunks of 8, remainder at the end
    logits, raw, out = m(x)
    assert logits.shape == (3, 2) and raw.shape == (3, 16, 16)   # only the last max_len positions are kept
    F.cross_entropy(logits, torch.tensor([0, 1, 0])).backward()
    assert m[0].module.encoder.weight.grad is not None


def test_classifier_single_row_eval():
    m = tiny_clas().eval()
    with torch.no_grad(): assert m(torch.randint(2, 50, (1, 100)))[0].shape == (1, 2)


def test_fixed_encoder_equals_fastai_when_rows_end_together():
    "Without end padding in the middle of a chunk, the fix and fastai's row choice agree exactly."
    m = tiny_clas().eval()
    x = torch.randint(2, 50, (3, 144))
    x[1, :72] = 1; x[2, :72] = 1; x[2, 100:] = 1
    with torch.no_grad():
        fixed = m(x)[0]
        m[0].fastai_quirk = True
        quirk = m(x)[0]
    assert torch.equal(fixed, quirk)


# --- parameter groups ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize('make,split,n', [(tiny_lm, awd_lstm_lm_split, 4), (tiny_clas, awd_lstm_clas_split, 5)])
def test_splits_cover_every_parameter_once(make, split, n):
    m = make()
    groups = split(m)
    ids = [id(p) for g in groups for p in g]
    assert len(groups) == n and len(ids) == len(set(ids)) and set(ids) == {id(p) for p in m.parameters()}


def test_check_state_dict_accepts_fastai_dicts():
    check_state_dict(tiny_lm(), torch.load(FX / 'lm_state.pth', weights_only=True))
    check_state_dict(tiny_clas(), torch.load(FX / 'clas_state.pth', weights_only=True))


def test_packed_weights_are_one_buffer_and_give_the_same_lstm():
    "The GPU path packs the weights into one buffer (cuDNN's layout); checked here on the CPU: same storage, same result."
    torch.manual_seed(0)
    lstm = torch.nn.LSTM(3, 4, batch_first=True)
    ws = [lstm.weight_ih_l0, lstm.weight_hh_l0, lstm.bias_ih_l0, lstm.bias_hh_l0]
    packed = _packed(ws)
    base = packed[0].untyped_storage().data_ptr()
    assert all(p.untyped_storage().data_ptr() == base and p.is_contiguous() for p in packed)
    offsets = [p.storage_offset() for p in packed]
    assert offsets == [0, 48, 112, 128]                      # back to back: w_ih (16x3), w_hh (16x4), b_ih, b_hh
    x, h0 = torch.randn(2, 5, 3), (torch.zeros(1, 2, 4), torch.zeros(1, 2, 4))
    out = torch.lstm(x, h0, packed, True, 1, 0., True, False, True)[0]
    torch.testing.assert_close(out, lstm(x, h0)[0])
    out.sum().backward()
    assert lstm.weight_hh_l0.grad is not None                # gradients flow back through the packing


def test_training_mode_matches_fastai_same_seed():
    """With the same seed, training-mode outputs and gradients equal fastai's (fixtures/awd_tiny/make_fastai_train_mode.py):
    every dropout draws the same random numbers, in the same order and sizes. Depends on torch's CPU generator (2.13)."""
    ref_ = np.load(FX / 'fastai_train_mode.npz')
    m = tiny_lm()
    m.load_state_dict(torch.load(FX / 'lm_state.pth', weights_only=True)); m.train(); m.reset()
    torch.manual_seed(0)
    x = ref('lm_input')
    out = m(x)[0]; out2 = m(x)[0]
    (out.square().sum() + out2.sum()).backward()
    torch.testing.assert_close(out.detach(), torch.from_numpy(ref_['logits']), rtol=0, atol=1e-5)
    torch.testing.assert_close(out2.detach(), torch.from_numpy(ref_['logits2']), rtol=0, atol=1e-5)
    # Gradients sum over every step and row: float32 summation order follows the thread count, so they agree to a
    # relative 1e-4 (measured: 3e-5 between 1 and 2 threads), while outputs agree to 1e-5 absolute.
    for n, p in m.named_parameters():
        torch.testing.assert_close(p.grad, torch.from_numpy(ref_['g_' + n]), rtol=1e-4, atol=1e-5, msg=n)
    c = get_text_classifier(AWD_LSTM, 50, 2, config=CFG['clas_config'], lin_ftrs=[50], ps=[0.1])
    c.load_state_dict(torch.load(FX / 'clas_state.pth', weights_only=True)); c.train()
    c[0].fastai_quirk = True       # these rows have end padding at a chunk start: fastai runs fewer rows there
    torch.manual_seed(1)
    lc = c(ref('clas_input')[[0, 1]])[0]; lc.sum().backward()
    torch.testing.assert_close(lc.detach(), torch.from_numpy(ref_['clas']), rtol=0, atol=1e-5)
    for n, p in c.named_parameters():
        torch.testing.assert_close(p.grad, torch.from_numpy(ref_['gc_' + n]), rtol=1e-4, atol=1e-5, msg=n)


def test_padded_row_starts_from_zero_state():
    "A row padded first in whole chunks gives the outputs it gives alone; a row of padding only runs nothing."
    torch.manual_seed(0)
    enc = tiny_clas(seq_len=8)[0].eval()
    x = torch.randint(2, 50, (3, 24))
    x[1, :8] = 1; x[1, 20:] = 1          # text at 8..19
    x[2, :] = 1                          # an empty row
    with torch.no_grad():
        out, mask = enc(x)
        alone, _ = enc(x[1:2, 8:20])
    torch.testing.assert_close(out[1, 8:20], alone[0])
    assert mask[2].all() and (out[2] == 0).all()


SMALL = dict(awd_lstm_clas_config, emb_sz=16, n_hid=32, n_layers=2)


@pytest.mark.parametrize('batch_first', [True, False])
def test_weight_dropout_follows_the_wrapped_lstm(batch_first):
    torch.manual_seed(0)
    lstm = torch.nn.LSTM(5, 7, batch_first=batch_first)
    ref = torch.nn.LSTM(5, 7, batch_first=batch_first); ref.load_state_dict(lstm.state_dict())
    wd = WeightDropout(lstm, 0.5).eval()             # eval: no dropout, so it must equal the plain LSTM
    x = torch.randn(3, 4, 5)                         # (bs, sl, 5) or (sl, bs, 5)
    bs = 3 if batch_first else 4
    state = (torch.zeros(1, bs, 7), torch.zeros(1, bs, 7))
    out, (h, c) = wd(x, state)
    out_ref, (h_ref, c_ref) = ref(x, state)
    assert torch.allclose(out, out_ref, atol=1e-6) and torch.allclose(h, h_ref, atol=1e-6)
    with pytest.raises(ValueError, match='inputs of size 5'): wd(torch.randn(3, 4, 6), state)
    with pytest.raises(ValueError, match='hidden state'): wd(x, (torch.zeros(1, bs, 8), torch.zeros(1, bs, 8)))


def test_weight_dropout_shows_the_raw_weights_after_wrapping():
    lstm = nn.LSTM(5, 7)
    raw = lstm.weight_hh_l0.detach().clone()
    wd = WeightDropout(lstm, 0.4)
    assert torch.equal(wd.module.weight_hh_l0, raw) and torch.equal(wd.weight_hh_l0_raw, raw)
    assert 'module.weight_hh_l0' not in wd.state_dict()            # only for looking at: checkpoints stay as they were


def test_weight_dropout_fastai_facts_in_training():
    torch.manual_seed(0)
    wd = WeightDropout(nn.LSTM(5, 7), 0.4)
    raw = wd.weight_hh_l0_raw.detach().clone()
    x, h = torch.randn(10, 20, 5), (torch.zeros(1, 20, 7), torch.zeros(1, 20, 7))
    out, _ = wd(x, h)
    out.sum().backward()
    dropped = wd.module.weight_hh_l0
    assert 0.2 <= float((dropped == 0).float().mean()) <= 0.6
    assert torch.equal(wd.weight_hh_l0_raw, raw)                    # the raw weights are untouched
    assert wd.weight_hh_l0_raw.requires_grad and wd.weight_hh_l0_raw.grad is not None
    assert ((wd.weight_hh_l0_raw.grad == 0) & (dropped == 0)).any()
    assert (wd.weight_hh_l0_raw.grad[dropped == 0] == 0).all()      # dropped entries get no gradient at all
    kept = dropped != 0
    assert torch.allclose(dropped[kept], raw[kept] / 0.6)           # kept ones scaled by 1/(1-p)


def test_weight_dropout_shown_matrix_is_the_one_used():
    torch.manual_seed(1)
    wd = WeightDropout(nn.LSTM(3, 4, batch_first=True), 0.5)
    x, h = torch.randn(2, 6, 3), (torch.zeros(1, 2, 4), torch.zeros(1, 2, 4))
    out, _ = wd(x, h)
    plain = nn.LSTM(3, 4, batch_first=True)
    with torch.no_grad():
        for n in ('weight_ih_l0', 'bias_ih_l0', 'bias_hh_l0'): getattr(plain, n).copy_(getattr(wd.module, n))
        plain.weight_hh_l0.copy_(wd.module.weight_hh_l0)
        assert torch.allclose(plain(x, h)[0], out, atol=1e-6)
    out2, _ = wd(x, h)                                              # a new call, a new mask, a new shown matrix
    assert not torch.equal(out2, out)


def test_weight_dropout_reset_and_eval_give_back_the_raw_weights():
    wd = WeightDropout(nn.LSTM(5, 7), 0.5)
    x, h = torch.randn(4, 3, 5), (torch.zeros(1, 3, 7), torch.zeros(1, 3, 7))
    wd(x, h)
    assert not torch.equal(wd.module.weight_hh_l0, wd.weight_hh_l0_raw)
    wd.reset()
    assert torch.equal(wd.module.weight_hh_l0, wd.weight_hh_l0_raw)
    assert not wd.module.weight_hh_l0.requires_grad                 # outside the graph
    wd(x, h); wd.eval(); wd(x, h)
    assert torch.equal(wd.module.weight_hh_l0, wd.weight_hh_l0_raw)


def test_awd_lstm_reset_resets_every_weight_dropout():
    enc = AWD_LSTM(30, 8, 16, 3, weight_p=0.5)
    enc(torch.randint(0, 30, (2, 5)))
    assert all(not torch.equal(r.module.weight_hh_l0, r.weight_hh_l0_raw) for r in enc.rnns)
    enc.reset()
    assert all(torch.equal(r.module.weight_hh_l0, r.weight_hh_l0_raw) for r in enc.rnns)


def test_model_with_weight_dropout_still_deepcopies_and_moves():
    model = get_text_classifier(AWD_LSTM, 30, 2, config=SMALL)
    model(torch.randint(2, 30, (3, 9)))[0].sum().backward()         # a training call leaves a shown dropped matrix
    twin = copy.deepcopy(model)                                     # (a tensor with a graph could not be deep-copied)
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), twin.state_dict().values()))
    twin.half().float().eval()
    with torch.no_grad(): twin(torch.randint(2, 30, (2, 9)))


def test_sigmoid_range():
    x = torch.linspace(-20, 20, 9)
    assert torch.allclose(sigmoid_range(x, -1., 3.), -1 + 4 * torch.sigmoid(x))
    y = SigmoidRange(0, 5)(torch.randn(4, 2) * 10)
    assert y.shape == (4, 2) and (y >= 0).all() and (y <= 5).all()
    assert list(SigmoidRange(0, 5).parameters()) == []


def test_get_text_classifier_y_range_squashes_the_head_output():
    torch.manual_seed(0); scores = get_text_classifier(AWD_LSTM, 30, 2, config=SMALL).eval()
    torch.manual_seed(0); rated = get_text_classifier(AWD_LSTM, 30, 2, config=SMALL, y_range=(-2, 3)).eval()
    assert list(rated.state_dict()) == list(scores.state_dict())
    assert isinstance(rated[1].layers[-1], SigmoidRange) and not isinstance(scores[1].layers[-1], SigmoidRange)
    x = torch.randint(2, 30, (4, 15))
    with torch.no_grad():
        got, want = rated(x)[0], -2 + 5 * torch.sigmoid(scores(x)[0])
    assert torch.allclose(got, want, atol=1e-6)
    assert (got > -2).all() and (got < 3).all()
