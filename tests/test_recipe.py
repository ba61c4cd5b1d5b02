"""Chapter 08, `ulmfit_lit.recipe`: ULMFiT end to end as functions (the `ulmfit-lit` commands of test_cli.py call them):
model sizes against the pretrained weights', data from a folder or a CSV, the stages of gradual unfreezing recorded and
resumed, the subsets the demo and the runs use, and what a run's summary reports."""
import json

import numpy as np
import pandas as pd
import pytest
import torch

from ulmfit_lit.awd_lstm import AWD_LSTM, awd_lstm_clas_config, awd_lstm_lm_config
from ulmfit_lit.baseline import pooled_features
from ulmfit_lit.language_model import language_model_learner, pretrained_sizes
from ulmfit_lit.learner import BatchList, DataLoaders, Learner
from ulmfit_lit.recipe import (GRADUAL_UNFREEZING, SIZES, FinalValidationOnly, balanced_subset, dls_from_source, fine_tune_lm,
                               fit_head_on_features,
                               label_settings, model_configs, run_summary, train_classifier, ulmfit_pipeline,
                               valid_subset)


@pytest.fixture(scope='module')
def data(tmp_path_factory, sample_df):
    "A CSV of 120 + 60 reviews of the sample, its classifier loaders, and a home of the module's own."
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv('ULMFIT_LIT_HOME', str(tmp_path_factory.mktemp('recipe_home')))
        df = pd.concat([sample_df[~sample_df.is_valid].head(120), sample_df[sample_df.is_valid].head(60)])
        csv = tmp_path_factory.mktemp('recipe_data')/'reviews.csv'
        df.to_csv(csv, index=False)
        yield csv, dls_from_source(csv, is_lm=False, bs=16)


def test_model_configs_follow_the_size_or_the_pretrained_weights(home):
    imdb = pretrained_sizes('imdb')
    lm, clas = model_configs(None, 'imdb')                           # no size: the weights' sizes
    assert {k: lm[k] for k in imdb} == {k: clas[k] for k in imdb} == imdb
    small = SIZES['small']
    assert model_configs('small') == (dict(awd_lstm_lm_config, **small), dict(awd_lstm_clas_config, **small))
    assert model_configs(None) == (awd_lstm_lm_config, awd_lstm_clas_config)
    with pytest.raises(ValueError) as e: model_configs('small', 'imdb')   # small is not the shipped model's size
    msg = str(e.value)
    assert "'n_hid': 192" in msg and f"'n_hid': {imdb['n_hid']}" in msg and 'leave the size' in msg
    with pytest.raises(ValueError, match=r"Unknown model size 'huge'; choose one of \['default', 'small'\]"):
        model_configs('huge')


def test_negative_epochs_are_refused(data, tmp_path):
    with pytest.raises(ValueError, match='epochs=-1'): fine_tune_lm(None, awd_lstm_lm_config, tmp_path, epochs=-1)
    with pytest.raises(ValueError, match='lm_epochs=-2'):
        ulmfit_pipeline(None, data[1], tmp_path, model_configs('small'), None, lm_epochs=-2)
    assert not list(tmp_path.iterdir())                              # refused before anything was written


def test_dls_from_source_reads_a_csv_or_a_folder(data, tmp_path, sample_df, imdb_like_folder):
    csv, dls = data
    assert (len(dls.train.doc_idxs), len(dls.valid.doc_idxs)) == (120, 60)    # split on the is_valid column
    assert dls.vocab[1] == ['negative', 'positive']
    lm = dls_from_source(csv, is_lm=True, bs=8, seq_len=20)
    assert lm.train.seq_len == 20 and next(iter(lm.train))[0].shape == (8, 20)
    bad = tmp_path/'bad.csv'
    sample_df.groupby('is_valid').head(10).rename(columns={'label': 'sentiment'}).to_csv(bad, index=False)
    with pytest.raises(ValueError, match=r"has no column 'label' .*--label-col"):
        dls_from_source(bad, is_lm=False, bs=8)
    assert dls_from_source(bad, is_lm=False, bs=8, label_col='sentiment').vocab[1] == ['negative', 'positive']
    with pytest.raises(FileNotFoundError, match='neither a folder nor a .csv'):
        dls_from_source(tmp_path/'nope', False, 8)
    folder = imdb_like_folder(sample_df.groupby('is_valid').head(20), tmp_path/'imdb')
    f = dls_from_source(folder, is_lm=False, bs=8)                   # train/ for training, test/ for validation
    assert (len(f.train.doc_idxs), len(f.valid.doc_idxs)) == (20, 20) and f.vocab[1] == ['neg', 'pos']


def test_valid_subset_keeps_n_of_the_validation_reviews_with_their_labels(data):
    dls = data[1]
    sub = valid_subset(dls, 25, seed=3)
    v, s = dls.valid, sub.valid
    assert sub.train is dls.train and len(s.doc_idxs) == 25 and set(s.doc_idxs) < set(v.doc_idxs)
    label_of = dict(zip(v.doc_idxs.tolist(), v.labels.tolist()))
    assert [label_of[i] for i in s.doc_idxs.tolist()] == s.labels.tolist()
    assert all(np.array_equal(s.doc(k), v.doc(list(v.doc_idxs).index(i))) for k, i in enumerate(s.doc_idxs[:5]))
    assert valid_subset(dls, 25, seed=3).valid.doc_idxs.tolist() == s.doc_idxs.tolist()   # seeded
    assert valid_subset(dls, 60) is dls


def test_balanced_subset_takes_as_many_of_each_class(data):
    dls = data[1]
    sub = balanced_subset(dls, 20, seed=1, bs=4)
    tr = sub.train
    assert len(tr.doc_idxs) == 20 and np.bincount(tr.labels).tolist() == [10, 10]
    assert set(tr.doc_idxs) < set(dls.train.doc_idxs) and tr.shuffle and tr.drop_last and len(tr) == 5
    label_of = dict(zip(dls.train.doc_idxs.tolist(), dls.train.labels.tolist()))
    assert [label_of[i] for i in tr.doc_idxs.tolist()] == tr.labels.tolist()
    assert sub.valid.doc_idxs.tolist() == dls.valid.doc_idxs.tolist() and sub.valid.bs == 4


def test_label_settings_give_about_the_steps_they_promise():
    for n in (50, 100, 200):             # the head alone on cached features, about 100 steps of batches of 16
        u = label_settings(n)['ulmfit']
        assert (u['bs'], u['n_stages']) == (16, 0) and u['head_epochs'] >= 10 and u['head_epochs'] * (n // 16) >= 96
    for n in (400, 800):                 # four stages of about 25 steps of batches of 32
        u = label_settings(n)['ulmfit']
        assert (u['bs'], u['n_stages'], u['head_epochs']) == (32, 4, 0) and 20 <= u['stage_epochs'] * n / 32 <= 30
    for n in (50, 100, 200, 400, 800, 1600, 3200):   # from scratch: at least 120 steps and 2 epochs
        sc = label_settings(n)['scratch']
        assert sc['epochs'] >= 2 and sc['epochs'] * (n // sc['bs']) >= 120


def test_final_validation_only_skips_all_validations_but_the_last():
    "The demo's from-scratch fits validate once, at the end: the epochs before have no validation figures."
    g = torch.Generator().manual_seed(0)
    batches = [(torch.randn(4, 3, generator=g), torch.randn(4, 1, generator=g)) for _ in range(3)]
    learn = Learner(DataLoaders(BatchList(batches), BatchList(batches[:1])), torch.nn.Linear(3, 1),
                    loss_func=torch.nn.MSELoss(), quiet=True)
    learn.fit(3, 1e-2, cbs=[FinalValidationOnly()])
    assert [v[1] is None for v in learn.recorder.values] == [True, True, False]
    learn.fit(2, 1e-2)                   # a callback passed to one fit leaves the next one alone
    assert [v[1] is None for v in learn.recorder.values] == [False, False]


@pytest.fixture(scope='module')
def tiny_lm(data, tmp_path_factory):
    "A tiny LM in fastai's pretrained layout (one .pth, one .pkl), on the data's words: a fast `pretrained` folder."
    dls_lm = dls_from_source(data[0], is_lm=True, bs=16)
    folder = tmp_path_factory.mktemp('tiny_lm')
    torch.manual_seed(0)
    learn = language_model_learner(dls_lm, AWD_LSTM, config=dict(awd_lstm_lm_config, emb_sz=16, n_hid=24, n_layers=2),
                                   pretrained=False, path=folder, quiet=True)
    learn.fit(1, 1e-2)
    return learn.save_pretrained('lm', 'vocab')[0].parent


def test_train_classifier_records_each_stage_and_resume_skips_finished_ones(data, tiny_lm, tmp_path):
    _, clas = model_configs(None, str(tiny_lm))
    torch.manual_seed(0)
    learn = train_classifier(data[1], clas, tmp_path, n_stages=3, stage_epochs=1, encoder=None, pretrained=str(tiny_lm),
                             quiet=True)
    rows = json.loads((tmp_path/'stages.json').read_text())
    assert [r['stage'] for r in rows] == ['clas_stage1', 'clas_stage2', 'clas_stage3']
    assert [r['freeze_to'] for r in rows] == [g for g, _ in GRADUAL_UNFREEZING[:3]]
    assert rows[0]['lr'] == '2.00e-02' and rows[1]['lr'] == f"{1e-2 / 2.6**4:.2e}..{1e-2:.2e}"   # discriminative rates
    assert all(0 <= r['accuracy'] <= 1 and r['epochs'] == 1 for r in rows)
    stamps = {p.name: p.stat().st_mtime_ns for p in (tmp_path/'models').glob('clas_stage*.pth')}
    assert sorted(stamps) == ['clas_stage1.pth', 'clas_stage2.pth', 'clas_stage3.pth']
    again = train_classifier(data[1], clas, tmp_path, n_stages=3, stage_epochs=1, encoder=None, pretrained=str(tiny_lm),
                             resume=True, quiet=True)
    assert {p.name: p.stat().st_mtime_ns for p in (tmp_path/'models').glob('clas_stage*.pth')} == stamps  # kept
    assert json.loads((tmp_path/'stages.json').read_text()) == rows
    assert all(torch.equal(a, b) for a, b in zip(learn.model.state_dict().values(), again.model.state_dict().values()))


def test_fit_head_on_features_trains_the_head_alone_and_leaves_the_encoder(data, tiny_lm, tmp_path):
    "The few-label first stage: the encoder's weights stay as loaded, the head learns its training reviews."
    _, clas = model_configs(None, str(tiny_lm))
    torch.manual_seed(0)
    learn = train_classifier(data[1], clas, tmp_path, n_stages=0, encoder=None, pretrained=str(tiny_lm), quiet=True)
    encoder = {k: v.clone() for k, v in learn.model[0].state_dict().items()}
    x, y = pooled_features(learn.model, learn.dls.train)
    head = learn.model[1].layers
    with torch.no_grad(): before = torch.nn.functional.cross_entropy(head.eval()(x), y).item()
    fit_head_on_features(learn, epochs=30, lr=2e-2)
    assert all(torch.equal(v, learn.model[0].state_dict()[k]) for k, v in encoder.items())
    assert not head.training                                       # left ready to predict
    with torch.no_grad(): after = torch.nn.functional.cross_entropy(head(x), y).item()
    assert after < 0.8 * before, (before, after)                   # the head fitted its 120 reviews


def test_run_summary_reports_what_the_predictions_say(data):
    dls = data[1]
    xs, ys = zip(*dls.valid)
    targs = torch.cat(ys)
    probs = torch.nn.functional.one_hot(targs, 2).float() * 0.7 + 0.15      # every review right, at 0.85...
    wrong = [3, 10, 41]
    for j, conf in zip(wrong, (0.6, 0.9, 0.75)):                  # ...but three, wrong with these confidences
        probs[j] = torch.tensor([conf, 1 - conf]) if targs[j] == 1 else torch.tensor([1 - conf, conf])
    s = run_summary(dls, probs, targs, stages=[{'stage': 'x'}], seconds={'evaluation': 1.234})
    assert s['n_valid'] == 60 and s['accuracy'] == pytest.approx(57 / 60) and s['classes'] == ['negative', 'positive']
    counts = np.bincount(dls.valid.labels)
    assert s['majority'] == counts.max() / 60 and sum(map(sum, s['confusion'])) == 60
    assert [s['confusion'][i][i] for i in range(2)] == [int((targs == c).sum()) - sum(int(targs[j]) == c for j in wrong)
                                                        for c in range(2)]
    assert [w['probability'] for w in s['most_wrong']] == [0.9, 0.75, 0.6]
    # each mistake is shown with its own text: the review the loader gave at that position of the predictions
    x = torch.cat([torch.nn.functional.pad(b, (0, max(t.shape[1] for t in xs) - b.shape[1]), value=1) for b in xs])
    for w, j in zip(s['most_wrong'], (10, 41, 3)):
        ids = [i for i in x[j].tolist() if i != 1]
        assert w['text'] == ' '.join(dls.vocab[0][i] for i in ids)
        assert w['label'] == dls.vocab[1][int(targs[j])] != w['predicted']
    assert s['seconds'] == {'evaluation': 1.2} and s['stages'] == [{'stage': 'x'}]
