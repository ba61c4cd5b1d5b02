"""Appendix F, `ulmfit_lit.pretrain`: the course pretrains its own language model on IMDb's unlabelled reviews. The shipped
model reproduces its model card; `ulmfit-lit pretrain` (a small run here) resumes after a stop or a kill to the very
same weights, refuses a checkpoint made with other settings, and a second cycle needs its starting model's card."""
import json
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch

from ulmfit_lit.awd_lstm import AWD_LSTM, awd_lstm_lm_config, get_language_model, load_itos, load_pretrained_lm
from ulmfit_lit.corpus import tokenize_files
from ulmfit_lit.data import LMDataLoader
from ulmfit_lit.language_model import pretrained_files, pretrained_sizes
from ulmfit_lit.learner import DataLoaders, Learner, ModelResetter, Perplexity, accuracy
from ulmfit_lit.pretrain import SampledSoftmaxLM


def test_shipped_model_reproduces_its_held_out_perplexity(imdb_path, home):
    "The held-out reviews of its card (drawn as `unsup_corpus` draws them), scored as `pretrain_lm` scored them."
    wgts, vocab_file = pretrained_files(name='imdb')
    card = json.loads((wgts.parent/'model_card.json').read_text())
    cfg = card['config']
    files = sorted((imdb_path/'unsup').glob('*.txt'))
    valid = np.sort(np.random.default_rng(cfg['seed']).permutation(len(files))[:cfg['n_valid']])
    vocab = load_itos(vocab_file)
    store = tokenize_files([files[i] for i in valid]).numericalize(vocab)
    lm = get_language_model(AWD_LSTM, len(vocab), dict(awd_lstm_lm_config, **pretrained_sizes('imdb')))
    load_pretrained_lm(lm, wgts, vocab_file, vocab)
    model = SampledSoftmaxLM(lm, torch.full((len(vocab),), 1 / len(vocab)), cfg['n_samples'])   # eval: full softmax
    dl = LMDataLoader(store, bs=cfg['bs'], seq_len=cfg['bptt'])
    learn = Learner(DataLoaders(dl, dl), model, loss_func=model.loss, metrics=[accuracy, Perplexity()],
                    cbs=[ModelResetter()], quiet=True)
    _, acc, ppl = learn.validate()
    assert abs(ppl / card['valid_perplexity'] - 1) < 0.01, (ppl, card['valid_perplexity'])
    assert abs(acc - card['valid_accuracy']) < 0.005, (acc, card['valid_accuracy'])


TINY = ['--emb-sz', '16', '--n-hid', '32', '--max-vocab', '800', '--n-valid', '20', '--bs', '8', '--bptt', '16',
        '--n-samples', '64', '--epochs', '1', '--threads', '1']


@pytest.fixture(scope='module')
def tiny_unsup(tmp_path_factory, sample_df):
    "An IMDb-like folder whose unsup/ holds 150 reviews of the sample, and a home for the runs."
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv('ULMFIT_LIT_HOME', str(tmp_path_factory.mktemp('pretrain_home')))
        folder = tmp_path_factory.mktemp('tiny')/'imdb'
        (folder/'unsup').mkdir(parents=True)
        for k, text in enumerate(sample_df.text[:150]): (folder/'unsup'/f'{k}_0.txt').write_text(text)
        yield folder


def _pretrain(folder, out, *extra, **kw):
    return subprocess.run([sys.executable, '-m', 'ulmfit_lit', 'pretrain', str(folder), '--out', str(out), *TINY, *extra],
                          capture_output=True, text=True, **kw)


def test_pretrain_command_resumes_after_a_stop_and_a_kill(tiny_unsup, tmp_path):
    whole = _pretrain(tiny_unsup, tmp_path/'whole', check=True)
    assert len(whole.stdout.splitlines()) == 1 and 'train_loss' in whole.stderr   # results on stdout, progress on stderr
    summary = json.loads(whole.stdout)
    assert summary['done'] and (tmp_path/'whole'/'imdb_lm.tgz').exists()
    assert 'resumed from' not in whole.stderr
    stopped = json.loads(_pretrain(tiny_unsup, tmp_path/'stop', '--stop-after', '25', check=True).stdout.splitlines()[-1])
    assert (stopped['steps'], stopped['done']) == (25, False)
    resumed = _pretrain(tiny_unsup, tmp_path/'stop', check=True)
    assert f"resumed from {tmp_path/'stop'/'pretrain_state.pth'} at training step 25/{summary['total_steps']}" \
        in resumed.stderr, resumed.stderr[-2000:]
    # killed with SIGKILL in the middle of the run, checkpointing every step: resumes from the last good checkpoint
    out = tmp_path/'kill'
    state = out/'pretrain_state.pth'
    p = subprocess.Popen([sys.executable, '-m', 'ulmfit_lit', 'pretrain', str(tiny_unsup), '--out', str(out), *TINY,
                          '--ckpt-minutes', '0'], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while not state.exists() and time.time() < deadline: time.sleep(0.05)
    time.sleep(0.3)
    p.send_signal(signal.SIGKILL); p.wait()
    assert p.returncode == -signal.SIGKILL, 'the run ended before it was killed: nothing tested'
    torch.load(state, weights_only=True)                     # the checkpoint is whole (a kill can only strand a .tmp)
    (out/'.pretrain_state.pth.k1ll3d.tmp').write_bytes(b'half a checkpoint')   # as a kill in the middle of a save leaves
    again = _pretrain(tiny_unsup, out, check=True)
    assert 'resumed from' in again.stderr
    assert not list(out.glob('.*.tmp'))                      # the resumed run cleared what the kill left half-written
    for d in ('stop', 'kill'):                               # bit for bit the run that was never interrupted
        a, b = (torch.load(tmp_path/x/'imdb_lm.pth', weights_only=True) for x in ('whole', d))
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), d
    card = json.loads((tmp_path/'stop'/'model_card.json').read_text())
    assert card['steps'] == summary['steps'] and card['config']['emb_sz'] == 16


def test_pretrain_refuses_a_checkpoint_made_with_other_settings(tiny_unsup, tmp_path):
    _pretrain(tiny_unsup, tmp_path/'o', '--stop-after', '5', check=True)
    r = _pretrain(tiny_unsup, tmp_path/'o', '--lr', '0.01')
    assert r.returncode != 0 and 'holds a checkpoint made with' in r.stderr and 'another out folder' in r.stderr


def test_pretrain_from_a_model_without_its_card_fails_before_training(tiny_unsup, tmp_path):
    # --init needs the starting model's card for the new one; without it the command stops at once, writing nothing
    whole = tmp_path/'first'
    _pretrain(tiny_unsup, whole, check=True)
    (whole/'model_card.json').unlink()
    r = _pretrain(tiny_unsup, tmp_path/'second', '--init', str(whole))
    assert r.returncode != 0 and 'model_card.json is missing' in r.stderr
    assert not (tmp_path/'second').exists()
