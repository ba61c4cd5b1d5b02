"""Chapters 05-07 end to end on the IMDb sample: language model, classifier, export, the ulmfit-lit command."""
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import torch

from ulmfit_lit.download import URLs, untar_data
from ulmfit_lit.data import TextDataLoaders
from ulmfit_lit.awd_lstm import AWD_LSTM, awd_lstm_lm_config, awd_lstm_clas_config
from ulmfit_lit.learner import accuracy, set_seed, Callback, FitCheckpoint
from ulmfit_lit.language_model import language_model_learner, generate_ids
from ulmfit_lit.classifier import text_classifier_learner, load_text_learner

SMALL = dict(emb_sz=32, n_hid=64, n_layers=2)


@pytest.fixture(scope='module')
def sample_df(tmp_path_factory):
    home = tmp_path_factory.mktemp('home')
    os.environ['ULMFIT_LIT_HOME'] = str(home)
    df = pd.read_csv(untar_data(URLs.IMDB_SAMPLE)/'texts.csv')
    return df.groupby('is_valid').head(120).reset_index(drop=True)   # 120 train + 120 valid reviews


@pytest.fixture(scope='module')
def dls_lm(sample_df):
    return TextDataLoaders.from_df(sample_df, text_col='text', is_lm=True, valid_col='is_valid', bs=16)


def test_pretrained_weights_missing_offline_says_what_to_do(dls_lm, monkeypatch, tmp_path):
    monkeypatch.setenv('ULMFIT_LIT_HOME', str(tmp_path))
    with pytest.raises(RuntimeError) as e:
        language_model_learner(dls_lm, AWD_LSTM, config=dict(awd_lstm_lm_config, **SMALL), pretrained='wt103')
    msg = str(e.value)
    assert 'wt103-fwd.tgz' in msg and 'pretrained=False' in msg


def test_lm_trains_generates_and_hands_encoder_to_classifier(sample_df, dls_lm, tmp_path):
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
    dls = TextDataLoaders.from_df(sample_df, text_col='text', label_col='label', valid_col='is_valid',
                                  text_vocab=dls_lm.vocab, bs=16)
    clas = text_classifier_learner(dls, AWD_LSTM, config=dict(awd_lstm_clas_config, **SMALL), pretrained=False,
                                   metrics=accuracy, path=tmp_path, quiet=True)
    clas.load_encoder('enc')
    assert torch.equal(clas.model[0].module.encoder.weight, lm.model[0].encoder.weight)
    clas.fit_one_cycle(1, 1e-2)
    cat, idx, probs = clas.predict('A wonderful film.')
    assert cat in ('negative', 'positive') and cat == dls.vocab[1][int(idx)]
    assert abs(float(probs.sum()) - 1) < 1e-5
    texts = sample_df.text[sample_df.is_valid].tolist()[:10]
    preds, targs = clas.get_preds(dl=dls.test_dl(texts))
    assert targs is None and preds.shape == (10, 2)
    assert torch.allclose(preds[3], clas.predict(texts[3])[2], atol=1e-4)   # the test_dl keeps the input order
    # an exported classifier predicts the same after loading (no pickled code)
    clas.export('clas.pth')
    loaded = load_text_learner(tmp_path/'clas.pth')
    assert loaded.predict(texts[0])[0] == clas.predict(texts[0])[0]
    assert torch.allclose(loaded.predict(texts[0])[2], clas.predict(texts[0])[2], atol=1e-5)


def test_encoder_of_wrong_size_names_key_and_sizes(sample_df, dls_lm, tmp_path):
    lm = language_model_learner(dls_lm, AWD_LSTM, config=dict(awd_lstm_lm_config, **SMALL), pretrained=False,
                                path=tmp_path, quiet=True)
    lm.save_encoder('enc_small')
    dls = TextDataLoaders.from_df(sample_df, text_col='text', label_col='label', valid_col='is_valid',
                                  text_vocab=dls_lm.vocab, bs=16)
    bigger = text_classifier_learner(dls, AWD_LSTM, config=dict(awd_lstm_clas_config, emb_sz=48, n_hid=64, n_layers=2),
                                     pretrained=False, path=tmp_path, quiet=True)
    with pytest.raises(RuntimeError) as e:
        bigger.load_encoder('enc_small')
    assert 'encoder.weight' in str(e.value) and '48' in str(e.value) and '32' in str(e.value)


def test_incremental_generation_equals_refeeding_on_random_model():
    from ulmfit_lit.awd_lstm import get_language_model
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


def _cli(*args, cwd=None, input=None):
    return subprocess.run([sys.executable, '-m', 'ulmfit_lit', *args], capture_output=True, text=True,
                          cwd=cwd, input=input, env=dict(os.environ))


def test_cli_help_teaches():
    r = _cli('--help')
    assert r.returncode == 0
    for cmd in ('demo', 'train', 'predict', 'generate'): assert cmd in r.stdout


def test_cli_train_predict_generate_resume(sample_df, tmp_path):
    csv = tmp_path/'reviews.csv'
    sample_df.to_csv(csv, index=False)
    out = tmp_path/'out'
    r = _cli('train', str(csv), '--out', str(out), '--size', 'small', '--lm-epochs', '1', '--clas-epochs', '1', '--bs', '16')
    assert r.returncode != 0 and "'n_hid': 192" in r.stderr and "'n_hid': 768" in r.stderr   # small vs the weights' sizes
    r = _cli('train', str(csv), '--out', str(out), '--size', 'small', '--pretrained', 'none', '--lm-epochs', '1',
             '--clas-epochs', '1', '--bs', '16')
    assert r.returncode == 0, r.stderr[-2000:]
    result = json.loads(r.stdout.strip().splitlines()[-1])      # results on stdout, progress on stderr
    assert Path(result['classifier']).exists()
    # the reported accuracy is the exported classifier's, text by text, on the validation reviews
    valid = sample_df[sample_df.is_valid]
    rp = _cli('predict', result['classifier'], *valid.text)
    assert rp.returncode == 0, rp.stderr[-2000:]
    cats = [json.loads(l)['category'] for l in rp.stdout.strip().splitlines()]
    assert len(cats) == len(valid)
    assert abs(sum(c == l for c, l in zip(cats, valid.label)) / len(valid) - result['accuracy']) < 1e-6
    assert 'epoch' in r.stderr and 'train_loss' in r.stderr
    stamps = {p.name: p.stat().st_mtime for p in (out/'models').glob('*stage*.pth')}
    assert 'lm_stage2.pth' in stamps and 'clas_stage1.pth' in stamps
    r2 = _cli('train', str(csv), '--out', str(out), '--size', 'small', '--pretrained', 'none', '--lm-epochs', '1',
              '--clas-epochs', '1', '--bs', '16', '--resume')
    assert r2.returncode == 0, r2.stderr[-2000:]
    assert {p.name: p.stat().st_mtime for p in (out/'models').glob('*stage*.pth')} == stamps   # nothing retrained
    r3 = _cli('predict', result['classifier'], 'I loved it, a masterpiece.', 'Dreadful and dull.')
    assert r3.returncode == 0, r3.stderr[-2000:]
    lines = [json.loads(l) for l in r3.stdout.strip().splitlines()]
    assert len(lines) == 2 and all(l['category'] in ('negative', 'positive') for l in lines)
    assert all(abs(sum(l['probabilities'].values()) - 1) < 1e-4 for l in lines)
    r3s = _cli('predict', result['classifier'], input='I loved it, a masterpiece.\n\nDreadful and dull.\n')  # from stdin
    assert r3s.returncode == 0 and [json.loads(l) for l in r3s.stdout.strip().splitlines()] == lines  # blank line skipped
    r4 = _cli('generate', result['language_model'], 'The film', '--n-words', '5', '--temperature', '0')
    assert r4.returncode == 0, r4.stderr[-2000:]
    assert r4.stdout.lower().startswith('the film')
    r5, r6 = (_cli('generate', result['language_model'], 'The film', '--n-words', '6', '-n', '3', '--seed', '7')
              for _ in range(2))
    lines = r5.stdout.strip().splitlines()
    assert r5.returncode == 0 and len(lines) == 3 and r5.stdout == r6.stdout   # 3 continuations, the same each run
    assert len(set(lines)) == 3                                  # each continuation sampled afresh, not one seed thrice


def test_cli_demo_prints_its_results_on_stdout(tmp_path, home):
    "`ulmfit-lit demo` (random weights, no comparisons: the cheap path): the results table, the three demo reviews, its time."
    from ulmfit_lit.cli import DEMO_REVIEWS
    r = _cli('demo', '--pretrained', 'none', '--no-compare', cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    # by default no LM fine-tuning: the classifier's stages only (its epoch tables have an accuracy column, an LM's a perplexity)
    assert re.search(r'^# ULMFiT from random weights: AWD-LSTM \d+/\d+/\d+, gradual unfreezing$', r.stderr, re.M)
    assert 'LM fine-tuning' not in r.stderr and 'perplexity' not in r.stderr
    lines = r.stdout.strip().splitlines()                      # results only: the epoch tables went to stderr
    assert lines[0].startswith('validation accuracy (same 200 reviews)') and 'train_loss' not in r.stdout
    acc = float(lines[1].split()[-2])
    assert lines[1].startswith('ULMFiT from random weights') and 0 < acc < 1
    assert lines[2].startswith('always the most common label (negative)') and lines[2].endswith('0.535')
    reviews = lines[3:6]
    assert [l.split(maxsplit=3)[-1] for l in reviews] == DEMO_REVIEWS
    assert all(l.split()[0] in ('positive', 'negative') and l.split()[2] in ('right', 'WRONG') for l in reviews)
    assert lines[6].startswith('# done in') and 'train_loss' in r.stderr
    assert [p.name for p in tmp_path.iterdir()] == ["home"]    # nothing written where it was run but the test home


def test_cli_bad_input_is_a_clear_error(sample_df, tmp_path):
    csv = tmp_path/'bad.csv'
    sample_df.rename(columns={'text': 'review'}).to_csv(csv, index=False)
    r = _cli('train', str(csv), '--out', str(tmp_path/'o'), '--size', 'small', '--pretrained', 'none')
    assert r.returncode != 0 and "no column 'text'" in r.stderr and '--text-col' in r.stderr
    r = _cli('train', str(tmp_path/'missing'), '--size', 'small', cwd=tmp_path)     # no --out: the default folder
    assert r.returncode != 0 and 'neither a folder nor a .csv' in r.stderr
    assert not (tmp_path/'ulmfit_out').exists()      # refused before anything is written


def _imdb_like_folder(df, root: Path) -> Path:
    "A small folder in fastai's IMDb layout (train/test/{pos,neg}, unsup) made from the sample's reviews."
    for i, row in df.iterrows():
        split = 'test' if row.is_valid else 'train'
        folder = root/split/('pos' if row.label == 'positive' else 'neg')
        folder.mkdir(parents=True, exist_ok=True)
        (folder/f'{i}_0.txt').write_text(row.text, encoding='utf-8')
    (root/'unsup').mkdir()
    for i, text in enumerate(df.text[:20]): (root/'unsup'/f'{i}_0.txt').write_text(text[::-1], encoding='utf-8')
    return root


def test_fastai_tutorial_code_on_a_small_imdb_folder(sample_df, tmp_path):
    "fastai's text tutorial, call for call, on a small folder (small model and no WikiText-103: CPU, offline)."
    from ulmfit_lit.all import (TextDataLoaders, DataBlock, TextBlock, CategoryBlock, get_text_files, parent_label,
                                GrandparentSplitter, RandomSplitter, partial, language_model_learner,
                                text_classifier_learner, AWD_LSTM, accuracy, Perplexity)
    path = _imdb_like_folder(sample_df, tmp_path/'imdb')
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


def test_export_keeps_a_backwards_classifier_backwards(sample_df, tmp_path):
    dls = TextDataLoaders.from_df(sample_df, text_col='text', label_col='label', valid_col='is_valid', bs=16,
                                  backwards=True)
    assert dls.backwards
    learn = text_classifier_learner(dls, AWD_LSTM, config=dict(awd_lstm_clas_config, **SMALL), pretrained=False,
                                    path=tmp_path, quiet=True)
    learn.export('bwd.pth')
    loaded = load_text_learner(tmp_path/'bwd.pth')
    assert loaded.backwards and loaded.dls.backwards
    text = sample_df.text[0]
    assert torch.allclose(loaded.predict(text)[2], learn.predict(text)[2], atol=1e-5)
    # what makes it backwards: every text's ids are the forward ids reversed, in training batches and in new texts
    fwd = TextDataLoaders.from_df(sample_df, text_col='text', label_col='label', valid_col='is_valid', bs=16)
    assert fwd.vocab == dls.vocab and not fwd.backwards
    xf, xb, xl = (next(iter(d.test_dl([text])))[0][0] for d in (fwd, dls, loaded.dls))
    assert torch.equal(xb, xf.flip(0)) and torch.equal(xl, xb) and not torch.equal(xb, xf)
    (vf, _), (vb, _) = next(iter(fwd.valid)), next(iter(dls.valid))
    pad = dls.vocab[0].index('xxpad')
    for rf, rb in zip(vf, vb): assert torch.equal(rb[rb != pad], rf[rf != pad].flip(0))


def test_cli_train_from_the_shipped_lm_records_stages_and_resumes(sample_df, tmp_path):
    "`train --skip-lm` on an IMDb-layout folder: four recorded stages; resumed between or inside stages, the same summary."
    path = _imdb_like_folder(sample_df, tmp_path/'imdb')
    r = _cli('train', str(path), '--out', str(tmp_path/'x'), '--skip-lm', '--pretrained', 'none')
    assert r.returncode != 0 and '--skip-lm' in r.stderr and 'not none' in r.stderr
    out = tmp_path/'out'
    args = ('train', str(path), '--out', str(out), '--skip-lm', '--pretrained', 'imdb', '--stage-valid', '40',
            '--clas-epochs', '1', '--bs', '16', '--baseline')
    r = _cli(*args)
    assert r.returncode == 0, r.stderr[-2000:]
    result = json.loads(r.stdout.strip().splitlines()[-1])
    summary = json.loads((out/'summary.json').read_text())
    assert result['language_model'] is None and not (out/'models'/'lm_encoder.pth').exists()   # no LM stage ran
    assert [s['freeze_to'] for s in summary['stages']] == [-1, -2, -3, 0]
    assert summary['n_valid'] == 120 and sum(map(sum, summary['confusion'])) == 120   # final accuracy on all of it
    assert r.stderr.count('train_loss') == 4                              # one epoch table per stage, on stderr
    diag = sum(summary['confusion'][i][i] for i in range(2))
    assert abs(diag / 120 - summary['accuracy']) < 1e-6
    # from the shipped LM the classifier learns: above always answering the commoner class, and both classes predicted
    assert summary['accuracy'] > summary['majority'] + 0.05 and all(sum(col) > 0 for col in zip(*summary['confusion']))
    counts = sample_df[sample_df.is_valid].label.value_counts()
    assert summary['majority'] == counts.max() / 120 and summary['baseline_accuracy'] > summary['majority'] + 0.1
    wrong = summary['most_wrong']
    assert len(wrong) == min(10, 120 - diag) and all(w['label'] != w['predicted'] for w in wrong)
    assert [w['probability'] for w in wrong] == sorted((w['probability'] for w in wrong), reverse=True)
    assert all(w['text'].startswith('xxbos') for w in wrong)
    # a run killed after its third stage: --resume trains only the last stage and reports all four
    (out/'models'/'clas_stage4.pth').unlink()
    first3 = summary['stages'][:3]
    r2 = _cli(*args[:-1], '--resume')
    assert r2.returncode == 0, r2.stderr[-2000:]
    again = json.loads((out/'summary.json').read_text())
    assert again['stages'][:3] == first3 and len(again['stages']) == 4 and r2.stderr.count('train_loss') == 1
    # resumed with nothing left to train: the same summary (every figure but the evaluation's time)
    r3 = _cli(*args[:-1], '--resume')
    assert r3.returncode == 0 and r3.stderr.count('train_loss') == 0
    final = json.loads((out/'summary.json').read_text())
    for key in ('accuracy', 'confusion', 'stages', 'most_wrong'): assert final[key] == again[key]
    # a run killed (SIGKILL) inside stage 2: --resume goes on from its last checkpoint in that stage and ends exactly
    # where the first run, which nobody stopped, ended
    killed = tmp_path/'killed'
    kargs = args[:2] + ('--out', str(killed)) + args[4:-1] + ('--ckpt-minutes', '0.02')
    progress = killed/'models'/'clas_stage2_progress.pth'
    proc = subprocess.Popen([sys.executable, '-m', 'ulmfit_lit', *kargs], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, env=dict(os.environ))
    deadline = time.time() + 900
    while not progress.exists() and proc.poll() is None and time.time() < deadline: time.sleep(0.1)
    proc.kill(); proc.wait()
    assert progress.exists() and not (killed/'models'/'clas_stage2.pth').exists()
    state = torch.load(progress, weights_only=True)
    assert state['epoch'] == 0 and 0 < state['next_iter'] < state['signature']['n_iter']     # mid-stage
    r4 = _cli(*kargs, '--resume')
    assert r4.returncode == 0, r4.stderr[-2000:]
    assert r4.stderr.count('train_loss') == 3 and not progress.exists()      # stages 2 (the rest of it), 3 and 4
    resumed = json.loads((killed/'summary.json').read_text())
    for key in ('accuracy', 'confusion', 'most_wrong'): assert resumed[key] == summary[key]
    figures = lambda rows: [{k: v for k, v in row.items() if k != 'seconds'} for row in rows]
    assert figures(resumed['stages']) == figures(summary['stages'])


def test_load_learner_needs_no_later_chapter_imported(dls_lm, tmp_path):
    "The training loop's `load_learner` imports the module the export file names, never `ulmfit_lit.all` (no circle)."
    learn = language_model_learner(dls_lm, AWD_LSTM, config=dict(awd_lstm_lm_config, **SMALL), pretrained=False,
                                   path=tmp_path, quiet=True)
    f = learn.export('lm.pth')
    script = (f"import sys\nfrom ulmfit_lit.learner import load_learner\nl = load_learner({str(f)!r})\n"
              "assert 'ulmfit_lit.all' not in sys.modules and 'ulmfit_lit.language_model' in sys.modules\n"
              "print(type(l.model).__name__, l.model.build_record['builder'])")
    r = subprocess.run([sys.executable, '-c', script], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.split()[1] == 'awd_lstm_lm'
    # a file naming a module outside this package does not get it imported
    from ulmfit_lit.learner import build_model
    with pytest.raises(KeyError, match='No model builder named'): build_model('nope', {}, 'antigravity')
    assert 'antigravity' not in sys.modules


class _KillAt(Callback):
    "Stands in for a kill: stops the fit abruptly after training batch `n` of epoch `epoch`."
    order = 100
    def __init__(self, epoch, n): self.epoch, self.n = epoch, n
    def after_batch(self, learn):
        if learn.training and learn.epoch == self.epoch and learn.iter == self.n: raise KeyboardInterrupt


def test_lm_fit_killed_mid_epoch_resumes_with_the_same_shuffled_batches(sample_df, tmp_path):
    "An LM whose loader reshuffles every epoch, killed in epoch 2: a new learner resumes to the very same weights."
    df = sample_df.head(40)
    def learner(seed):
        set_seed(seed)          # a new process would start from other seeds: the checkpoint must restore them all
        dls = TextDataLoaders.from_df(df, text_col='text', is_lm=True, valid_pct=0.25, seed=0, bs=8, seq_len=16)
        return language_model_learner(dls, AWD_LSTM, config=dict(awd_lstm_lm_config, **SMALL), pretrained=False,
                                      path=tmp_path, quiet=True)
    learner(0)                  # the first call tokenizes and caches the texts; every later call reads the cache
    whole = learner(0)
    assert whole.dls.train.shuffle and len(whole.dls.train) > 10
    whole.fit_one_cycle(3, 1e-2)
    killed = learner(0)
    with pytest.raises(KeyboardInterrupt):
        killed.fit_one_cycle(3, 1e-2, cbs=[FitCheckpoint('lm_progress', every=0), _KillAt(epoch=1, n=7)])
    resumed = learner(1)
    resumed.fit_one_cycle(3, 1e-2, cbs=FitCheckpoint('lm_progress'))
    for a, b in zip(whole.model.parameters(), resumed.model.parameters()): assert torch.equal(a, b)
    assert resumed.recorder.values == whole.recorder.values
    assert not resumed.model_file('lm_progress').exists()
    # without the loader's epoch state the resumed epoch would read other batches: the weights would differ
    other = learner(0)
    with pytest.raises(KeyboardInterrupt):
        other.fit_one_cycle(3, 1e-2, cbs=[FitCheckpoint('lm_other', every=0), _KillAt(epoch=1, n=7)])
    state = torch.load(other.model_file('lm_other'), weights_only=True)
    state['epoch_rng'] = None
    torch.save(state, other.model_file('lm_other'))
    again = learner(1)
    again.fit_one_cycle(3, 1e-2, cbs=FitCheckpoint('lm_other'))
    assert not all(torch.equal(a, b) for a, b in zip(whole.model.parameters(), again.model.parameters()))
