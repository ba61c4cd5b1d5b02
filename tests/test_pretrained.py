"""The language model that ships with the course: found offline through untar_data, checked by sha256, loaded with
weights_only; it reproduces its model card; and `ulmfit-lit pretrain` resumes after a stop or a kill."""
import json
import shutil
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import pytest
import torch

from ulmfit_lit.download import URLs, untar_data, archive_path, PACKAGED_CHECKS
from ulmfit_lit.tokenize import tokenize_files
from ulmfit_lit.data import LMDataLoader, TextDataLoaders
from ulmfit_lit.awd_lstm import AWD_LSTM, awd_lstm_lm_config, get_language_model, load_pretrained_lm, load_itos
from ulmfit_lit.learner import accuracy, Perplexity
from ulmfit_lit.language_model import (pretrained_files, pretrained_sizes, evaluate_lm, language_model_learner,
                                       IMDB_LM_SHA256, default_pretrained)


def _card(wgts):
    return json.loads((wgts.parent/'model_card.json').read_text())


def test_shipped_model_is_found_offline_and_checked(home):
    assert default_pretrained() == 'imdb'                          # no WikiText-103 archive in this home
    wgts, vocab = pretrained_files(name='imdb')
    assert wgts.parent == home/'models'/'imdb_lm'
    assert all(v is not None for v in IMDB_LM_SHA256.values()), "the shipped model's checksums are not filled in"
    card = _card(wgts)
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


def test_archive_from_an_older_package_is_replaced(home):
    # An upgrade: the archive folder still holds the archive an older version of the package shipped (here, another
    # tgz of another size) and its extraction was deleted, as the checksum error says. The package's copy replaces it.
    untar_data(URLs.IMDB_SAMPLE)                                  # puts the packaged sample archive in the home
    old = archive_path(URLs.IMDB_LM)
    old.write_bytes(archive_path(URLs.IMDB_SAMPLE).read_bytes())
    shutil.rmtree(home/'models'/'imdb_lm', ignore_errors=True)
    wgts, _ = pretrained_files(name='imdb')
    assert _card(wgts)['files'] == IMDB_LM_SHA256
    assert old.stat().st_size == PACKAGED_CHECKS[URLs.IMDB_LM][0]


def test_learner_fine_tunes_from_the_shipped_model(home, tmp_path):
    df = pd.read_csv(untar_data(URLs.IMDB_SAMPLE)/'texts.csv').groupby('is_valid').head(80).reset_index(drop=True)
    dls = TextDataLoaders.from_df(df, text_col='text', is_lm=True, valid_col='is_valid', bs=16)
    learn = language_model_learner(dls, AWD_LSTM, metrics=[accuracy, Perplexity()], path=tmp_path, quiet=True)
    rand = language_model_learner(dls, AWD_LSTM, config=dict(awd_lstm_lm_config, **pretrained_sizes('imdb')),
                                  pretrained=False, metrics=[accuracy, Perplexity()], path=tmp_path, quiet=True)
    (_, acc, ppl), (_, r_acc, r_ppl) = learn.validate(), rand.validate()
    # before any fine-tuning, the IMDb model already predicts the sample's next words; random weights do not
    assert ppl < r_ppl / 10 and acc > 0.2 > r_acc, (ppl, r_ppl, acc, r_acc)


def test_shipped_model_reproduces_its_held_out_perplexity(imdb_path, home):
    wgts, vocab_file = pretrained_files(name='imdb')
    card = _card(wgts); cfg = card['config']
    files = sorted((imdb_path/'unsup').glob('*.txt'))
    valid = np.sort(np.random.default_rng(cfg['seed']).permutation(len(files))[:cfg['n_valid']])   # as unsup_corpus
    vocab = load_itos(vocab_file)
    store = tokenize_files([files[i] for i in valid]).numericalize(vocab)
    model = get_language_model(AWD_LSTM, len(vocab), dict(awd_lstm_lm_config, **pretrained_sizes('imdb')))
    load_pretrained_lm(model, wgts, vocab_file, vocab)
    res = evaluate_lm(model, LMDataLoader(store, bs=cfg['bs'], seq_len=cfg['bptt']))
    assert abs(res['perplexity'] / card['valid_perplexity'] - 1) < 0.01, (res, card['valid_perplexity'])
    assert abs(res['accuracy'] - card['valid_accuracy']) < 0.005


TINY = ['--emb-sz', '16', '--n-hid', '32', '--max-vocab', '800', '--n-valid', '20', '--bs', '8', '--bptt', '16',
        '--n-samples', '64', '--epochs', '1', '--threads', '1']


@pytest.fixture(scope='module')
def tiny_unsup(tmp_path_factory):
    home = tmp_path_factory.mktemp('home')
    os.environ['ULMFIT_LIT_HOME'] = str(home)
    folder = tmp_path_factory.mktemp('tiny')/'imdb'
    (folder/'unsup').mkdir(parents=True)
    for k, text in enumerate(pd.read_csv(untar_data(URLs.IMDB_SAMPLE)/'texts.csv').text[:150]):
        (folder/'unsup'/f'{k}_0.txt').write_text(text)
    return folder


def _pretrain(folder, out, *extra, **kw):
    return subprocess.run([sys.executable, '-m', 'ulmfit_lit', 'pretrain', str(folder), '--out', str(out), *TINY, *extra],
                          capture_output=True, text=True, **kw)


def test_pretrain_command_resumes_after_a_stop_and_a_kill(tiny_unsup, tmp_path):
    whole = _pretrain(tiny_unsup, tmp_path/'whole', check=True)
    summary = json.loads(whole.stdout.strip().splitlines()[-1])
    assert summary['done'] and (tmp_path/'whole'/'imdb_lm.tgz').exists()
    stopped = json.loads(_pretrain(tiny_unsup, tmp_path/'stop', '--stop-after', '25', check=True).stdout.splitlines()[-1])
    assert (stopped['steps'], stopped['done']) == (25, False)
    resumed = _pretrain(tiny_unsup, tmp_path/'stop', check=True)
    assert 'resumed from' in resumed.stderr and 'at step 25/' in resumed.stderr
    # killed with SIGKILL in the middle of the run, checkpointing every step: resumes from the last good checkpoint
    out = tmp_path/'kill'
    p = subprocess.Popen([sys.executable, '-m', 'ulmfit_lit', 'pretrain', str(tiny_unsup), '--out', str(out), *TINY,
                          '--ckpt-minutes', '0'], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.time() + 120
    while not (out/'pretrain_state.pt').exists() and time.time() < deadline: time.sleep(0.05)
    time.sleep(0.3)
    p.send_signal(signal.SIGKILL); p.wait()
    torch.load(out/'pretrain_state.pt', weights_only=True)   # the checkpoint is whole (a kill can only strand a .tmp)
    _pretrain(tiny_unsup, out, check=True)
    assert not list(out.glob('.*.tmp'))                      # the resumed run cleared what the kill left half-written
    for d in ('stop', 'kill'):                               # bit for bit the run that was never interrupted
        a, b = (torch.load(tmp_path/x/'imdb_lm.pth', weights_only=True) for x in ('whole', d))
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), d
    card = json.loads((tmp_path/'stop'/'model_card.json').read_text())
    assert card['steps'] == summary['steps'] and card['config']['emb_sz'] == 16


def test_pretrain_refuses_a_checkpoint_made_with_other_settings(tiny_unsup, tmp_path):
    _pretrain(tiny_unsup, tmp_path/'o', '--stop-after', '5', check=True)
    r = _pretrain(tiny_unsup, tmp_path/'o', '--lr', '0.01')
    assert r.returncode != 0 and 'was made with' in r.stderr and 'another out folder' in r.stderr


def test_default_pretrained_prefers_wikitext103_when_it_is_there(home, capsys):
    from ulmfit_lit.download import archive_path
    from ulmfit_lit.language_model import resolve_pretrained
    assert resolve_pretrained(True) == 'imdb'
    assert "imdb_lm, the course IMDb model" in capsys.readouterr().err
    archive_path(URLs.WT103_FWD).parent.mkdir(parents=True, exist_ok=True)
    archive_path(URLs.WT103_FWD).write_bytes(b'')            # only its presence matters for the choice
    assert resolve_pretrained(True) == 'wt103'
    assert 'WikiText-103' in capsys.readouterr().err
    assert resolve_pretrained(False) is None and resolve_pretrained('none') is None
    with pytest.raises(ValueError, match="'wt103', 'imdb'"): resolve_pretrained('wikipedia')


def test_seed_tutorial_opening_lines(imdb_home, monkeypatch):
    "fastai's text tutorial opens with these lines; they run verbatim after `from ulmfit_lit.all import *`."
    monkeypatch.setenv('ULMFIT_LIT_HOME', str(imdb_home))
    ns = {}
    exec("from ulmfit_lit.all import *\n"
         "path = untar_data(URLs.IMDB)\n"
         "listing = path.ls()\n"
         "train_listing = (path/'train').ls()\n", ns)
    assert {'train', 'test', 'unsup'} <= {p.name for p in ns['listing']}
    assert {'neg', 'pos'} <= {p.name for p in ns['train_listing']}
    assert repr(ns['train_listing']).startswith(f"(#{len(ns['train_listing'])}) [Path(")


def test_pretrain_from_a_model_without_its_card_fails_before_training(tiny_unsup, tmp_path):
    # --init needs the starting model's card for the new one; without it the command stops at once, writing nothing
    whole = tmp_path/'first'
    _pretrain(tiny_unsup, whole, check=True)
    (whole/'model_card.json').unlink()
    r = _pretrain(tiny_unsup, tmp_path/'second', '--init', str(whole))
    assert r.returncode != 0 and 'model_card.json is missing' in r.stderr
    assert not (tmp_path/'second').exists()
