"""Chapter 07, `ulmfit_lit.baseline`: the two yardsticks ULMFiT is measured against, a bag of words (NB-weighted
logistic regression on words and word pairs) and a linear probe of the encoder's frozen features, each fitted on the
training reviews only and scored on the validation ones."""
import numpy as np
import pytest
import torch

from ulmfit_lit.awd_lstm import AWD_LSTM, awd_lstm_clas_config, masked_concat_pool
from ulmfit_lit.baseline import (BagOfWords, LinearProbe, bow_baseline, loader_docs, ngram_ids, pooled_features,
                                 presence_matrix, probe_baseline)
from ulmfit_lit.classifier import text_classifier_learner
from ulmfit_lit.data import TextDataLoaders


def test_ngram_ids_are_the_distinct_words_and_word_pairs():
    v = 10
    assert ngram_ids(np.array([3, 5, 3, 5]), v).tolist() == [3, 5, v + 3 * v + 5, v + 5 * v + 3]   # (3,5) counted once
    assert ngram_ids(np.array([7]), v).tolist() == [7]                                          # no pair in one word


def test_presence_matrix_marks_the_features_each_document_holds():
    feats = np.array([2, 4, 9, 30])
    docs = [np.array([2, 9]), np.array([1, 4, 30, 31]), np.array([5])]
    m = presence_matrix(docs, feats).to_dense()
    assert m.tolist() == [[1, 0, 1, 0], [0, 1, 0, 1], [0, 0, 0, 0]]         # ids outside `feats` are dropped


def _synthetic(n: int, seed: int):
    "Documents of random words 10..99; class 1 holds the pair (5, 6) (its words alone come in both classes)."
    rng = np.random.default_rng(seed)
    docs, labels = [], []
    for i in range(n):
        d = rng.integers(10, 100, 30)
        y = i % 2
        d[rng.integers(0, 28)] = 5
        pos = rng.integers(0, 28)
        if y: d[pos:pos + 2] = [5, 6]
        else: d[pos] = 6
        docs.append(d); labels.append(y)
    return docs, np.array(labels)


def test_bag_of_words_learns_from_word_pairs_and_picks_its_weight_decay_by_cv():
    (tr, ytr), (va, yva) = _synthetic(120, 0), _synthetic(60, 1)
    bow = BagOfWords(100, wds=(1e-4, 1e-2), folds=3).fit(tr, ytr)
    assert set(bow.cv) == {1e-4, 1e-2} and bow.wd == max(bow.cv, key=bow.cv.get)
    acc = float((bow.predict(va) == torch.as_tensor(yva)).float().mean())
    assert acc > 0.9, acc                          # only the pair tells the classes apart: bigrams are used
    assert len(bow.feats) == len(np.unique(np.concatenate([ngram_ids(d, 100) for d in tr])))   # training features only


@pytest.fixture(scope='module')
def dls(tmp_path_factory, sample_df):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv('ULMFIT_LIT_HOME', str(tmp_path_factory.mktemp('baseline_home')))
        df = sample_df.groupby('is_valid').head(150).reset_index(drop=True)
        yield TextDataLoaders.from_df(df, text_col='text', label_col='label', valid_col='is_valid', bs=16)


def test_bow_baseline_on_reviews_beats_the_majority_label(dls):
    docs = loader_docs(dls.valid)
    assert len(docs) == 150 and all(np.array_equal(d, dls.valid.doc(i)) for i, d in enumerate(docs[:5]))
    acc = bow_baseline(dls)
    majority = np.bincount(dls.valid.labels).max() / len(dls.valid.labels)
    assert acc > majority + 0.1, (acc, majority)
    assert bow_baseline(dls) == acc                # seeded: the same figure every time


def test_pooled_features_are_the_encoders_pooled_output_in_document_order(dls):
    torch.manual_seed(0)
    learn = text_classifier_learner(dls, AWD_LSTM, config=dict(awd_lstm_clas_config, emb_sz=16, n_hid=24, n_layers=2),
                                    pretrained=False, quiet=True)
    learn.model.train()
    x, y = pooled_features(learn.model, dls.valid)
    assert x.shape == (150, 3 * 16) and y.tolist() == dls.valid.labels.tolist()   # in doc_idxs order, not by length
    assert learn.model.training                                                 # the mode it found it in
    enc = learn.model[0].eval()
    with torch.no_grad():
        for k in (0, 77):
            out, mask = enc(torch.as_tensor(dls.valid.doc(k).astype('int64'))[None])
            assert torch.allclose(masked_concat_pool(out, mask, enc.bptt)[0], x[k], atol=1e-5)


def test_linear_probe_separates_separable_features(dls):
    g = torch.Generator().manual_seed(0)
    y = torch.arange(200) % 2
    x = torch.randn(200, 8, generator=g) * 3 + 100                 # far from zero and wide: standardised first
    x[:, 2] = 100 + 2 * (2 * y - 1) + 0.5 * torch.randn(200, generator=g)   # one feature tells the classes apart
    probe = LinearProbe(wds=(1e-3, 1e-1)).fit(x[:150], y[:150])
    assert set(probe.cv) == {1e-3, 1e-1} and probe.wd == max(probe.cv, key=probe.cv.get)
    assert float((probe.predict(x[150:]) == y[150:]).float().mean()) > 0.85
    learn = text_classifier_learner(dls, AWD_LSTM, config=dict(awd_lstm_clas_config, emb_sz=16, n_hid=24, n_layers=2),
                                    pretrained=False, quiet=True)
    assert 0 <= probe_baseline(learn.model, dls) <= 1
