"""fastai's public data and model doors (padding, `LMDataLoader(lens=...)`, `WeightDropout.reset`, `y_range`,
`load_model_text`), checked against the facts fastai's own notebooks state for them."""
import copy
import pickle
import os
import warnings

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from ulmfit_lit.data import (LMDataLoader, Pad_Chunk, Pad_Input, SortedDL, TextDataLoaders, pad_chunk, pad_docs,
                             pad_input, pad_input_chunk)
from ulmfit_lit.awd_lstm import (AWD_LSTM, SigmoidRange, WeightDropout, awd_lstm_clas_config, get_text_classifier,
                                 sigmoid_range)
from ulmfit_lit.classifier import load_model_text, load_text_learner, text_classifier_learner
from ulmfit_lit.download import URLs, untar_data

T = torch.tensor
SMALL = dict(awd_lstm_clas_config, emb_sz=16, n_hid=32, n_layers=2)


def same(a: list, b: list) -> bool:
    "Two lists of samples hold the same values (tensors compared by value and dtype kind, other fields with ==)."
    if len(a) != len(b): return False
    for sa, sb in zip(a, b):
        if len(sa) != len(sb): return False
        for x, y in zip(sa, sb):
            if isinstance(x, torch.Tensor) or isinstance(y, torch.Tensor):
                if not (isinstance(x, torch.Tensor) and isinstance(y, torch.Tensor)): return False
                if x.tolist() != y.tolist(): return False
            elif x != y: return False
    return True


# ---- pad_input / Pad_Input ----

THREE = [(T([1, 2, 3]), 1), (T([4, 5]), 2), (T([6]), 3)]

def test_pad_input_pads_at_the_end_to_the_longest():
    assert same(pad_input(THREE, pad_idx=0), [(T([1, 2, 3]), 1), (T([4, 5, 0]), 2), (T([6, 0, 0]), 3)])
    assert same(pad_input(THREE), [(T([1, 2, 3]), 1), (T([4, 5, 1]), 2), (T([6, 1, 1]), 3)])   # pad_idx=1 default

def test_pad_input_pad_first_and_backwards():
    assert same(pad_input(THREE, pad_idx=0, pad_first=True), [(T([1, 2, 3]), 1), (T([0, 4, 5]), 2), (T([0, 0, 6]), 3)])
    # backwards: the text is reversed, and the padding still ends up at the end
    assert same(pad_input(THREE, pad_idx=0, backwards=True), [(T([3, 2, 1]), 1), (T([5, 4, 0]), 2), (T([6, 0, 0]), 3)])
    assert same(pad_input(THREE, pad_idx=0, backwards=True, pad_first=True),
                [(T([3, 2, 1]), 1), (T([0, 5, 4]), 2), (T([0, 0, 6]), 3)])

def test_pad_input_pads_only_the_given_fields_each_to_its_own_longest():
    pairs = [(T([1, 2, 3]), T([6])), (T([4, 5]), T([4, 5])), (T([6]), T([1, 2, 3]))]
    assert same(pad_input(pairs, pad_idx=0, pad_fields=1),
                [(T([1, 2, 3]), T([6, 0, 0])), (T([4, 5]), T([4, 5, 0])), (T([6]), T([1, 2, 3]))])
    both = pad_input([(T([1, 2, 3, 4]), T([9])), (T([5]), T([7, 8]))], pad_idx=0, pad_fields=[0, 1])
    assert same(both, [(T([1, 2, 3, 4]), T([9, 0])), (T([5, 0, 0, 0]), T([7, 8]))])

def test_pad_input_takes_arrays_and_lists_too():
    out = pad_input([(np.array([1, 2]), 'a'), ([3], 'b')], pad_idx=0)
    assert same(out, [(T([1, 2]), 'a'), (T([3, 0]), 'b')])

def test_Pad_Input_is_pad_input_with_settings_and_decodes():
    pi = Pad_Input(pad_idx=0, pad_first=True)
    batch = pi(THREE)
    assert same(batch, pad_input(THREE, pad_idx=0, pad_first=True))
    assert pi.decodes(batch[1][0]).tolist() == [4, 5]
    assert pi.decodes(batch[2][0]).tolist() == [6]
    assert Pad_Input().decodes(T([1, 1, 7, 1])).tolist() == [7]


# ---- pad_chunk / Pad_Chunk / pad_input_chunk ----

def test_pad_chunk_pads_one_text_whole_chunks_first():
    x = T([1, 2, 3])
    assert pad_chunk(x, pad_idx=0, seq_len=3, pad_len=8).tolist() == [0, 0, 0, 1, 2, 3, 0, 0]
    assert pad_chunk(x, pad_idx=0, seq_len=3, pad_len=8, pad_first=False).tolist() == [1, 2, 3, 0, 0, 0, 0, 0]
    assert pad_chunk(x, pad_idx=0, seq_len=4, pad_len=9).tolist() == [0, 0, 0, 0, 1, 2, 3, 0, 0]   # 6 pads: 4 + 2
    assert pad_chunk(x, pad_len=3).tolist() == [1, 2, 3]                                   # nothing to add
    assert pad_chunk(x).tolist() == [1, 2, 3, 1, 1, 1, 1, 1, 1, 1]   # defaults: pad_len=10, seq_len=72 (no whole chunk)
    assert pad_chunk(x.to(torch.int32), pad_len=5).dtype == torch.int32                    # keeps the text's dtype

def test_pad_chunk_too_long_a_text_is_a_clear_error():
    with pytest.raises(ValueError, match='more than pad_len=3'): pad_chunk(torch.arange(5), pad_len=3)

def test_pad_docs_is_pad_chunk_row_by_row():
    rng = np.random.default_rng(0)
    docs = [rng.integers(2, 50, n) for n in (1, 5, 17, 40, 72, 73, 150)]
    for pad_first in (True, False):
        batch = pad_docs(docs, pad_idx=1, pad_first=pad_first, seq_len=16)
        rows = [pad_chunk(torch.from_numpy(d), 1, pad_first, 16, pad_len=150).tolist() for d in docs]
        assert batch.tolist() == rows

def test_pad_input_chunk_fastai_facts():
    samples = [(T([1, 2, 3, 4, 5, 6]), 1), (T([1, 2, 3]), 2), (T([1, 2]), 3)]
    assert same(pad_input_chunk(samples, pad_idx=0, seq_len=2),
                [(T([1, 2, 3, 4, 5, 6]), 1), (T([0, 0, 1, 2, 3, 0]), 2), (T([0, 0, 0, 0, 1, 2]), 3)])
    no_label = [(s[0],) for s in samples]
    assert same(pad_input_chunk(no_label, pad_idx=0, seq_len=2, pad_first=False),
                [(T([1, 2, 3, 4, 5, 6]),), (T([1, 2, 3, 0, 0, 0]),), (T([1, 2, 0, 0, 0, 0]),)])

def test_pad_input_chunk_n_inp_pads_every_input_to_one_length():
    out = pad_input_chunk([(T([1, 2, 3, 4, 5, 6]), T([1, 2]), 1)], pad_idx=0, seq_len=2, n_inp=2)
    assert same(out, [(T([1, 2, 3, 4, 5, 6]), T([0, 0, 0, 0, 1, 2]), 1)])
    out = pad_input_chunk([(T([1, 2, 3, 4, 5, 6]), T([1, 2]), 1)], pad_idx=0, seq_len=3, n_inp=2)
    assert same(out, [(T([1, 2, 3, 4, 5, 6]), T([0, 0, 0, 1, 2, 0]), 1)])
    # the longest input may be in the second field of another sample
    out = pad_input_chunk([(T([5]), T([6]), 'a'), (T([7, 8]), T([1, 2, 3, 4]), 'b')], pad_idx=0, seq_len=2, n_inp=2)
    assert same(out, [(T([0, 0, 5, 0]), T([0, 0, 6, 0]), 'a'), (T([0, 0, 7, 8]), T([1, 2, 3, 4]), 'b')])
    with pytest.raises(ValueError, match='n_inp'): pad_input_chunk([(T([1]), 0)], n_inp=0)

def test_Pad_Chunk_callable_and_decodes():
    pc = Pad_Chunk(pad_idx=0, seq_len=2)
    samples = [(T([1, 2, 3, 4, 5, 6]), 1), (T([1, 2, 3]), 2), (T([1, 2]), 3)]
    out = pc(samples)
    assert same(out, [(T([1, 2, 3, 4, 5, 6]), 1), (T([0, 0, 1, 2, 3, 0]), 2), (T([0, 0, 0, 0, 1, 2]), 3)])
    assert [pc.decodes(x).tolist() for x, _ in out] == [[1, 2, 3, 4, 5, 6], [1, 2, 3], [1, 2]]
    assert same(Pad_Chunk(pad_idx=0, seq_len=2, pad_first=False)([(s[0],) for s in samples]),
                [(T([1, 2, 3, 4, 5, 6]),), (T([1, 2, 3, 0, 0, 0]),), (T([1, 2, 0, 0, 0, 0]),)])
    assert same(Pad_Chunk(pad_idx=0, seq_len=2, n_inp=2)([(T([1, 2, 3, 4, 5, 6]), T([1, 2]), 1)]),
                [(T([1, 2, 3, 4, 5, 6]), T([0, 0, 0, 0, 1, 2]), 1)])
    assert Pad_Chunk(pad_idx=0, decode=False).decodes(T([0, 0, 4])).tolist() == [0, 0, 4]
    assert Pad_Chunk().decodes(T([1, 1, 4, 5, 1])).tolist() == [4, 5]

def test_sorted_dl_batches_are_pad_input_chunk_of_its_documents():
    docs = [np.full(n, i + 2) for i, n in enumerate([3, 10, 7, 1, 12, 5])]
    dl = SortedDL(docs, labels=[0, 1, 0, 1, 0, 1], bs=3, seq_len=4)
    for (x, y), b in zip(dl, dl.batches()):
        want = pad_input_chunk([(docs[p], int(dl.labels[p])) for p in b], seq_len=4)
        assert x.tolist() == [s[0].tolist() for s in want] and y.tolist() == [s[1] for s in want]


# ---- LMDataLoader(lens=...) ----

DOCS = [np.arange(1000 * d, 1000 * d + n) for d, n in enumerate([23, 7, 41, 15, 30, 12])]

def test_lm_loader_accepts_the_right_lens():
    lens = [len(d) for d in DOCS]
    plain = [(x.tolist(), y.tolist()) for x, y in LMDataLoader(DOCS, bs=4, seq_len=10)]
    given = [(x.tolist(), y.tolist()) for x, y in LMDataLoader(DOCS, bs=4, seq_len=10, lens=lens)]
    assert given == plain
    assert given == [(x.tolist(), y.tolist()) for x, y in LMDataLoader(DOCS, bs=4, seq_len=10, lens=np.array(lens))]
    sub = LMDataLoader(DOCS, bs=2, seq_len=5, doc_idxs=[4, 0], lens=[30, 23])      # the lengths of the docs it reads
    assert len(sub) == len(LMDataLoader(DOCS, bs=2, seq_len=5, doc_idxs=[4, 0]))

def test_lm_loader_wrong_lens_are_a_clear_error():
    with pytest.raises(ValueError, match='lens holds 5 lengths for 6 documents'):
        LMDataLoader(DOCS, bs=4, lens=[23, 7, 41, 15, 30])
    with pytest.raises(ValueError, match=r'lens\[2\] is 40 but that document has 41 tokens'):
        LMDataLoader(DOCS, bs=4, lens=[23, 7, 40, 15, 30, 12])
    with pytest.raises(ValueError, match=r'lens\[0\] is 23 but that document has 30 tokens'):
        LMDataLoader(DOCS, bs=2, doc_idxs=[4, 0], lens=[23, 30])      # lens in the order of doc_idxs


# ---- WeightDropout: module.weight_hh_l0 and reset() ----

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


# ---- y_range ----

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


@pytest.fixture(scope='module')
def dls(tmp_path_factory):
    old = os.environ.get('ULMFIT_LIT_HOME')
    os.environ['ULMFIT_LIT_HOME'] = str(tmp_path_factory.mktemp('home'))   # the sample ships with the package
    try:
        path = untar_data(URLs.IMDB_SAMPLE)
        df = pd.read_csv(path/'texts.csv').groupby('is_valid').head(40).reset_index(drop=True)
        return TextDataLoaders.from_df(df, text_col='text', label_col='label', valid_col='is_valid', bs=8)
    finally:
        if old is None: os.environ.pop('ULMFIT_LIT_HOME', None)
        else: os.environ['ULMFIT_LIT_HOME'] = old

def mse(pred, y): return F.mse_loss(pred[:, 0], y.float())

def test_text_classifier_learner_y_range_trains_and_exports(dls, tmp_path):
    learn = text_classifier_learner(dls, AWD_LSTM, config=SMALL, pretrained=False, n_out=1, y_range=(0, 1),
                                    loss_func=mse, path=tmp_path, quiet=True)
    assert isinstance(learn.model[1].layers[-1], SigmoidRange)
    learn.fit(1, 1e-3)
    preds, targs = learn.get_preds()
    assert preds.shape == (len(targs), 1) and (preds > 0).all() and (preds < 1).all()
    learn.export('reg.pth')
    back = load_text_learner(tmp_path/'reg.pth')
    assert isinstance(back.model[1].layers[-1], SigmoidRange)
    assert (back.model[1].layers[-1].low, back.model[1].layers[-1].high) == (0, 1)
    x, _ = next(iter(dls.valid))
    learn.model.eval(); back.model.eval()
    with torch.no_grad(): assert torch.allclose(back.model(x)[0], learn.model(x)[0], atol=1e-5)

def test_text_classifier_learner_without_y_range_is_unchanged(dls):
    learn = text_classifier_learner(dls, AWD_LSTM, config=SMALL, pretrained=False, quiet=True)
    assert not isinstance(learn.model[1].layers[-1], SigmoidRange)
    assert learn.model.build_record['config']['y_range'] is None


# ---- load_model_text ----

def _trained(dls, tmp_path):
    learn = text_classifier_learner(dls, AWD_LSTM, config=SMALL, pretrained=False, path=tmp_path, quiet=True)
    learn.fit(1, 1e-3)
    return learn

def _fresh(dls, tmp_path):
    learn = text_classifier_learner(dls, AWD_LSTM, config=SMALL, pretrained=False, path=tmp_path, quiet=True)
    learn.create_opt()
    return learn

def _same_weights(a, b): return all(torch.equal(v, b.state_dict()[k]) for k, v in a.state_dict().items())

def test_load_model_text_loads_model_and_optimizer(dls, tmp_path):
    src, dst = _trained(dls, tmp_path), _fresh(dls, tmp_path)
    file = src.save('both')
    assert not _same_weights(src.model, dst.model)
    assert load_model_text(file, dst.model, dst.opt) is dst.model
    assert _same_weights(src.model, dst.model)
    s_state, d_state = src.opt.state_dict()['state'], dst.opt.state_dict()['state']
    assert len(d_state) == len(s_state) > 0
    for k in s_state:
        for name, v in s_state[k].items():
            if torch.is_tensor(v): assert torch.equal(d_state[k][name], v)

def test_load_model_text_with_opt_false_leaves_the_optimizer(dls, tmp_path):
    src, dst = _trained(dls, tmp_path), _fresh(dls, tmp_path)
    file = src.save('both')
    load_model_text(file, dst.model, dst.opt, with_opt=False)
    assert _same_weights(src.model, dst.model) and len(dst.opt.state) == 0

def test_load_model_text_bare_state_dict_and_old_fastai_keys(dls, tmp_path):
    src, dst = _trained(dls, tmp_path), _fresh(dls, tmp_path)
    sd = src.model.state_dict()
    bare = tmp_path/'bare.pth'
    torch.save(sd, bare)
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        load_model_text(bare, dst.model, dst.opt)                    # no optimizer state, not asked for: no warning
    assert _same_weights(src.model, dst.model)
    with pytest.warns(UserWarning, match='holds no optimizer state'):
        load_model_text(bare, dst.model, dst.opt, with_opt=True)
    # an old fastai checkpoint also holds the dropped copy of each recurrent matrix: it is dropped on loading
    old = dict(sd)
    for k in [k for k in sd if k.endswith('.weight_hh_l0_raw')]:
        old[k.replace('.weight_hh_l0_raw', '.module.weight_hh_l0')] = torch.zeros_like(sd[k])
    torch.save({'model': old, 'opt': src.opt.state_dict()}, tmp_path/'old.pth')
    other = _fresh(dls, tmp_path)
    load_model_text(tmp_path/'old.pth', other.model, other.opt)
    assert _same_weights(src.model, other.model)

def test_load_model_text_optimizer_mismatch_warns_only_when_asked(dls, tmp_path):
    src = _trained(dls, tmp_path)
    file = src.save('both')
    dst = _fresh(dls, tmp_path)
    wrong_opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(2))], lr=0.1)   # a different parameter layout
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        load_model_text(file, dst.model, wrong_opt)                  # with_opt=None: quietly skipped
    assert _same_weights(src.model, dst.model)
    with pytest.warns(UserWarning, match='optimizer state .* was not loaded'):
        load_model_text(file, dst.model, wrong_opt, with_opt=True)
    with pytest.warns(UserWarning, match='no optimizer to load it into'):
        load_model_text(file, dst.model, None, with_opt=True)

def test_load_model_text_strict_and_weights_only(dls, tmp_path):
    dst = _fresh(dls, tmp_path)
    bad = tmp_path/'bad.pth'
    torch.save({'model': {'nope': torch.zeros(1)}}, bad)
    with pytest.raises(RuntimeError): load_model_text(bad, dst.model, dst.opt)
    evil = tmp_path/'evil.pth'
    torch.save({'model': dst.model.state_dict(), 'extra': object()}, evil)   # a pickled object: refused
    with pytest.raises(pickle.UnpicklingError, match='[Ww]eights only'): load_model_text(evil, dst.model, dst.opt)
