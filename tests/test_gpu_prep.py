"""What a GPU session will run, tried small on a CPU: the packed IMDb ids (lossless), bench/gpu.py's table and
bench/imdb_recipe.py end to end; and the package importing without spaCy (the GPU machine has none)."""
import importlib.util
import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

REPO = Path(__file__).resolve().parents[1]
BENCH = REPO/'bench'
SAMPLE = REPO/'ulmfit_lit'/'sample'/'imdb_sample.tgz'


def _load_bench(name: str):
    "Import bench/<name>.py as a module (bench/ is a folder of scripts, not a package)."
    spec = importlib.util.spec_from_file_location(name, BENCH/f'{name}.py')
    mod = importlib.util.module_from_spec(spec); spec.loader.exec_module(mod)
    return mod


def _run(*args, timeout=120):
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS='1')
    return subprocess.run([sys.executable, *map(str, args)], capture_output=True, text=True, env=env, timeout=timeout,
                          cwd=REPO)


@pytest.fixture(scope='module')
def imdb_folder(tmp_path_factory) -> Path:
    "A small folder in IMDb's layout (train/test with neg/pos, and unsup) made from the shipped sample."
    with tarfile.open(SAMPLE) as tf: df = pd.read_csv(tf.extractfile('imdb_sample/texts.csv'))
    df = df.groupby('is_valid').head(60).reset_index(drop=True)
    root = tmp_path_factory.mktemp('gpuprep')/'imdb'
    for i, row in df.iterrows():
        folder = root/('test' if row.is_valid else 'train')/('pos' if row.label == 'positive' else 'neg')
        folder.mkdir(parents=True, exist_ok=True)
        (folder/f'{i}_0.txt').write_text(row.text, encoding='utf-8')
    (root/'unsup').mkdir()
    for i, text in enumerate(df.text[:15]): (root/'unsup'/f'{i}_0.txt').write_text(text[::-1], encoding='utf-8')
    return root


@pytest.fixture(scope='module')
def packed(imdb_folder) -> Path:
    "The folder packed by bench/pack_imdb.py, as the command line does it."
    out = imdb_folder.parent/'ids.npz.xz'
    r = _run(BENCH/'pack_imdb.py', '--src', imdb_folder, '--out', out, '--n-workers', 1)
    assert r.returncode == 0, r.stderr
    assert 'loads back identical' in r.stdout and '135 documents' in r.stdout
    return out


def test_pack_is_lossless_and_matches_the_packages_own_loaders(imdb_folder, packed):
    pack = _load_bench('pack_imdb')
    data = pack.load_packed(packed)
    assert data['ids'].dtype == np.uint16 and data['offsets'].dtype == np.int64
    assert len(data['offsets']) == 136 and data['offsets'][-1] == len(data['ids'])
    # the vocab is the one TextDataLoaders.from_folder builds for a language model over every file
    from ulmfit_lit.data import TextDataLoaders, TextBlock
    dls = TextDataLoaders.from_folder(imdb_folder, is_lm=True, valid_pct=0.1, seed=0, bs=4, device='cpu')
    assert data['meta']['vocab'] == dls.vocab
    # each document's ids are its text tokenized and numericalized again, by another path (texts, not files)
    names = data['meta']['names']
    for i in [0, 1, 60, 134]:
        text = (imdb_folder/names[i]).read_text(encoding='utf-8')
        again = TextBlock().tokenize_texts([text]).numericalize(dls.vocab)[0]
        np.testing.assert_array_equal(data['ids'][data['offsets'][i]:data['offsets'][i + 1]], again)
    # splits and labels come from the folders
    for name, s, l in zip(names, data['split'], data['label']):
        parts = Path(name).parts
        assert data['meta']['splits'][s] == parts[0]
        assert (l == -1) if parts[0] == 'unsup' else data['meta']['categories'][l] == parts[1]
    assert (data['split'] == 0).sum() == 60 and (data['split'] == 2).sum() == 15
    # saving what was loaded gives the same bytes' content back
    again = pack.load_packed(pack.save_packed(data, packed.parent/'again.npz.xz'))
    for k in ('ids', 'offsets', 'split', 'label'): np.testing.assert_array_equal(again[k], data[k])
    assert again['meta'] == data['meta']


def test_a_missing_or_damaged_pack_is_a_clear_error(tmp_path):
    pack = _load_bench('pack_imdb')
    with pytest.raises(FileNotFoundError, match='pack_imdb.py'): pack.load_packed(tmp_path/'nope.npz.xz')
    bad = dict(ids=np.zeros(5, np.uint16), offsets=np.array([0, 3, 6]), split=np.zeros(2, np.uint8),
               label=np.zeros(2, np.int8), meta={})
    with pytest.raises(ValueError, match='inconsistent'): pack.load_packed(pack.save_packed(bad, tmp_path/'bad.npz.xz'))


def test_package_imports_without_spacy():
    r = _run('-c', "import sys; sys.modules['spacy'] = None\n"
                   "import ulmfit_lit.learner, ulmfit_lit.language_model, ulmfit_lit.classifier, ulmfit_lit.data\n"
                   "import ulmfit_lit.all; print('ok')")
    assert r.returncode == 0 and r.stdout.strip() == 'ok', r.stderr


def test_gpu_bench_smoke_on_cpu(packed, tmp_path):
    out = tmp_path/'table.json'
    r = _run(BENCH/'gpu.py', '--small', '--device', 'cpu', '--steps', 2, '--warmup', 1, '--fastai', 'no',
             '--data', packed, '--json', out)
    assert r.returncode == 0, r.stderr
    assert 'LM training, tokens/s' in r.stdout and 'classifier training, real (non-pad) tokens/s' in r.stdout
    rows = [l.split() for l in r.stdout.splitlines() if l.startswith('   8 ')]
    assert [row[1] for row in rows] == ['fp32', 'bf16', 'fp32']            # LM fp32, bf16; classifier fp32
    assert all(float(row[2].replace(',', '')) > 0 for row in rows)
    res = json.loads(out.read_text())['results']
    lm = [x for x in res if x['task'] == 'lm' and x['loader'] == 'fixed']
    assert all(x['tokens'] == 2 * 8 * 72 and len(x['losses']) == 3 for x in lm)   # bs*seq_len per timed step
    clas = [x for x in res if x['task'] == 'clas']
    assert clas and all(0 < x['tokens'] and np.isfinite(x['losses']).all() for x in clas)


def test_imdb_recipe_smoke_on_cpu(packed, tmp_path):
    out = tmp_path/'recipe.json'
    r = _run(BENCH/'imdb_recipe.py', '--small', '--small-docs', 40, '--data', packed, '--device', 'cpu', '--quiet',
             '--stage-valid-docs', 25, '--out', tmp_path/'models', '--json', out, '--probs-dir', tmp_path/'probs')
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    for d in ('fwd', 'bwd'):
        assert f'[stage] {d} LM 1 epoch(s)' in r.stdout
        for i in range(1, 5):       # the stages validate on 25 test reviews, the final predictions on all 40
            assert any(l.startswith(f'[stage] {d} clas {i}:') and 'on 25 test docs' in l for l in lines)
        assert any(l.startswith(f'[stage] {d} clas test predictions') and 'on 40 test docs' in l for l in lines)
    assert '[stage] fwd+bwd ensemble' in r.stdout and 'total' in r.stdout
    stages = json.loads(out.read_text())['stages']
    accs = [s['accuracy'] for s in stages if 'accuracy' in s]
    assert len(accs) == 11                                                   # 2 x (4 stages + test) + ensemble
    # each reported test accuracy is the one its saved predictions give, and the ensemble is their mean's
    probs = {}
    for d in ('fwd', 'bwd'):
        with np.load(tmp_path/'probs'/f'{d}_test_probs.npz') as z: probs[d] = (z['probs'], z['targets'])
        p, t = probs[d]
        assert p.shape == (40, 2) and np.allclose(p.sum(1), 1, atol=1e-5)
        reported = next(s['accuracy'] for s in stages if s['stage'].startswith(f'{d} clas test predictions'))
        assert abs(reported - float((p.argmax(1) == t).mean())) < 1e-6
    ens = next(s['accuracy'] for s in stages if s['stage'].startswith('fwd+bwd ensemble'))
    mean = (probs['fwd'][0] + probs['bwd'][0]) / 2
    assert abs(ens - float((mean.argmax(1) == probs['fwd'][1]).mean())) < 1e-6
    assert (tmp_path/'models'/'models'/'fwd_enc.pth').exists() and (tmp_path/'models'/'models'/'bwd_enc.pth').exists()


def test_imdb_recipe_budget_skips_backward_and_a_later_run_completes_the_ensemble(packed, tmp_path):
    args = ['--small', '--small-docs', 30, '--data', packed, '--device', 'cpu', '--quiet', '--out', tmp_path]
    r = _run(BENCH/'imdb_recipe.py', *args, '--budget', 0.5, '--probs-dir', tmp_path/'first')
    assert r.returncode == 0, r.stderr
    assert '[stage] fwd clas test predictions' in r.stdout and '[skip] bwd' in r.stdout
    assert 'bwd LM' not in r.stdout and 'ensemble' not in r.stdout
    with np.load(tmp_path/'first'/'fwd_test_probs.npz') as z:
        assert z['probs'].shape == (30, 2) and np.allclose(z['probs'].sum(1), 1, atol=1e-5) and len(z['targets']) == 30
    # a later run (another GPU session) trains only the backward model and ensembles it with the saved forward one
    r = _run(BENCH/'imdb_recipe.py', *args, '--directions', 'bwd', '--prior-probs', tmp_path/'first')
    assert r.returncode == 0, r.stderr
    assert 'fwd LM' not in r.stdout and '[stage] fwd+bwd ensemble (one from an earlier run)' in r.stdout
