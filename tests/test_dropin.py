"""fastai's public API as the tutorial and fastai's own tests use it, and the bugs a review found (each test failed
before its fix)."""
import math
import os

import pandas as pd
import pytest
import torch

from ulmfit_lit.download import URLs, untar_data
from ulmfit_lit.data import TextDataLoaders
from ulmfit_lit.awd_lstm import AWD_LSTM, awd_lstm_lm_config, awd_lstm_clas_config, get_language_model
from ulmfit_lit.learner import Perplexity, accuracy
from ulmfit_lit.language_model import language_model_learner, sample_next, generate_ids
from ulmfit_lit.classifier import text_classifier_learner

SMALL = dict(emb_sz=32, n_hid=64, n_layers=2)


@pytest.fixture(scope='module')
def sample(tmp_path_factory):
    home = tmp_path_factory.mktemp('home')
    os.environ['ULMFIT_LIT_HOME'] = str(home)
    path = untar_data(URLs.IMDB_SAMPLE)
    df = pd.read_csv(path/'texts.csv').groupby('is_valid').head(60).reset_index(drop=True)
    dls_lm = TextDataLoaders.from_df(df, text_col='text', is_lm=True, valid_col='is_valid', bs=8)
    dls = TextDataLoaders.from_df(df, text_col='text', label_col='label', valid_col='is_valid',
                                  text_vocab=dls_lm.vocab, bs=8)
    return path, dls_lm, dls


def test_seed_tutorial_path_ls(sample):
    from ulmfit_lit.download import DataPath
    path = sample[0]
    assert isinstance(path, DataPath)
    assert [p.name for p in path.ls()] == ['texts.csv']
    assert repr(path.ls()) == f"(#1) [Path('{path/'texts.csv'}')]"
    assert isinstance(path/'texts.csv', DataPath) and isinstance(path.parent, DataPath)


def test_low_temperature_samples_without_crashing():
    g = torch.Generator().manual_seed(0)
    wide = torch.randn(20000, generator=g) * 0.5     # a real vocab: no word above 0.1% (fastai's p**(1/T) underflows)
    wide[7] = wide.max() + 0.5                       # one word ahead by 0.5: 10 at T=0.05, so always that one
    picks = [sample_next(wide, temperature=0.05, no_unk=False, generator=g) for _ in range(50)]
    assert picks == [7] * 50
    logits = torch.tensor([10., 9., 0., -5.])
    picks = [sample_next(logits, temperature=1.0, no_unk=False, generator=g) for _ in range(300)]
    assert 0.55 < picks.count(0) / 300 < 0.85        # at T=1: softmax gives the top word 0.73
    assert sample_next(logits, temperature=0, no_unk=True, unk_idx=0) == 1   # greedy never picks xxunk


def test_no_unk_is_never_sampled_at_temperature_one():
    logits = torch.tensor([5., 0., 0.])              # the unknown word (0) would win 97% of draws
    g = torch.Generator().manual_seed(0)
    assert 0 not in [sample_next(logits, 1., True, 0, generator=g) for _ in range(200)]
    assert [sample_next(logits, 1., False, 0, generator=g) for _ in range(200)].count(0) > 150   # the control


def test_sampling_follows_min_p_and_seed():
    logits = torch.tensor([0., 2., 2.1, -3.])
    g1, g2 = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
    a = [sample_next(logits, 1., True, 0, min_p=0.2, generator=g1) for _ in range(40)]
    b = [sample_next(logits, 1., True, 0, min_p=0.2, generator=g2) for _ in range(40)]
    assert a == b and set(a) == {1, 2}                # unk and the 0.02-likely word are never drawn


def test_perplexity_of_a_huge_loss_is_inf():
    m = Perplexity(); m.total, m.count = 1000., 1
    assert m.value == float('inf')
    m.total = 2.
    assert m.value == pytest.approx(math.exp(2.))


def test_predict_restores_training_mode(sample):
    _, dls_lm, dls = sample
    lm = language_model_learner(dls_lm, AWD_LSTM, config=dict(awd_lstm_lm_config, **SMALL), pretrained=False, quiet=True)
    lm.model.train()
    lm.predict('this movie', n_words=3, temperature=0.05)
    assert lm.model.training
    clas = text_classifier_learner(dls, AWD_LSTM, config=dict(awd_lstm_clas_config, **SMALL), pretrained=False, quiet=True)
    clas.model.train()
    clas.predict('a fine film')
    assert clas.model.training
    clas.model.eval()
    clas.predict('a fine film')
    assert not clas.model.training


def test_to_fp32_after_bf16_stops_autocast(sample):
    _, dls_lm, dls = sample
    learn = text_classifier_learner(dls, AWD_LSTM, config=dict(awd_lstm_clas_config, **SMALL), pretrained=False,
                                    metrics=accuracy, quiet=True).to_bf16()
    learn.fit(1, 1e-3)
    assert learn.autocast_dtype == torch.bfloat16
    learn.to_fp32()
    preds, _ = learn.get_preds()
    fresh = text_classifier_learner(dls, AWD_LSTM, config=dict(awd_lstm_clas_config, **SMALL), pretrained=False, quiet=True)
    fresh.model.load_state_dict(learn.model.state_dict())
    plain, _ = fresh.get_preds()                       # the same weights, never autocast
    assert torch.allclose(preds, plain, atol=1e-6), (preds - plain).abs().max()


def test_one_batch_on_every_loader(sample):
    _, dls_lm, dls = sample
    x, y = dls_lm.train.one_batch()
    assert x.shape == y.shape == (8, 72)
    x, y = dls.valid.one_batch()
    assert x.shape[0] == 8 and y.shape == (8,)
    (x,) = dls.test_dl(['one text', 'and another']).one_batch()
    assert x.shape[0] == 2


def test_wrong_size_pretrained_file_changes_nothing(sample, tmp_path):
    _, dls_lm, dls = sample
    small = language_model_learner(dls_lm, AWD_LSTM, config=dict(awd_lstm_lm_config, **SMALL), pretrained=False,
                                   path=tmp_path, quiet=True)
    wgts, vocab = small.save_pretrained('lm', 'vocab')
    other = dict(emb_sz=32, n_hid=80, n_layers=2)     # same embedding, other LSTM width
    lm = language_model_learner(dls_lm, AWD_LSTM, config=dict(awd_lstm_lm_config, **other), pretrained=False, path=tmp_path, quiet=True)
    before = {k: v.clone() for k, v in lm.model.state_dict().items()}
    with pytest.raises(RuntimeError, match=r"size mismatch .*checkpoint \(256, 64\), model \(320, 80\)"):
        lm.load_pretrained(wgts, vocab)
    assert all(torch.equal(before[k], v) for k, v in lm.model.state_dict().items())
    clas = text_classifier_learner(dls, AWD_LSTM, config=dict(awd_lstm_clas_config, **other), pretrained=False,
                                   path=tmp_path, quiet=True)
    before = {k: v.clone() for k, v in clas.model.state_dict().items()}
    with pytest.raises(RuntimeError, match='size mismatch'):
        clas.load_pretrained(wgts, vocab)
    assert all(torch.equal(before[k], v) for k, v in clas.model.state_dict().items())


def test_model_goes_to_the_data_device_when_the_learner_is_built(sample):
    _, dls_lm, dls = sample
    dls.to('meta')                                   # a device with no data: shows placement without a GPU
    try:
        learn = text_classifier_learner(dls, AWD_LSTM, config=dict(awd_lstm_clas_config, **SMALL), pretrained=False,
                                        quiet=True)
        assert {p.device.type for p in learn.model.parameters()} == {'meta'}
    finally: dls.to('cpu')


def test_word_importance_leaves_no_gradients_and_keeps_the_mode(sample):
    from ulmfit_lit.classifier import word_importance
    _, _, dls = sample
    learn = text_classifier_learner(dls, AWD_LSTM, config=dict(awd_lstm_clas_config, **SMALL), pretrained=False, quiet=True)
    learn.model.train()
    tokens, scores, cat = word_importance(learn, 'a truly wonderful film')
    assert len(tokens) == len(scores) and cat in dls.vocab[1]
    assert all(p.grad is None for p in learn.model.parameters())
    assert learn.model.training


def test_save_model_callback_never_restores_a_file_from_an_earlier_run(sample, tmp_path):
    from ulmfit_lit.learner import SaveModelCallback
    _, _, dls = sample
    learn = text_classifier_learner(dls, AWD_LSTM, config=dict(awd_lstm_clas_config, **SMALL), pretrained=False,
                                    metrics=accuracy, path=tmp_path, quiet=True)
    stale = {k: torch.zeros_like(v) for k, v in learn.model.state_dict().items()}
    (tmp_path/'models').mkdir()
    torch.save({'model': stale}, tmp_path/'models'/'model.pth')       # left by an earlier run
    # a run whose monitor never counts as an improvement saves nothing...
    learn.fit(1, 1e-3, cbs=[SaveModelCallback(comp=lambda new, best: False)])
    # ...so the model keeps what it trained to, and is not replaced by the stale zeros
    assert any(v.abs().sum() > 0 for v in learn.model.state_dict().values() if v.dtype.is_floating_point)


def test_a_text_gets_the_same_prediction_whatever_its_batch_mates(sample):
    _, _, dls = sample
    torch.manual_seed(0)
    learn = text_classifier_learner(dls, AWD_LSTM, config=dict(awd_lstm_clas_config, **SMALL), pretrained=False, quiet=True)
    short = 'A short one, but sweet.'
    long = ' '.join(['This film goes on and on, scene after scene, and I kept watching it.'] * 14)   # > 200 tokens
    together, _ = learn.get_preds(dl=dls.test_dl([long, short]))
    alone, _ = learn.get_preds(dl=dls.test_dl([short]))
    assert torch.allclose(together[1], alone[0], atol=1e-6), (together[1], alone[0])


@pytest.mark.parametrize('batch_first', [True, False])
def test_weight_dropout_follows_the_wrapped_lstm(batch_first):
    from ulmfit_lit.awd_lstm import WeightDropout
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


def test_tokenizing_a_folder_that_cannot_take_a_cache_uses_a_user_cache(home, tmp_path):
    from ulmfit_lit.tokenize import tokenize_folder
    data = tmp_path/'ro'/'texts'
    data.mkdir(parents=True)
    for k in range(3): (data/f'{k}.txt').write_text(f'review number {k} was good')
    (tmp_path/'ro'/'texts_tok').write_text('not a folder: the cache cannot go here')
    tkd = tokenize_folder(data, n_workers=1)
    assert len(tkd) == 3 and tkd.tokens(0)[:2] == ['xxbos', 'review']
    assert list((home/'tok_cache').iterdir())[0].name.startswith('texts_tok-')
    assert len(tokenize_folder(data, n_workers=1)) == 3          # the second call reads that cache


def test_a_download_that_differs_from_fastais_published_checks_is_refused(home, tmp_path, monkeypatch):
    import http.server, threading
    from ulmfit_lit.download import download_url, KNOWN_CHECKS
    url_sample = 'https://s3.amazonaws.com/fast-ai-sample/imdb_sample.tgz'
    assert KNOWN_CHECKS[url_sample] == (571827, '0842e61a9867caa2e6fbdb14fa703d61')   # from fastai's checks.txt
    (tmp_path/'srv').mkdir(); (tmp_path/'srv'/'imdb_sample.tgz').write_bytes(b'x' * 1000)   # a tampered file
    handler = lambda *a: http.server.SimpleHTTPRequestHandler(*a, directory=str(tmp_path/'srv'))
    server = http.server.ThreadingHTTPServer(('127.0.0.1', 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    local = f'http://127.0.0.1:{server.server_address[1]}/imdb_sample.tgz'
    monkeypatch.setitem(KNOWN_CHECKS, local, KNOWN_CHECKS[url_sample])
    try:
        with pytest.raises(RuntimeError, match='does not match its known size and md5'):
            download_url(local, tmp_path/'got.tgz', show_progress=False)
        assert not (tmp_path/'got.tgz').exists() and not list(tmp_path.glob('.got.tgz*'))
    finally: server.shutdown()


def _untar_sample(home):
    os.environ['ULMFIT_LIT_HOME'] = home
    from ulmfit_lit.download import untar_data, URLs
    return str(untar_data(URLs.IMDB_SAMPLE))


def test_concurrent_untar_data_calls_all_succeed(tmp_path):
    import multiprocessing as mp
    with mp.get_context('spawn').Pool(4) as pool:
        paths = pool.map(_untar_sample, [str(tmp_path)] * 4)
    assert len(set(paths)) == 1 and [p.name for p in DataPathLs(paths[0])] == ['texts.csv']
    assert not [p for p in (tmp_path/'data').iterdir() if p.name.startswith('.')]   # no staging left behind


def DataPathLs(p):
    from ulmfit_lit.download import DataPath
    return DataPath(p).ls()


def test_force_download_keeps_the_old_folder_until_the_new_one_is_complete(home, tmp_path):
    import http.server, threading
    path = untar_data(URLs.IMDB_SAMPLE)
    (tmp_path/'srv').mkdir(); (tmp_path/'srv'/'imdb_sample.tgz').write_bytes(b'not an archive at all')
    handler = lambda *a: http.server.SimpleHTTPRequestHandler(*a, directory=str(tmp_path/'srv'))
    server = http.server.ThreadingHTTPServer(('127.0.0.1', 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:       # the new download arrives but does not extract: the old folder must still be there, whole
        with pytest.raises(RuntimeError, match='Could not extract'):
            untar_data(f'http://127.0.0.1:{server.server_address[1]}/imdb_sample.tgz', force_download=True)
    finally: server.shutdown()
    assert len(pd.read_csv(path/'texts.csv')) == 1000


def test_an_archive_that_unpacks_to_too_much_is_refused(tmp_path):
    import io, tarfile
    from ulmfit_lit.download import safe_extract
    arc = tmp_path/'big.tgz'
    with tarfile.open(arc, 'w:gz') as tar:
        data = b'\0' * 100_000
        info = tarfile.TarInfo('big/zeros.bin'); info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    with pytest.raises(ValueError, match='would unpack to 100,000 bytes'):
        safe_extract(arc, tmp_path/'out', max_bytes=50_000)
    assert not (tmp_path/'out').exists() and not list(tmp_path.glob('.out*'))
    assert (safe_extract(arc, tmp_path/'ok')/'big'/'zeros.bin').stat().st_size == 100_000


def test_each_torchrun_process_takes_its_own_gpu(monkeypatch):
    from ulmfit_lit.learner import distrib_device
    monkeypatch.setenv('LOCAL_RANK', '3')
    assert distrib_device('cuda') == torch.device('cuda', 3)
    assert distrib_device(torch.device('cuda', 0)) == torch.device('cuda', 3)
    assert distrib_device('cpu') == torch.device('cpu')
    monkeypatch.delenv('LOCAL_RANK')
    assert distrib_device('cuda') == torch.device('cuda', 0)


def test_sentencepiece_keeps_its_model_in_the_course_home(home, tmp_path, monkeypatch):
    from ulmfit_lit.tokenize import SentencePieceTokenizer, defaults
    monkeypatch.chdir(tmp_path)
    texts = list(pd.read_csv(untar_data(URLs.IMDB_SAMPLE)/'texts.csv').text[:200])
    sp = SentencePieceTokenizer(vocab_sz=500)
    sp.setup(texts, defaults.text_proc_rules)
    assert not (tmp_path/'tmp').exists()                           # nothing written where the user stands
    assert any((home/'sentencepiece').iterdir())


def shout(t): return t.upper()          # a custom rule, importable from this module


def test_exported_learner_tokenizes_and_predicts_as_before_export(home, tmp_path):
    from ulmfit_lit.all import load_learner
    from ulmfit_lit.tokenize import SentencePieceTokenizer, defaults
    from ulmfit_lit.classifier import TextClassifierLearner
    df = pd.read_csv(untar_data(URLs.IMDB_SAMPLE)/'texts.csv').groupby('is_valid').head(60).reset_index(drop=True)
    texts = ['An astonishing film, I loved it.', 'Dull and far too long; I left early.']
    for name, tok, rules in [('sp', SentencePieceTokenizer(vocab_sz=400), None),
                             ('custom', None, defaults.text_proc_rules + [shout])]:
        from ulmfit_lit.data import DataBlock, TextBlock, CategoryBlock, ColReader, ColSplitter
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


def test_lm_predict_prints_tokens_as_fastai_and_takes_a_seed(sample):
    from ulmfit_lit.tokenize import decode_tokens, decode_spec_tokens
    _, dls_lm, _ = sample
    torch.manual_seed(0)
    lm = language_model_learner(dls_lm, AWD_LSTM, config=dict(awd_lstm_lm_config, **SMALL), pretrained=False, quiet=True)
    out = lm.predict("This movie, I think.", n_words=0)
    assert out == 'This movie , i think .'                                 # fastai's: tokens joined by spaces
    assert lm.predict("This movie, I think.", n_words=0, decoder=decode_tokens) == 'This movie, i think.'
    a, b = (lm.predict('The film', n_words=8, temperature=1., seed=3) for _ in range(2))
    assert a == b and a.startswith('The film ')
    assert len({lm.predict('The film', n_words=8, temperature=1., seed=s) for s in range(4)}) > 1
    assert lm.predict('The film', n_words=4, only_last_word=True, temperature=0) == lm.predict('The film', n_words=4, temperature=0)
