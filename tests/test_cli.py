"""Appendix H, `ulmfit_lit.cli`: the `ulmfit-lit` command (demo, train, predict, generate; pretrain is in
test_pretrain.py), run as a user runs it, in a process of its own: results on stdout, progress on stderr, clear errors
for bad input, and `train --resume` after a stop or a kill."""
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from ulmfit_lit.awd_lstm import AWD_LSTM, awd_lstm_lm_config
from ulmfit_lit.cli import main
from ulmfit_lit.data import TextDataLoaders
from ulmfit_lit.download import URLs
from ulmfit_lit.language_model import language_model_learner
from ulmfit_lit.recipe import DEMO_REVIEWS


@pytest.fixture(scope='module')
def small_df(tmp_path_factory, sample_df):
    "120 training and 120 validation reviews of the sample; a home of the module's own (the commands inherit it)."
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv('ULMFIT_LIT_HOME', str(tmp_path_factory.mktemp('cli_home')))
        yield sample_df.groupby('is_valid').head(120).reset_index(drop=True)


def _cli(*args, cwd=None, input=None, env=None):
    return subprocess.run([sys.executable, '-m', 'ulmfit_lit', *args], capture_output=True, text=True,
                          cwd=cwd, input=input, env=env or dict(os.environ))


def test_cli_help_teaches():
    r = _cli('--help')
    assert r.returncode == 0
    for cmd in ('demo', 'train', 'pretrain', 'predict', 'generate'): assert cmd in r.stdout


def test_cli_train_predict_generate_resume(small_df, tmp_path):
    csv = tmp_path/'reviews.csv'
    small_df.to_csv(csv, index=False)
    out = tmp_path/'out'
    r = _cli('train', str(csv), '--out', str(out), '--size', 'small', '--pretrained', 'imdb', '--lm-epochs', '1',
             '--clas-epochs', '1', '--bs', '16')
    assert r.returncode != 0 and "'n_hid': 192" in r.stderr and "'n_hid': 768" in r.stderr   # small vs the weights' sizes
    r = _cli('train', str(csv), '--out', str(out), '--size', 'small', '--pretrained', 'none', '--lm-epochs', '1',
             '--clas-epochs', '1', '--bs', '16')
    assert r.returncode == 0, r.stderr[-2000:]
    assert len(r.stdout.splitlines()) == 1                       # results on stdout, progress on stderr
    result = json.loads(r.stdout)
    assert Path(result['classifier']).exists()
    # the reported accuracy is the exported classifier's, text by text, on the validation reviews
    valid = small_df[small_df.is_valid]
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


def test_cli_train_by_default_fetches_wikitext103_else_uses_the_course_model(small_df, tmp_path, monkeypatch, capsys,
                                                                             unreachable_url):
    "`train` without --pretrained is fastai's default (pretrained=True): WikiText-103, or offline the IMDb model."
    csv = tmp_path/'reviews.csv'
    small_df.to_csv(csv, index=False)
    monkeypatch.setattr(URLs, 'WT103_FWD', unreachable_url('wt103-fwd.tgz'))
    with pytest.raises(SystemExit) as e:
        main(['train', str(csv), '--out', str(tmp_path/'o'), '--size', 'small'])
    err = capsys.readouterr().err
    assert "falling back to the course's IMDb language model" in err
    assert "'n_hid': 192" in str(e.value) and "'n_hid': 768" in str(e.value)   # the IMDb model's sizes, not small's


def test_cli_bad_input_is_a_clear_error(small_df, tmp_path, http_server, monkeypatch, capsys):
    csv = tmp_path/'bad.csv'
    small_df.rename(columns={'text': 'review'}).to_csv(csv, index=False)
    r = _cli('train', str(csv), '--out', str(tmp_path/'o'), '--size', 'small', '--pretrained', 'none')
    assert r.returncode != 0 and "no column 'text'" in r.stderr and '--text-col' in r.stderr
    # a source that does not exist is refused first: before any weights are fetched, before anything is written
    monkeypatch.setattr(URLs, 'WT103_FWD', http_server.url('wt103-fwd.tgz'))
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as e:
        main(['train', str(tmp_path/'missing')])                 # no --out: the default folder; --pretrained auto
    assert 'neither a folder nor a .csv' in str(e.value) and e.value.code != 0
    assert http_server.requests == [] and not (tmp_path/'ulmfit_out').exists()


@pytest.fixture(scope='module')
def tiny_pretrained(small_df, tmp_path_factory) -> Path:
    "A folder in fastai's pretrained layout (one .pth, one .pkl) holding a tiny untrained LM: the demo's fast path."
    dls = TextDataLoaders.from_df(small_df, text_col='text', is_lm=True, valid_col='is_valid', bs=16)
    folder = tmp_path_factory.mktemp('tiny_lm')
    torch.manual_seed(0)
    learn = language_model_learner(dls, AWD_LSTM, config=dict(awd_lstm_lm_config, emb_sz=16, n_hid=24, n_layers=2),
                                   pretrained=False, path=folder, quiet=True)
    wgts, _ = learn.save_pretrained('tiny_lm', 'tiny_vocab')
    return wgts.parent


def test_cli_demo_prints_its_results_on_stdout(tmp_path, tiny_pretrained):
    "`ulmfit-lit demo` from a tiny model (the cheap path): the results table, the three demo reviews, its time."
    home, tmp = tmp_path/'home', tmp_path/'tmp'
    tmp.mkdir()
    r = _cli('demo', '--pretrained', str(tiny_pretrained), '--no-small', cwd=tmp_path,
             env=dict(os.environ, ULMFIT_LIT_HOME=str(home), TMPDIR=str(tmp)))
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stderr.splitlines()[0] == '# data: the IMDb sample, 800 training and 200 validation reviews; AWD-LSTM 16/24/2'
    assert 'train_loss' in r.stderr and 'train_loss' not in r.stdout   # the epoch tables went to stderr
    lines = r.stdout.strip().splitlines()
    assert lines[0].startswith('accuracy on the same 200 validation reviews')
    rows = lines[1:4]
    assert [re.sub(r'\s+[\d.]+\s+\d+s$', '', l) for l in rows] == [
        'ULMFiT from the pretrained LM, 800 labels', 'the same AWD-LSTM from scratch, 800 labels, 25 steps',
        'bag of words, 800 labels']
    assert all(0 < float(l.split()[-2]) < 1 for l in rows)
    assert float(rows[2].split()[-2]) > 0.6                          # the bag of words learns from 800 reviews
    assert lines[4].startswith('always the most common label (negative)') and lines[4].endswith('0.535')
    assert lines[5].startswith('# from scratch: about 25 steps')           # says the from-scratch fit was cut short
    reviews = lines[6:9]
    assert [l.split(maxsplit=3)[-1] for l in reviews] == DEMO_REVIEWS
    assert all(l.split()[0] in ('positive', 'negative') and l.split()[2] in ('right', 'WRONG') for l in reviews)
    assert lines[9].startswith('# done in') and len(lines) == 10
    assert sorted(p.name for p in tmp_path.iterdir()) == ['home', 'tmp']   # nothing written where it was run
    # the stages' checkpoints did not stay behind in the temporary folder (torch's own compile cache may)
    assert [p.name for p in tmp.iterdir() if not p.name.startswith('torchinductor')] == []


def test_cli_train_from_the_shipped_lm_records_stages_and_resumes(small_df, tmp_path, imdb_like_folder):
    "`train --skip-lm` on an IMDb-layout folder: four recorded stages; resumed between or inside stages, the same summary."
    path = imdb_like_folder(small_df, tmp_path/'imdb')
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
    counts = small_df[small_df.is_valid].label.value_counts()
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
    assert f"resumed from {progress}" in r4.stderr
    resumed = json.loads((killed/'summary.json').read_text())
    for key in ('accuracy', 'confusion', 'most_wrong'): assert resumed[key] == summary[key]
    figures = lambda rows: [{k: v for k, v in row.items() if k != 'seconds'} for row in rows]
    assert figures(resumed['stages']) == figures(summary['stages'])
