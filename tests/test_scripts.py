"""The scripts a GPU session runs, tried small on a CPU, each run by its path as a user runs it: tools/pack_imdb.py (the
packed IMDb ids, lossless), bench/gpu.py (its speed table) and experiments/imdb_recipe.py (the recipe end to end, its
budget and its two-session ensemble). The script paths are the constants below."""
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from ulmfit_lit.data import TextBlock, TextDataLoaders

REPO = Path(__file__).resolve().parents[1]
PACK_IMDB = REPO/'tools'/'pack_imdb.py'
GPU_BENCH = REPO/'bench'/'gpu.py'
IMDB_RECIPE = REPO/'experiments'/'imdb_recipe.py'


def _load_script(path: Path):
    "The script at `path` as a module (by its path: scripts are not a package), for the functions it defines."
    spec = importlib.util.spec_from_file_location(path.stem, path)
    mod = importlib.util.module_from_spec(spec); spec.loader.exec_module(mod)
    return mod


def _run(*args, timeout=300):
    env = dict(os.environ, OMP_NUM_THREADS='1')
    return subprocess.run([sys.executable, *map(str, args)], capture_output=True, text=True, env=env, timeout=timeout,
                          cwd=REPO)


@pytest.fixture(scope='module')
def imdb_folder(tmp_path_factory, sample_df, imdb_like_folder) -> Path:
    "A small folder in IMDb's layout (60 + 60 reviews in train/test with neg/pos, 15 in unsup), and its own home."
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv('ULMFIT_LIT_HOME', str(tmp_path_factory.mktemp('scripts_home')))
        df = sample_df.groupby('is_valid').head(60).reset_index(drop=True)
        yield imdb_like_folder(df, tmp_path_factory.mktemp('gpuprep')/'imdb', n_unsup=15)


@pytest.fixture(scope='module')
def packed(imdb_folder) -> Path:
    "The folder packed by tools/pack_imdb.py, as the command line does it."
    out = imdb_folder.parent/'ids.npz.xz'
    r = _run(PACK_IMDB, '--src', imdb_folder, '--out', out, '--n-workers', 1)
    assert r.returncode == 0, r.stderr
    assert 'loads back identical' in r.stdout and '135 documents' in r.stdout
    return out


def test_pack_is_lossless_and_matches_the_packages_own_loaders(imdb_folder, packed):
    pack = _load_script(PACK_IMDB)
    data = pack.load_packed(packed)
    assert data['ids'].dtype == np.uint16 and data['offsets'].dtype == np.int64
    assert len(data['offsets']) == 136 and data['offsets'][-1] == len(data['ids'])
    # the vocab is the one TextDataLoaders.from_folder builds for a language model over every file
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
    # saving what was loaded gives the same content back
    again = pack.load_packed(pack.save_packed(data, packed.parent/'again.npz.xz'))
    for k in ('ids', 'offsets', 'split', 'label'): np.testing.assert_array_equal(again[k], data[k])
    assert again['meta'] == data['meta']


def test_a_missing_or_damaged_pack_is_a_clear_error(tmp_path):
    pack = _load_script(PACK_IMDB)
    with pytest.raises(FileNotFoundError, match='pack_imdb.py'): pack.load_packed(tmp_path/'nope.npz.xz')
    bad = dict(ids=np.zeros(5, np.uint16), offsets=np.array([0, 3, 6]), split=np.zeros(2, np.uint8),
               label=np.zeros(2, np.int8), meta={})
    with pytest.raises(ValueError, match='inconsistent'): pack.load_packed(pack.save_packed(bad, tmp_path/'bad.npz.xz'))


def test_gpu_bench_smoke_on_cpu(packed, tmp_path):
    out = tmp_path/'table.json'
    r = _run(GPU_BENCH, '--small', '--device', 'cpu', '--steps', 2, '--warmup', 1, '--fastai', 'no',
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
    r = _run(IMDB_RECIPE, '--small', '--small-docs', 40, '--data', packed, '--device', 'cpu', '--quiet',
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
    r = _run(IMDB_RECIPE, *args, '--budget', 0.5, '--probs-dir', tmp_path/'first')
    assert r.returncode == 0, r.stderr
    assert '[stage] fwd clas test predictions' in r.stdout and '[skip] bwd' in r.stdout
    assert 'bwd LM' not in r.stdout and 'ensemble' not in r.stdout
    with np.load(tmp_path/'first'/'fwd_test_probs.npz') as z:
        assert z['probs'].shape == (30, 2) and np.allclose(z['probs'].sum(1), 1, atol=1e-5) and len(z['targets']) == 30
    # a later run (another GPU session) trains only the backward model and ensembles it with the saved forward one
    r = _run(IMDB_RECIPE, *args, '--directions', 'bwd', '--prior-probs', tmp_path/'first')
    assert r.returncode == 0, r.stderr
    assert 'fwd LM' not in r.stdout and '[stage] fwd+bwd ensemble (one from an earlier run)' in r.stdout
