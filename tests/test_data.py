"""Chapter 02 (data loading): bad input, fastai's reference batches, no-copy reads, and the full-IMDb checks."""
import json, os, random, tarfile, time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from ulmfit_lit.data import (LMDataLoader, SortedDL, TextDataLoaders, DataBlock, TextBlock, CategoryBlock,
                             GrandparentSplitter, RandomSplitter, ColSplitter, get_text_files, parent_label)

FIXTURES = Path(__file__).parent / 'fixtures'
SAMPLE = Path(__file__).resolve().parents[1] / 'ulmfit_lit' / 'sample' / 'imdb_sample.tgz'


@pytest.fixture(scope='module')
def sample_df():
    with tarfile.open(SAMPLE) as tf: return pd.read_csv(tf.extractfile('imdb_sample/texts.csv'))


def write_folder(root: Path, layout: dict) -> Path:
    "Write `{'train/pos': [texts], ...}` as text files under `root`."
    for folder, texts in layout.items():
        (root / folder).mkdir(parents=True, exist_ok=True)
        for i, t in enumerate(texts): (root / folder / f'{i}.txt').write_text(t, encoding='utf-8')
    return root


GOOD, BAD = 'A wonderful film, I loved it. Great acting.', 'A dull film, I hated it. Terrible acting.'


# --- the reference batches fastai made ---------------------------------------------------------------------------
def tiny_docs(ref):
    return [np.arange(1000 * d, 1000 * d + n) for d, n in enumerate(ref['lmdl_noshuffle']['doc_lens'])]

def test_lm_batches_match_fastai():
    ref = json.loads((FIXTURES / 'lmdl.json').read_text())
    got = [(x.tolist(), y.tolist()) for x, y in LMDataLoader(tiny_docs(ref), bs=4, seq_len=10)]
    assert got == [(b['x'], b['y']) for b in ref['lmdl_noshuffle']['batches']]
    random.seed(0)
    got = [(x.tolist(), y.tolist()) for x, y in LMDataLoader(tiny_docs(ref), bs=4, seq_len=10, shuffle=True)]
    assert got == [(b['x'], b['y']) for b in ref['lmdl_shuffle_seed0']['batches']]

def test_lm_reads_store_without_copy():
    ids = np.arange(1000, dtype=np.uint16)
    class Store:   # the TokenStore interface the loader uses
        def __init__(self): self.ids, self.offsets = ids, np.array([0, 300, 700, 1000], dtype=np.int64)
    dl = LMDataLoader(Store(), bs=4, seq_len=16, shuffle=True, seed=3)
    assert dl.ids is ids
    x, y = next(iter(dl))
    assert x.dtype == torch.int64 and x.shape == (4, 16) and torch.equal(x[:, 1:], y[:, :-1])

def test_lm_epochs_cover_every_token_once():
    docs = [np.full(n, d) for d, n in enumerate([5, 9, 3, 12, 7, 20])]
    dl = LMDataLoader(docs, bs=2, seq_len=4, shuffle=True, seed=0)
    for _ in range(3):
        rows = torch.cat([x for x, _ in dl], dim=1)
        stream = torch.cat([rows[0], rows[1]]).tolist()
        # the stream is whole documents in some order (a new one each epoch), cut at bs * ((total-1)//bs) tokens
        assert len(stream) == 2 * ((56 - 1) // 2)
        runs = [stream[0]] + [b for a, b in zip(stream, stream[1:]) if a != b]
        assert len(runs) == len(set(runs))   # each document appears as one contiguous run
        assert all(stream.count(d) == len(docs[d]) for d in runs[:-1])

def test_lm_too_little_text():
    with pytest.raises(ValueError, match='too few for bs=64'): LMDataLoader([np.arange(10)], bs=64)


# --- classifier batching -------------------------------------------------------------------------------------------
def test_sorted_dl_train_epoch():
    rng = np.random.default_rng(0)
    docs = [np.full(int(n), 5) for n in rng.integers(1, 300, size=1000)]
    dl = SortedDL(docs, labels=[0] * 1000, bs=8, seq_len=72, shuffle=True, seed=0)
    batches = list(dl.batches())
    assert len(batches) == len(dl) == 1000 // 8
    lens = dl.lens
    assert lens[batches[0][0]] == lens.max()                       # longest first
    assert all((np.diff(lens[b]) <= 0).all() for b in batches)     # sorted within a batch
    seen = np.concatenate(batches)
    assert len(set(seen.tolist())) == len(seen) == 1000 - 1000 % 8

def test_sorted_dl_valid_and_padding():
    docs = [np.arange(2, 2 + n) for n in (5, 80, 150, 7)]
    dl = SortedDL(docs, labels=[0, 1, 0, 1], bs=4, seq_len=72)
    x, y = next(iter(dl))
    assert y.tolist() == [0, 1, 1, 0]                               # lengths 150, 80, 7, 5
    assert x.shape == (4, 150)
    # 80 tokens in a batch of 150: 70 pads, fewer than seq_len, all at the end
    assert x[1, :80].tolist() == list(range(2, 82)) and (x[1, 80:] == 1).all()
    # 7 tokens: 143 pads = one chunk of 72 in front, 71 at the end
    assert (x[2, :72] == 1).all() and x[2, 72:79].tolist() == list(range(2, 9)) and (x[2, 79:] == 1).all()


# --- bad input: clear errors ---------------------------------------------------------------------------------------
def test_missing_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match='nowhere.*not a folder'):
        TextDataLoaders.from_folder(tmp_path / 'nowhere')
    with pytest.raises(FileNotFoundError, match='not a folder'):
        get_text_files(tmp_path / 'nowhere')

def test_folder_without_text_files(tmp_path):
    (tmp_path / 'train' / 'pos').mkdir(parents=True); (tmp_path / 'valid' / 'pos').mkdir(parents=True)
    (tmp_path / 'train' / 'pos' / 'notes.md').write_text('not a text file')
    with pytest.raises(ValueError, match=r'no \.txt files'):
        TextDataLoaders.from_folder(tmp_path)
    with pytest.raises(ValueError, match=r'no \.txt files'):
        TextDataLoaders.from_folder(tmp_path, is_lm=True, valid_pct=0.1)

def test_missing_valid_folder(tmp_path):
    write_folder(tmp_path, {'train/pos': [GOOD] * 3, 'train/neg': [BAD] * 3, 'test/pos': [GOOD], 'test/neg': [BAD]})
    with pytest.raises(FileNotFoundError, match=r"no valid folder 'valid'.*\['test', 'train'\]"):
        TextDataLoaders.from_folder(tmp_path)
    with pytest.raises(FileNotFoundError, match="no train folder 'training'"):
        TextDataLoaders.from_folder(tmp_path, train='training', valid='test')
    dls = TextDataLoaders.from_folder(tmp_path, valid='test', bs=2, device='cpu')   # the fix the message gives
    assert dls.vocab[1] == ['neg', 'pos'] and dls.c == 2

def test_single_class(tmp_path, sample_df):
    write_folder(tmp_path, {'train/pos': [GOOD] * 4, 'valid/pos': [GOOD] * 2})
    with pytest.raises(ValueError, match="every training label is 'pos'.*at least two classes"):
        TextDataLoaders.from_folder(tmp_path, bs=2)
    with pytest.raises(ValueError, match="every training label is 'positive'"):
        TextDataLoaders.from_df(sample_df[sample_df.label == 'positive'], text_col='text', label_col='label',
                                valid_col='is_valid')

def test_valid_label_unseen_in_training(tmp_path):
    write_folder(tmp_path, {'train/pos': [GOOD] * 2, 'train/neg': [BAD] * 2, 'valid/pos': [GOOD], 'valid/meh': [BAD]})
    with pytest.raises(ValueError, match=r"validation labels \['meh'\] are not among the classes"):
        TextDataLoaders.from_folder(tmp_path, bs=2)

def test_bad_columns_and_splits(sample_df):
    with pytest.raises(KeyError, match="no column 'valid'"):
        TextDataLoaders.from_df(sample_df, text_col='text', label_col='label', valid_col='valid')
    with pytest.raises(KeyError, match="no column 'review'"):
        TextDataLoaders.from_df(sample_df, text_col='review', label_col='label', valid_col='is_valid')
    with pytest.raises(ValueError, match='none of the 1000 items in validation'):
        TextDataLoaders.from_df(sample_df.assign(is_valid=False), text_col='text', label_col='label', valid_col='is_valid')
    with pytest.raises(ValueError, match='valid_pct'): RandomSplitter(1.5)
    with pytest.raises(ValueError, match='no rows'): TextDataLoaders.from_df(sample_df.head(0))
    with pytest.raises(FileNotFoundError, match='no file'): TextDataLoaders.from_csv('/nonexistent', csv_fname='x.csv')

def test_datablock_misuse(tmp_path):
    with pytest.raises(ValueError, match='CategoryBlock needs get_y'):
        DataBlock((TextBlock.from_folder(tmp_path), CategoryBlock))
    with pytest.raises(ValueError, match='get_items'):
        DataBlock(TextBlock.from_folder(tmp_path, is_lm=True)).dataloaders(tmp_path)


# --- integration on the sample ---------------------------------------------------------------------------------------
def test_from_csv_and_test_dl(tmp_path, sample_df):
    sample_df.to_csv(tmp_path / 'texts.csv', index=False)
    dls = TextDataLoaders.from_csv(tmp_path, 'texts.csv', text_col='text', label_col='label', valid_col='is_valid',
                                   device='cpu')
    assert len(dls.vocab[0]) == 7080 and dls.vocab[1] == ['negative', 'positive']
    texts = ['Short.', 'A much longer review than the first one, with more words in it.', 'Middle length one.']
    batches = list(dls.test_dl(texts, bs=2))
    assert [b[0].shape[0] for b in batches] == [2, 1]
    first = dls.decode(batches[0][0][0])
    assert first.startswith('xxbos xxmaj short')                   # input order kept, pads dropped
    df = dls.show_batch(max_n=4, show=False)
    assert list(df.columns) == ['text', 'category'] and len(df) == 4
    assert set(df.category) <= {'negative', 'positive'} and all(t.startswith('xxbos') for t in df.text)

def test_show_batch_lm_plain_table(sample_df, capsys):
    dls = TextDataLoaders.from_df(sample_df, text_col='text', is_lm=True, valid_col='is_valid', device='cpu')
    df = dls.show_batch(max_n=3, show=False)
    assert list(df.columns) == ['text', 'text_']
    assert df.text[0].split(' ')[1:20] == df.text_[0].split(' ')[:19]   # the target is the text one token later
    dls.show_batch(max_n=2)
    out = capsys.readouterr().out
    assert 'text_' in out and '<table' not in out                        # a terminal gets plain text


# --- the full IMDb (whenever the shared archive is there: the imdb_path fixture skips otherwise) ------------------------
def test_full_imdb_tutorial_calls(imdb_path):
    start = time.perf_counter()
    dls = TextDataLoaders.from_folder(imdb_path, valid='test', device='cpu')
    first = time.perf_counter() - start
    assert dls.vocab[1] == ['neg', 'pos'] and len(dls.vocab[0]) <= 60000 + 8
    assert sum(len(b) for b, _ in dls.valid) == 25000
    start = time.perf_counter()
    dls2 = TextDataLoaders.from_folder(imdb_path, valid='test', device='cpu')
    again = time.perf_counter() - start
    assert dls2.vocab == dls.vocab
    print(f'from_folder: {first:.1f}s, again {again:.1f}s')
    dls_lm = TextDataLoaders.from_folder(imdb_path, is_lm=True, valid_pct=0.1, device='cpu')
    x, y = dls_lm.one_batch()
    assert x.shape == (64, 72) and torch.equal(x[:, 1:], y[:, :-1])


def test_sorted_dl_matches_fastai():
    "fastai's own SortedDL batches (tests/fixtures/make_sorteddl_reference.py), shuffles included."
    r = json.loads((FIXTURES / 'sorteddl.json').read_text())
    docs = [np.full(n, i + 2) for i, n in enumerate(r['lens'])]
    which = lambda x: [int(row[row != 1][0]) - 2 for row in x]
    train = SortedDL(docs, r['labels'], bs=8, seq_len=72, shuffle=True)
    valid = SortedDL(docs, r['labels'], bs=8, seq_len=72)
    assert (len(train), len(valid)) == (r['len_train'], r['len_valid'])
    np.random.seed(0)
    for dl, epochs in ((train, r['train_epochs'][0]), (train, r['train_epochs'][1]), (valid, r['valid'])):
        got = list(dl)
        assert len(got) == len(epochs)
        for (x, y), b in zip(got, epochs):
            assert which(x) == b['docs'] and y.tolist() == b['y']
            if b['x'] is not None: assert x.tolist() == b['x']


def test_lm_two_epochs_and_random_splitter_match_fastai():
    "fastai's second epoch reshuffles the first epoch's order; RandomSplitter draws torch.randperm (make_lm_split_reference.py)."
    r = json.loads((FIXTURES / 'lm_split.json').read_text())
    docs = [np.arange(1000 * d, 1000 * d + n) for d, n in enumerate(r['doc_lens'])]
    random.seed(0)
    dl = LMDataLoader(docs, bs=r['bs'], seq_len=r['seq_len'], shuffle=True)
    assert [[x.tolist() for x, _ in dl] for _ in range(2)] == r['lm_x_two_epochs']
    train, valid = RandomSplitter(0.1, seed=42)(list(range(80)))
    assert [train, valid] == r['random_splitter_80_valid_pct_0_1_seed_42']
    state = torch.get_rng_state()
    RandomSplitter(0.1, seed=7)(list(range(80)))
    assert torch.equal(state, torch.get_rng_state())   # a seeded split leaves torch's global generator alone
