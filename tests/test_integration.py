"""Runs across modules: fastai's text tutorial call for call on a small IMDb-layout folder, ULMFiT's stages handing on
their weights, export and `load_learner` round trips (SentencePiece, custom rules, backwards), and the package
importing without spaCy."""
import os
import subprocess
import sys

import pytest
import torch

from ulmfit_lit.all import (AWD_LSTM, CategoryBlock, ColReader, ColSplitter, DataBlock, GrandparentSplitter,
                            Perplexity, RandomSplitter, SentencePieceTokenizer, TextBlock, TextClassifierLearner,
                            TextDataLoaders, accuracy, awd_lstm_clas_config, awd_lstm_lm_config, defaults,
                            get_text_files, language_model_learner, load_learner, parent_label, partial,
                            text_classifier_learner)

SMALL = dict(emb_sz=32, n_hid=64, n_layers=2)


@pytest.fixture(scope='module')
def small_df(tmp_path_factory, sample_df):
    "120 training and 120 validation reviews of the sample, with this module's own home (token caches) while it runs."
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv('ULMFIT_LIT_HOME', str(tmp_path_factory.mktemp('integration_home')))
        yield sample_df.groupby('is_valid').head(120).reset_index(drop=True)


@pytest.fixture(scope='module')
def dls_lm(small_df):
    return TextDataLoaders.from_df(small_df, text_col='text', is_lm=True, valid_col='is_valid', bs=16)


def test_lm_trains_generates_and_hands_encoder_to_classifier(small_df, dls_lm, tmp_path):
    torch.manual_seed(0)
    lm = language_model_learner(dls_lm, AWD_LSTM, config=dict(awd_lstm_lm_config, **SMALL), pretrained=False,
                                path=tmp_path, quiet=True)
    lm.fit_one_cycle(4, 2e-2)
    # below the loss of the best guess that ignores context: each word's frequency in the training text (unigram)
    train_ids = torch.cat([x.flatten() for x, _ in dls_lm.train])
    valid_ids = torch.cat([y.flatten() for _, y in dls_lm.valid])
    freq = torch.bincount(train_ids, minlength=len(dls_lm.vocab)).float() + 1
    unigram_loss = float(-(freq / freq.sum()).log()[valid_ids].mean())
    assert lm.recorder.values[-1][1] < unigram_loss - 0.05, (lm.recorder.values[-1][1], unigram_loss)
    text = lm.predict('This movie is', n_words=12, temperature=0)
    assert text.lower().startswith('this movie is') and len(text.split()) > 3
    assert text == lm.predict('This movie is', n_words=12, temperature=0, refeed=True)
    lm.save_encoder('enc')
    dls = TextDataLoaders.from_df(small_df, text_col='text', label_col='label', valid_col='is_valid',
                                  text_vocab=dls_lm.vocab, bs=16)
    clas = text_classifier_learner(dls, AWD_LSTM, config=dict(awd_lstm_clas_config, **SMALL), pretrained=False,
                                   metrics=accuracy, path=tmp_path, quiet=True)
    clas.load_encoder('enc')
    assert torch.equal(clas.model[0].module.encoder.weight, lm.model[0].encoder.weight)
    clas.fit_one_cycle(1, 1e-2)
    cat, idx, probs = clas.predict('A wonderful film.')
    assert cat in ('negative', 'positive') and cat == dls.vocab[1][int(idx)]
    assert abs(float(probs.sum()) - 1) < 1e-5
    texts = small_df.text[small_df.is_valid].tolist()[:10]
    preds, targs = clas.get_preds(dl=dls.test_dl(texts))
    assert targs is None and preds.shape == (10, 2)
    assert torch.allclose(preds[3], clas.predict(texts[3])[2], atol=1e-4)   # the test_dl keeps the input order
    # an exported classifier predicts the same after loading (no pickled code)
    clas.export('clas.pth')
    loaded = load_learner(tmp_path/'clas.pth')
    assert loaded.predict(texts[0])[0] == clas.predict(texts[0])[0]
    assert torch.allclose(loaded.predict(texts[0])[2], clas.predict(texts[0])[2], atol=1e-5)


def test_fastai_tutorial_code_on_a_small_imdb_folder(small_df, tmp_path, imdb_like_folder):
    "fastai's text tutorial, call for call, on a small folder (small model and no WikiText-103: CPU, offline)."
    path = imdb_like_folder(small_df, tmp_path/'imdb')
    small_lm, small_clas = dict(awd_lstm_lm_config, **SMALL), dict(awd_lstm_clas_config, **SMALL)
    dls = TextDataLoaders.from_folder(path, valid='test', bs=16)
    batch = dls.show_batch(max_n=2, show=False)
    assert list(batch.columns) == ['text', 'category'] and batch.text[0].startswith('xxbos')
    dls_lm = TextDataLoaders.from_folder(path, is_lm=True, valid_pct=0.1, bs=16)
    learn = language_model_learner(dls_lm, AWD_LSTM, config=small_lm, drop_mult=0.3, pretrained=False,
                                   metrics=[accuracy, Perplexity()], path=tmp_path, quiet=True)
    learn.fit_one_cycle(1, 2e-2)
    learn.save_encoder('finetuned')
    assert isinstance(learn.predict("I liked this movie because", 5, temperature=0.75), str)
    imdb_clas = DataBlock(blocks=(TextBlock.from_folder(path, vocab=dls_lm.vocab), CategoryBlock),
                          get_y=parent_label, get_items=partial(get_text_files, folders=['train', 'test']),
                          splitter=GrandparentSplitter(valid_name='test'))
    dls_clas = imdb_clas.dataloaders(path, bs=16, seq_len=72)
    assert dls_clas.vocab[1] == ['neg', 'pos']
    learn = text_classifier_learner(dls_clas, AWD_LSTM, config=small_clas, drop_mult=0.5, pretrained=False,
                                    metrics=accuracy, path=tmp_path, quiet=True).load_encoder('finetuned')
    learn.fit_one_cycle(1, 2e-2)
    learn.freeze_to(-2)
    learn.fit_one_cycle(1, slice(1e-2/(2.6**4), 1e-2))
    cat, idx, probs = learn.predict("I really liked that movie!")
    assert cat in ('neg', 'pos') and probs.shape == (2,)
    imdb_lm = DataBlock(blocks=TextBlock.from_folder(path, is_lm=True),
                        get_items=partial(get_text_files, folders=['train', 'test', 'unsup']),
                        splitter=RandomSplitter(0.1))
    dls_lm2 = imdb_lm.dataloaders(path, path=path, bs=16, seq_len=80)
    assert dls_lm2.seq_len == 80 and next(iter(dls_lm2.train))[0].shape == (16, 80)


def test_export_keeps_a_backwards_classifier_backwards(small_df, tmp_path):
    dls = TextDataLoaders.from_df(small_df, text_col='text', label_col='label', valid_col='is_valid', bs=16,
                                  backwards=True)
    assert dls.backwards
    learn = text_classifier_learner(dls, AWD_LSTM, config=dict(awd_lstm_clas_config, **SMALL), pretrained=False,
                                    path=tmp_path, quiet=True)
    learn.export('bwd.pth')
    loaded = load_learner(tmp_path/'bwd.pth')
    assert loaded.backwards and loaded.dls.backwards
    text = small_df.text[0]
    assert torch.allclose(loaded.predict(text)[2], learn.predict(text)[2], atol=1e-5)
    # what makes it backwards: every text's ids are the forward ids reversed, in training batches and in new texts
    fwd = TextDataLoaders.from_df(small_df, text_col='text', label_col='label', valid_col='is_valid', bs=16)
    assert fwd.vocab == dls.vocab and not fwd.backwards
    xf, xb, xl = (next(iter(d.test_dl([text])))[0][0] for d in (fwd, dls, loaded.dls))
    assert torch.equal(xb, xf.flip(0)) and torch.equal(xl, xb) and not torch.equal(xb, xf)
    (vf, _), (vb, _) = next(iter(fwd.valid)), next(iter(dls.valid))
    pad = dls.vocab[0].index('xxpad')
    for rf, rb in zip(vf, vb): assert torch.equal(rb[rb != pad], rf[rf != pad].flip(0))


def shout(t): return t.upper()          # a custom rule, importable from this module


def test_exported_learner_tokenizes_and_predicts_as_before_export(home, sample_df, tmp_path):
    df = sample_df.groupby('is_valid').head(60).reset_index(drop=True)
    texts = ['An astonishing film, I loved it.', 'Dull and far too long; I left early.']
    for name, tok, rules in [('sp', SentencePieceTokenizer(vocab_sz=400), None),
                             ('custom', None, defaults.text_proc_rules + [shout])]:
        dblock = DataBlock(blocks=(TextBlock.from_df('text', tok=tok, rules=rules), CategoryBlock),
                           get_y=ColReader('label'), splitter=ColSplitter('is_valid'))
        dls = dblock.dataloaders(df, path=tmp_path, bs=8)
        torch.manual_seed(0)
        learn = text_classifier_learner(dls, AWD_LSTM, config=dict(awd_lstm_clas_config, **SMALL), pretrained=False,
                                        path=tmp_path, quiet=True)
        before = learn.get_preds(dl=dls.test_dl(texts))[0]
        learn.export(f'{name}.pth')
        if name == 'custom':
            with pytest.raises(ValueError, match='custom text rules'): load_learner(tmp_path/f'{name}.pth')
            loaded = load_learner(tmp_path/f'{name}.pth', rules=defaults.text_proc_rules + [shout])
        else: loaded = load_learner(tmp_path/f'{name}.pth')
        assert isinstance(loaded, TextClassifierLearner)
        assert loaded.dls.test_dl(texts).doc(0).tolist() == dls.test_dl(texts).doc(0).tolist()   # the same tokens
        after = loaded.get_preds(dl=loaded.dls.test_dl(texts))[0]
        assert torch.allclose(before, after, atol=1e-6), name
        assert loaded.predict(texts[0])[0] == learn.predict(texts[0])[0]


def test_fastai_tutorial_opening_lines(imdb_home, monkeypatch):
    "fastai's text tutorial opens with these lines; they run verbatim after `from ulmfit_lit.all import *`."
    monkeypatch.setenv('ULMFIT_LIT_HOME', str(imdb_home))
    ns = {}
    exec("from ulmfit_lit.all import *\n"
         "path = untar_data(URLs.IMDB)\n"
         "listing = path.ls()\n"
         "train_listing = (path/'train').ls()\n", ns)
    assert {'train', 'test', 'unsup'} <= {p.name for p in ns['listing']}
    assert {'neg', 'pos'} <= {p.name for p in ns['train_listing']}
    assert repr(ns['train_listing']).startswith("[Path(")


def test_package_imports_without_spacy():
    "spaCy is needed to tokenize, not to import: a GPU machine without it loads and runs exported models."
    script = ("import sys; sys.modules['spacy'] = None\n"
              "import ulmfit_lit.learner, ulmfit_lit.language_model, ulmfit_lit.classifier, ulmfit_lit.data\n"
              "import ulmfit_lit.all, ulmfit_lit.cli, ulmfit_lit.recipe, ulmfit_lit.pretrain; print('ok')")
    r = subprocess.run([sys.executable, '-c', script], capture_output=True, text=True,
                       env=dict(os.environ, OMP_NUM_THREADS='1'))
    assert r.returncode == 0 and r.stdout.strip() == 'ok', r.stderr
