"""Chapter 06, `ulmfit_lit.classifier`: `text_classifier_learner` (regression with `y_range` included), `predict`,
predictions that do not depend on the batch, word importance, and the confusion matrix."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from ulmfit_lit.awd_lstm import AWD_LSTM, SigmoidRange, awd_lstm_clas_config
from ulmfit_lit.classifier import (ClassificationInterpretation, TextClassifierLearner, confusion_matrix,
                                   text_classifier_learner, word_importance)
from ulmfit_lit.data import TextDataLoaders
from ulmfit_lit.learner import accuracy, load_learner

SMALL = dict(awd_lstm_clas_config, emb_sz=32, n_hid=64, n_layers=2)


@pytest.fixture(scope='module')
def dls(tmp_path_factory, sample_df):
    with pytest.MonkeyPatch.context() as mp:          # this module's token cache, in a home of its own
        mp.setenv('ULMFIT_LIT_HOME', str(tmp_path_factory.mktemp('clas_home')))
        df = sample_df.groupby('is_valid').head(60).reset_index(drop=True)    # 60 training + 60 validation reviews
        yield TextDataLoaders.from_df(df, text_col='text', label_col='label', valid_col='is_valid', bs=8)


def test_predict_returns_fastais_triple_and_restores_training_mode(dls):
    learn = text_classifier_learner(dls, AWD_LSTM, config=SMALL, pretrained=False, quiet=True)
    learn.model.train()
    cat, idx, probs = learn.predict('a fine film')
    assert learn.model.training
    assert cat == dls.vocab[1][int(idx)] and probs.shape == (2,) and abs(float(probs.sum()) - 1) < 1e-5
    assert int(idx) == int(probs.argmax())
    learn.model.eval()
    learn.predict('a fine film')
    assert not learn.model.training


def test_a_text_gets_the_same_prediction_whatever_its_batch_mates(dls):
    torch.manual_seed(0)
    learn = text_classifier_learner(dls, AWD_LSTM, config=SMALL, pretrained=False, quiet=True)
    short = 'A short one, but sweet.'
    long = ' '.join(['This film goes on and on, scene after scene, and I kept watching it.'] * 14)   # > 200 tokens
    together, _ = learn.get_preds(dl=dls.test_dl([long, short]))
    alone, _ = learn.get_preds(dl=dls.test_dl([short]))
    assert torch.allclose(together[1], alone[0], atol=1e-6), (together[1], alone[0])


def test_word_importance_leaves_no_gradients_and_keeps_the_mode(dls):
    learn = text_classifier_learner(dls, AWD_LSTM, config=SMALL, pretrained=False, quiet=True)
    learn.model.train()
    tokens, scores, cat = word_importance(learn, 'a truly wonderful film')
    assert tokens[:2] == ['xxbos', 'a'] and len(tokens) == len(scores) and cat in dls.vocab[1]
    assert cat == learn.predict('a truly wonderful film')[0]          # the class it explains is the predicted one
    assert np.isfinite(scores).all() and np.abs(scores).sum() > 0
    assert all(p.grad is None for p in learn.model.parameters())
    assert learn.model.training


def mse(pred, y): return F.mse_loss(pred[:, 0], y.float())

def test_text_classifier_learner_y_range_trains_and_exports(dls, tmp_path):
    learn = text_classifier_learner(dls, AWD_LSTM, config=SMALL, pretrained=False, n_out=1, y_range=(0, 1),
                                    loss_func=mse, path=tmp_path, quiet=True)
    assert isinstance(learn.model[1].layers[-1], SigmoidRange)
    learn.fit(1, 1e-3)
    preds, targs = learn.get_preds()
    assert preds.shape == (len(targs), 1) and (preds > 0).all() and (preds < 1).all()
    learn.export('reg.pth')
    back = load_learner(tmp_path/'reg.pth')
    assert isinstance(back, TextClassifierLearner)
    assert isinstance(back.model[1].layers[-1], SigmoidRange)
    assert (back.model[1].layers[-1].low, back.model[1].layers[-1].high) == (0, 1)
    x, _ = next(iter(dls.valid))
    learn.model.eval(); back.model.eval()
    with torch.no_grad(): assert torch.allclose(back.model(x)[0], learn.model(x)[0], atol=1e-5)


def test_text_classifier_learner_without_y_range_is_unchanged(dls):
    learn = text_classifier_learner(dls, AWD_LSTM, config=SMALL, pretrained=False, quiet=True)
    assert not isinstance(learn.model[1].layers[-1], SigmoidRange)
    assert learn.model.build_record['config']['y_range'] is None


def test_confusion_matrix_counts_actual_by_predicted():
    g = torch.Generator().manual_seed(0)
    targs, preds = torch.randint(0, 3, (200,), generator=g), torch.randint(0, 3, (200,), generator=g)
    cm = confusion_matrix(targs, preds, 3)
    assert cm.shape == (3, 3) and cm.sum() == 200
    for a in range(3):
        for p in range(3): assert cm[a, p] == int(((targs == a) & (preds == p)).sum())
    assert confusion_matrix(torch.tensor([1, 1]), torch.tensor([1, 1]), 4).tolist()[1] == [0, 2, 0, 0]   # rows: actual


def test_interpretation_confusion_and_top_losses_agree_with_get_preds(dls):
    torch.manual_seed(0)
    learn = text_classifier_learner(dls, AWD_LSTM, config=SMALL, pretrained=False, metrics=accuracy, quiet=True)
    learn.fit(1, 1e-3)
    interp = ClassificationInterpretation.from_learner(learn)
    probs, targs = learn.get_preds()
    cm = interp.confusion_matrix()
    assert cm.sum() == len(dls.valid.doc_idxs) == len(targs)
    assert np.trace(cm) / cm.sum() == pytest.approx(float((probs.argmax(1) == targs).float().mean()))
    assert (cm == confusion_matrix(targs, probs.argmax(1), 2)).all()
    top = interp.top_losses(5)
    assert len(top) == 5 and list(top.loss) == sorted(top.loss, reverse=True)
    assert top.loss.iloc[0] == pytest.approx(float(F.cross_entropy(probs.log(), targs, reduction='none').max()), rel=1e-4)
