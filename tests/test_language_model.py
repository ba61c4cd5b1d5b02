"""Chapter 05, `ulmfit_lit.language_model`: sampling and generation, `LMLearner.predict`, the encoder handed on, the
pretrained weights (the course's IMDb model that ships with the package, and fastai's WikiText-103 weights that
`pretrained=True` downloads: here from a real HTTP server on 127.0.0.1 serving a small archive in WikiText-103's layout)."""
import hashlib
import io
import json
import pickle
import tarfile

import pytest
import torch

from ulmfit_lit.awd_lstm import AWD_LSTM, awd_lstm_clas_config, awd_lstm_lm_config, get_language_model, load_itos
from ulmfit_lit.classifier import text_classifier_learner
from ulmfit_lit.data import TextDataLoaders
from ulmfit_lit.download import KNOWN_CHECKS, URLs, archive_path
from ulmfit_lit.language_model import (IMDB_LM_SHA256, generate_ids, language_model_learner, pretrained_files,
                                       pretrained_sizes, resolve_pretrained, sample_next)
from ulmfit_lit.learner import Perplexity, accuracy
from ulmfit_lit.tokenize import decode_tokens

SMALL = dict(emb_sz=32, n_hid=64, n_layers=2)
TINY_WT103 = dict(emb_sz=16, n_hid=24, n_layers=2)      # the served "WikiText-103" model: tiny, for speed


@pytest.fixture(scope='module')
def lm_home(tmp_path_factory):
    "A home for this module's loaders (their token cache), restored after the module."
    with pytest.MonkeyPatch.context() as mp:
        home = tmp_path_factory.mktemp('lm_home')
        mp.setenv('ULMFIT_LIT_HOME', str(home))
        yield home


@pytest.fixture(scope='module')
def dls_lm(lm_home, sample_df):
    df = sample_df.groupby('is_valid').head(60).reset_index(drop=True)     # 60 training + 60 validation reviews
    return TextDataLoaders.from_df(df, text_col='text', is_lm=True, valid_col='is_valid', bs=8)


@pytest.fixture(scope='module')
def dls_clas(dls_lm, sample_df):
    df = sample_df.groupby('is_valid').head(60).reset_index(drop=True)
    return TextDataLoaders.from_df(df, text_col='text', label_col='label', valid_col='is_valid',
                                   text_vocab=dls_lm.vocab, bs=8)


# ---- sampling the next word ----

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


# ---- generation ----

def test_incremental_generation_equals_refeeding_on_random_model():
    torch.manual_seed(1)
    model = get_language_model(AWD_LSTM, 300, dict(awd_lstm_lm_config, emb_sz=24, n_hid=32, n_layers=3))
    prompt = torch.randint(10, 300, (17,))
    assert generate_ids(model, prompt, 25, temperature=0) == generate_ids(model, prompt, 25, temperature=0, refeed=True)


def test_generation_follows_the_weights_after_more_training(dls_lm, tmp_path):
    "Generation must use the current weights after the optimizer changed them (fused AdamW bumps no version counter)."
    torch.manual_seed(2)
    lm = language_model_learner(dls_lm, AWD_LSTM, config=dict(awd_lstm_lm_config, **SMALL), pretrained=False,
                                path=tmp_path, quiet=True)
    before = lm.predict('The film', n_words=10, temperature=0)
    lm.save('start')
    lm.fit(1, 1e-2)
    assert lm.predict('The film', n_words=10, temperature=0) != before            # training changed the model
    after = lm.predict('The film', n_words=10, temperature=0)
    assert after == lm.predict('The film', n_words=10, temperature=0, refeed=True)
    lm.load('start')                                            # back to the first weights: the first words again
    assert lm.predict('The film', n_words=10, temperature=0) == before


def test_lm_predict_prints_tokens_as_fastai_and_takes_a_seed(dls_lm):
    torch.manual_seed(0)
    lm = language_model_learner(dls_lm, AWD_LSTM, config=dict(awd_lstm_lm_config, **SMALL), pretrained=False, quiet=True)
    out = lm.predict("This movie, I think.", n_words=0)
    assert out == 'This movie , i think .'                                 # fastai's: tokens joined by spaces
    assert lm.predict("This movie, I think.", n_words=0, decoder=decode_tokens) == 'This movie, i think.'
    a, b = (lm.predict('The film', n_words=8, temperature=1., seed=3) for _ in range(2))
    assert a == b and a.startswith('The film ')
    assert len({lm.predict('The film', n_words=8, temperature=1., seed=s) for s in range(4)}) > 1
    assert lm.predict('The film', n_words=4, only_last_word=True, temperature=0) == lm.predict('The film', n_words=4, temperature=0)


def test_lm_predict_restores_training_mode(dls_lm):
    lm = language_model_learner(dls_lm, AWD_LSTM, config=dict(awd_lstm_lm_config, **SMALL), pretrained=False, quiet=True)
    lm.model.train()
    lm.predict('this movie', n_words=3, temperature=0.05)
    assert lm.model.training
    lm.model.eval()
    lm.predict('this movie', n_words=3, temperature=0.05)
    assert not lm.model.training


# ---- encoder and pretrained weights of the wrong size ----

def test_encoder_of_wrong_size_names_key_and_sizes(dls_lm, dls_clas, tmp_path):
    lm = language_model_learner(dls_lm, AWD_LSTM, config=dict(awd_lstm_lm_config, **SMALL), pretrained=False,
                                path=tmp_path, quiet=True)
    lm.save_encoder('enc_small')
    bigger = text_classifier_learner(dls_clas, AWD_LSTM, config=dict(awd_lstm_clas_config, emb_sz=48, n_hid=64, n_layers=2),
                                     pretrained=False, path=tmp_path, quiet=True)
    with pytest.raises(RuntimeError) as e:
        bigger.load_encoder('enc_small')
    assert 'encoder.weight' in str(e.value) and '48' in str(e.value) and '32' in str(e.value)


def test_wrong_size_pretrained_file_changes_nothing(dls_lm, dls_clas, tmp_path):
    small = language_model_learner(dls_lm, AWD_LSTM, config=dict(awd_lstm_lm_config, **SMALL), pretrained=False,
                                   path=tmp_path, quiet=True)
    wgts, vocab = small.save_pretrained('lm', 'vocab')
    other = dict(emb_sz=32, n_hid=80, n_layers=2)     # same embedding, other LSTM width
    lm = language_model_learner(dls_lm, AWD_LSTM, config=dict(awd_lstm_lm_config, **other), pretrained=False,
                                path=tmp_path, quiet=True)
    before = {k: v.clone() for k, v in lm.model.state_dict().items()}
    with pytest.raises(RuntimeError, match=r"size mismatch .*checkpoint \(256, 64\), model \(320, 80\)"):
        lm.load_pretrained(wgts, vocab)
    assert all(torch.equal(before[k], v) for k, v in lm.model.state_dict().items())
    clas = text_classifier_learner(dls_clas, AWD_LSTM, config=dict(awd_lstm_clas_config, **other), pretrained=False,
                                   path=tmp_path, quiet=True)
    before = {k: v.clone() for k, v in clas.model.state_dict().items()}
    with pytest.raises(RuntimeError, match='size mismatch'):
        clas.load_pretrained(wgts, vocab)
    assert all(torch.equal(before[k], v) for k, v in clas.model.state_dict().items())


# ---- the course's IMDb language model, shipped with the package ----

def test_shipped_model_is_found_offline_and_checked(home):
    wgts, vocab = pretrained_files(name='imdb')
    assert wgts.parent == home/'models'/'imdb_lm'
    assert all(v is not None for v in IMDB_LM_SHA256.values()), "the shipped model's checksums are not filled in"
    card = json.loads((wgts.parent/'model_card.json').read_text())
    assert card['files'] == IMDB_LM_SHA256                         # the card and the code agree on the files
    assert wgts.stat().st_size < 20 * 2**20
    sizes = pretrained_sizes('imdb')
    assert sizes == {k: card['config'][k] for k in ('emb_sz', 'n_hid', 'n_layers')}
    state = torch.load(wgts, weights_only=True)
    assert state['0.encoder.weight'].dtype == torch.float16 and len(load_itos(vocab)) == card['vocab_size']


@pytest.mark.parametrize('damage', ['truncate', 'flip'])
def test_damaged_weights_file_is_a_clear_error(home, damage):
    wgts, _ = pretrained_files(name='imdb')
    data = bytearray(wgts.read_bytes())
    if damage == 'truncate': data = data[:len(data) // 2]
    else: data[len(data) // 2] ^= 0xFF
    wgts.write_bytes(bytes(data))
    with pytest.raises(ValueError) as e: pretrained_files(name='imdb')
    msg = str(e.value)
    assert str(wgts) in msg and IMDB_LM_SHA256['imdb_lm.pth'] in msg and 'delete' in msg
    assert hashlib.sha256(bytes(data)).hexdigest() in msg               # what the file holds now, too


def test_learner_fine_tunes_from_the_shipped_model(home, sample_df, tmp_path):
    df = sample_df.groupby('is_valid').head(80).reset_index(drop=True)
    dls = TextDataLoaders.from_df(df, text_col='text', is_lm=True, valid_col='is_valid', bs=16)
    learn = language_model_learner(dls, AWD_LSTM, pretrained='imdb', metrics=[accuracy, Perplexity()], path=tmp_path,
                                   quiet=True)
    rand = language_model_learner(dls, AWD_LSTM, config=dict(awd_lstm_lm_config, **pretrained_sizes('imdb')),
                                  pretrained=False, metrics=[accuracy, Perplexity()], path=tmp_path, quiet=True)
    (_, acc, ppl), (_, r_acc, r_ppl) = learn.validate(), rand.validate()
    # before any fine-tuning, the IMDb model already predicts the sample's next words; random weights do not
    assert ppl < r_ppl / 10 and acc > 0.2 > r_acc, (ppl, r_ppl, acc, r_acc)


# ---- pretrained=True: fastai's WikiText-103 weights, downloaded ----

def wt103_archive(vocab: list[str]) -> tuple[bytes, dict, list[str]]:
    """A real archive in the layout of fastai's wt103-fwd.tgz (wt103-fwd/lstm_fwd.pth, wt103-fwd/itos_wt103.pkl) for a
    tiny AWD-LSTM: (its bytes, the weights in it, its vocab). Its vocab shares most but not all words with `vocab`,
    in another order, and has words of its own."""
    g = torch.Generator().manual_seed(103)
    words = [w for w in vocab[9:] if not w.startswith('xxfake')]
    kept = [words[i] for i in torch.randperm(len(words), generator=g).tolist()[:int(0.8 * len(words))]]
    itos = vocab[:9] + kept + ['wikipedia', 'encyclopaedia', 'xxwiki']
    torch.manual_seed(103)
    model = get_language_model(AWD_LSTM, len(itos), dict(awd_lstm_lm_config, **TINY_WT103))
    state = {k: v.clone() for k, v in model.state_dict().items()}
    for k in [k for k in state if k.endswith('.weight_hh_l0_raw')]:      # fastai's file keeps the dropped copy too
        state[k.replace('.weight_hh_l0_raw', '.module.weight_hh_l0')] = torch.zeros_like(state[k])
    files = {}
    buf = io.BytesIO(); torch.save(state, buf); files['wt103-fwd/lstm_fwd.pth'] = buf.getvalue()
    files['wt103-fwd/itos_wt103.pkl'] = pickle.dumps(itos)
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode='w:gz') as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name); info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return out.getvalue(), state, itos


@pytest.fixture(scope='module')
def wt103(dls_lm):
    return wt103_archive(dls_lm.vocab)


def serve_wt103(monkeypatch, server, data: bytes, sha256: str | None = None) -> str:
    "Serve `data` as wt103-fwd.tgz, make it the address `pretrained=True` fetches, with its size and sha256 (or `sha256`)."
    server.files['wt103-fwd.tgz'] = data
    url = server.url('wt103-fwd.tgz')
    monkeypatch.setattr(URLs, 'WT103_FWD', url)
    monkeypatch.setitem(KNOWN_CHECKS, url, (len(data), sha256 or hashlib.sha256(data).hexdigest()))
    return url


def test_pretrained_true_downloads_checks_unpacks_and_loads_wikitext103(home, tmp_path, dls_lm, wt103, http_server,
                                                                        monkeypatch, capfd):
    data, served, itos = wt103
    serve_wt103(monkeypatch, http_server, data)
    learn = language_model_learner(dls_lm, AWD_LSTM, path=tmp_path)             # fastai's default: pretrained=True
    assert 'pretrained weights: WikiText-103' in capfd.readouterr().err
    assert http_server.requests == ['/wt103-fwd.tgz']
    assert (home/'archive'/'wt103-fwd.tgz').read_bytes() == data                 # kept, as downloaded
    folder = home/'models'/'wt103-fwd'
    assert sorted(p.name for p in folder.iterdir()) == ['itos_wt103.pkl', 'lstm_fwd.pth']
    assert [p.name for p in (home/'models').iterdir()] == ['wt103-fwd']          # no staging folder left
    # the model takes the served weights' sizes, and every LSTM weight is the served one
    enc = learn.model[0]
    assert (enc.encoder.weight.shape[1], enc.rnns[0].weight_hh_l0_raw.shape[1], len(enc.rnns)) == (16, 24, 2)
    got = learn.model.state_dict()
    lstm_keys = [k for k in got if '.rnns.' in k]
    assert lstm_keys and all(torch.equal(got[k], served[k]) for k in lstm_keys)
    # embedding and decoder rows follow the words: a word both vocabs know gets its served row, another the mean row
    pos = {w: i for i, w in enumerate(itos)}
    shared = [i for i, w in enumerate(dls_lm.vocab) if w in pos]
    new = [i for i, w in enumerate(dls_lm.vocab) if w not in pos]
    assert len(shared) > 100 and len(new) > 20
    emb, old_emb = got['0.encoder.weight'], served['0.encoder.weight']
    assert torch.equal(emb[shared], old_emb[[pos[dls_lm.vocab[i]] for i in shared]])
    assert torch.allclose(emb[new], old_emb.mean(0).expand(len(new), -1))
    assert torch.equal(got['1.decoder.bias'][shared], served['1.decoder.bias'][[pos[dls_lm.vocab[i]] for i in shared]])
    # loaded, then frozen as fastai does: only the last layer group trains
    assert not enc.rnns[0].weight_hh_l0_raw.requires_grad and learn.model[1].decoder.weight.requires_grad
    # a second learner finds the folder: no second download
    language_model_learner(dls_lm, AWD_LSTM, path=tmp_path, quiet=True)
    assert http_server.requests == ['/wt103-fwd.tgz']


def test_wikitext103_download_shows_its_progress(home, wt103, http_server, monkeypatch, capfd):
    data, _, _ = wt103
    serve_wt103(monkeypatch, http_server, data)
    assert resolve_pretrained(True) == 'wt103'
    err = capfd.readouterr().err
    total = f'{len(data) / 2**20:.1f} MB'
    assert f'\rwt103-fwd.tgz |{"█" * 30}| 100.0%' in err and total in err and 'MB/s' in err, err


def test_wikitext103_download_cut_off_halfway_keeps_nothing(home, dls_lm, wt103, http_server, monkeypatch):
    data, _, _ = wt103
    serve_wt103(monkeypatch, http_server, data)
    http_server.cut['wt103-fwd.tgz'] = len(data) // 2             # Content-Length says all of it; half arrives
    with pytest.raises(RuntimeError, match=f'stopped at {len(data) // 2} of {len(data)} bytes; nothing was kept'):
        language_model_learner(dls_lm, AWD_LSTM, pretrained=True, quiet=True)
    assert list((home/'archive').iterdir()) == []                  # no half file, no temporary file
    assert not (home/'models').exists() or list((home/'models').iterdir()) == []   # nothing extracted


def test_wikitext103_with_a_wrong_checksum_is_refused_and_kept_nowhere(home, dls_lm, wt103, http_server, monkeypatch):
    data, _, _ = wt103
    expected = hashlib.sha256(b'the archive fastai published').hexdigest()
    serve_wt103(monkeypatch, http_server, data, sha256=expected)
    with pytest.raises(RuntimeError) as e:
        language_model_learner(dls_lm, AWD_LSTM, pretrained=True, quiet=True)
    msg = str(e.value)
    assert f'sha256 {expected}' in msg and f'sha256 {hashlib.sha256(data).hexdigest()}' in msg, msg
    assert 'nothing was kept' in msg
    assert list((home/'archive').iterdir()) == []
    assert not (home/'models').exists() or list((home/'models').iterdir()) == []


def test_pretrained_true_offline_falls_back_to_the_course_model(home, dls_lm, unreachable_url, monkeypatch, capfd):
    monkeypatch.setattr(URLs, 'WT103_FWD', unreachable_url('wt103-fwd.tgz'))
    learn = language_model_learner(dls_lm, AWD_LSTM)                              # pretrained=True
    err = capfd.readouterr().err
    assert 'WikiText-103 weights could not be fetched' in err and "falling back to the course's IMDb language model" in err
    assert str(home/'archive') in err and 'pretrained weights: imdb_lm, the course IMDb model' in err
    # the model is the shipped IMDb model: its sizes and its LSTM weights
    sizes = pretrained_sizes('imdb')
    enc = learn.model[0]
    assert (enc.encoder.weight.shape[1], enc.rnns[0].weight_hh_l0_raw.shape[1], len(enc.rnns)) == \
        (sizes['emb_sz'], sizes['n_hid'], sizes['n_layers'])
    shipped = torch.load(pretrained_files(name='imdb')[0], weights_only=True)
    assert torch.equal(enc.rnns[0].weight_hh_l0_raw.detach(), shipped['0.rnns.0.weight_hh_l0_raw'].float())
    assert not (home/'models'/'wt103-fwd').exists()


def test_explicit_wt103_offline_says_how_to_place_the_file(home, dls_lm, unreachable_url, monkeypatch):
    monkeypatch.setattr(URLs, 'WT103_FWD', unreachable_url('wt103-fwd.tgz'))
    with pytest.raises(ConnectionError) as e:
        language_model_learner(dls_lm, AWD_LSTM, config=dict(awd_lstm_lm_config, **SMALL), pretrained='wt103')
    msg = str(e.value)
    assert f"put it at {home/'archive'/'wt103-fwd.tgz'}" in msg, msg
    assert 'pretrained=False' in msg and "pretrained='imdb'" in msg


def test_pretrained_true_backwards_offline_is_an_error(home, dls_lm, unreachable_url, monkeypatch):
    "The course's IMDb model reads forwards only: a backwards LM with no WikiText-103 to fetch cannot fall back to it."
    monkeypatch.setattr(URLs, 'WT103_BWD', unreachable_url('wt103-bwd.tgz'))
    with pytest.raises(ConnectionError, match="backward model.*wt103-bwd.tgz"):
        language_model_learner(dls_lm, AWD_LSTM, backwards=True, quiet=True)


def test_wikitext103_placed_by_hand_is_used_offline(home, wt103, unreachable_url, monkeypatch, capfd):
    monkeypatch.setattr(URLs, 'WT103_FWD', unreachable_url('wt103-fwd.tgz'))
    assert resolve_pretrained(True) == 'imdb'                      # nothing to fetch: the course's model
    assert 'imdb_lm, the course IMDb model' in capfd.readouterr().err
    archive_path(URLs.WT103_FWD).parent.mkdir(parents=True, exist_ok=True)
    archive_path(URLs.WT103_FWD).write_bytes(wt103[0])            # the archive put where the message says
    assert resolve_pretrained(True) == 'wt103'
    assert 'WikiText-103' in capfd.readouterr().err
    assert pretrained_sizes('wt103') == TINY_WT103
    assert resolve_pretrained(False) is None and resolve_pretrained('none') is None
    assert resolve_pretrained('imdb') == 'imdb' and resolve_pretrained('wt103') == 'wt103'
    with pytest.raises(ValueError, match="'wt103', 'imdb'"): resolve_pretrained('wikipedia')
