"""ulmfit_lit.data (chapter 02): fastai's reference batches, no-copy reads, sharding for several processes, bad input,
the tutorial's calls on the IMDb sample, and the full-IMDb checks."""
import json
import random
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from ulmfit_lit.corpus import get_text_files
from ulmfit_lit.data import CategoryBlock, DataBlock, LMDataLoader, RandomSplitter, SortedDL, TextBlock, TextDataLoaders
from ulmfit_lit.data import pad_docs, pad_input_chunk
from ulmfit_lit.fastai_compat import pad_chunk

FIXTURES = Path(__file__).parent / 'fixtures'


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

def test_lm_shard_gives_each_process_whole_streams():
    "Sharding an LM loader (for DDP) gives each process whole streams: batch k+1 of a row continues batch k of that row."
    docs = [np.arange(i * 100, i * 100 + n) for i, n in enumerate([37, 52, 41, 60, 45])]
    full = LMDataLoader(docs, bs=4, seq_len=6)
    parts = [full.shard(r, 2) for r in range(2)]
    for part in parts:
        batches = list(part)
        assert all(x.shape[0] == 2 for x, _ in batches)
        for (x0, y0), (x1, _) in zip(batches, batches[1:]):
            assert torch.equal(x1[:, 0], y0[:, -1])         # the stream goes on where the last batch's target ended
    for (xf, yf), (xa, _), (xb, _) in zip(full, *parts):
        assert torch.equal(xf[0::2], xa) and torch.equal(xf[1::2], xb)   # together, exactly the full batches
    with pytest.raises(ValueError, match='divisible by 3'): full.shard(0, 3)

def test_lm_too_little_text():
    with pytest.raises(ValueError, match='too few for bs=64'): LMDataLoader([np.arange(10)], bs=64)


# --- classifier batching -------------------------------------------------------------------------------------------
def test_sorted_dl_train_epoch():
    rng = np.random.default_rng(0)
    docs = [np.full(int(n), 5) for n in rng.integers(1, 300, size=1000)]
    dl = SortedDL(docs, labels=[0] * 1000, bs=8, seq_len=72, shuffle=True, drop_last=True, seed=0)
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
    train = SortedDL(docs, r['labels'], bs=8, seq_len=72, shuffle=True, drop_last=True)   # as fastai's training DL
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


T = torch.tensor


def same(a: list, b: list) -> bool:
    "Two lists of samples hold the same values (tensors compared by value, other fields with ==)."
    if len(a) != len(b): return False
    for sa, sb in zip(a, b):
        if len(sa) != len(sb): return False
        for x, y in zip(sa, sb):
            if isinstance(x, torch.Tensor) or isinstance(y, torch.Tensor):
                if not (isinstance(x, torch.Tensor) and isinstance(y, torch.Tensor)): return False
                if x.tolist() != y.tolist(): return False
            elif x != y: return False
    return True


def test_one_batch_on_every_loader(home, sample_df):
    df = sample_df.groupby('is_valid').head(60).reset_index(drop=True)
    dls_lm = TextDataLoaders.from_df(df, text_col='text', is_lm=True, valid_col='is_valid', bs=8)
    dls = TextDataLoaders.from_df(df, text_col='text', label_col='label', valid_col='is_valid',
                                  text_vocab=dls_lm.vocab, bs=8)
    x, y = dls_lm.train.one_batch()
    assert x.shape == y.shape == (8, 72)
    x, y = dls.valid.one_batch()
    assert x.shape[0] == 8 and y.shape == (8,)
    (x,) = dls.test_dl(['one text', 'and another']).one_batch()
    assert x.shape[0] == 2


def test_pad_docs_is_pad_chunk_row_by_row():
    rng = np.random.default_rng(0)
    docs = [rng.integers(2, 50, n) for n in (1, 5, 17, 40, 72, 73, 150)]
    for pad_first in (True, False):
        batch = pad_docs(docs, pad_idx=1, pad_first=pad_first, seq_len=16)
        rows = [pad_chunk(torch.from_numpy(d), 1, pad_first, 16, pad_len=150).tolist() for d in docs]
        assert batch.tolist() == rows


def test_pad_input_chunk_fastai_facts():
    samples = [(T([1, 2, 3, 4, 5, 6]), 1), (T([1, 2, 3]), 2), (T([1, 2]), 3)]
    assert same(pad_input_chunk(samples, pad_idx=0, seq_len=2),
                [(T([1, 2, 3, 4, 5, 6]), 1), (T([0, 0, 1, 2, 3, 0]), 2), (T([0, 0, 0, 0, 1, 2]), 3)])
    no_label = [(s[0],) for s in samples]
    assert same(pad_input_chunk(no_label, pad_idx=0, seq_len=2, pad_first=False),
                [(T([1, 2, 3, 4, 5, 6]),), (T([1, 2, 3, 0, 0, 0]),), (T([1, 2, 0, 0, 0, 0]),)])


def test_pad_input_chunk_n_inp_pads_every_input_to_one_length():
    out = pad_input_chunk([(T([1, 2, 3, 4, 5, 6]), T([1, 2]), 1)], pad_idx=0, seq_len=2, n_inp=2)
    assert same(out, [(T([1, 2, 3, 4, 5, 6]), T([0, 0, 0, 0, 1, 2]), 1)])
    out = pad_input_chunk([(T([1, 2, 3, 4, 5, 6]), T([1, 2]), 1)], pad_idx=0, seq_len=3, n_inp=2)
    assert same(out, [(T([1, 2, 3, 4, 5, 6]), T([0, 0, 0, 1, 2, 0]), 1)])
    # the longest input may be in the second field of another sample
    out = pad_input_chunk([(T([5]), T([6]), 'a'), (T([7, 8]), T([1, 2, 3, 4]), 'b')], pad_idx=0, seq_len=2, n_inp=2)
    assert same(out, [(T([0, 0, 5, 0]), T([0, 0, 6, 0]), 'a'), (T([0, 0, 7, 8]), T([1, 2, 3, 4]), 'b')])
    with pytest.raises(ValueError, match='n_inp'): pad_input_chunk([(T([1]), 0)], n_inp=0)


def test_sorted_dl_batches_are_pad_input_chunk_of_its_documents():
    docs = [np.full(n, i + 2) for i, n in enumerate([3, 10, 7, 1, 12, 5])]
    dl = SortedDL(docs, labels=[0, 1, 0, 1, 0, 1], bs=3, seq_len=4)
    for (x, y), b in zip(dl, dl.batches()):
        want = pad_input_chunk([(docs[p], int(dl.labels[p])) for p in b], seq_len=4)
        assert x.tolist() == [s[0].tolist() for s in want] and y.tolist() == [s[1] for s in want]


DOCS = [np.arange(1000 * d, 1000 * d + n) for d, n in enumerate([23, 7, 41, 15, 30, 12])]


def test_lm_loader_accepts_the_right_lens():
    lens = [len(d) for d in DOCS]
    plain = [(x.tolist(), y.tolist()) for x, y in LMDataLoader(DOCS, bs=4, seq_len=10)]
    given = [(x.tolist(), y.tolist()) for x, y in LMDataLoader(DOCS, bs=4, seq_len=10, lens=lens)]
    assert given == plain
    assert given == [(x.tolist(), y.tolist()) for x, y in LMDataLoader(DOCS, bs=4, seq_len=10, lens=np.array(lens))]
    sub = LMDataLoader(DOCS, bs=2, seq_len=5, doc_idxs=[4, 0], lens=[30, 23])      # the lengths of the docs it reads
    assert len(sub) == len(LMDataLoader(DOCS, bs=2, seq_len=5, doc_idxs=[4, 0]))


def test_lm_loader_wrong_lens_are_a_clear_error():
    with pytest.raises(ValueError, match='lens holds 5 lengths for 6 documents'):
        LMDataLoader(DOCS, bs=4, lens=[23, 7, 41, 15, 30])
    with pytest.raises(ValueError, match=r'lens\[2\] is 40 but that document has 41 tokens'):
        LMDataLoader(DOCS, bs=4, lens=[23, 7, 40, 15, 30, 12])
    with pytest.raises(ValueError, match=r'lens\[0\] is 23 but that document has 30 tokens'):
        LMDataLoader(DOCS, bs=2, doc_idxs=[4, 0], lens=[23, 30])      # lens in the order of doc_idxs
