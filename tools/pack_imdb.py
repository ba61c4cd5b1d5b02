"""Pack the whole IMDb as token ids in ONE small file, for a GPU machine that has no spaCy and little upload room.

    python tools/pack_imdb.py                                  # $ULMFIT_LIT_HOME's IMDb -> .gpu/imdb_ids.npz.xz
    python tools/pack_imdb.py --src /work/scratch/imdb --out .gpu/imdb_ids.npz.xz
    python tools/pack_imdb.py --check .gpu/imdb_ids.npz.xz     # load it back and print what it holds

Tokenization is the package's, done the way `TextDataLoaders.from_folder(path, is_lm=True)` does it: every `.txt`
under the folder (train, test and unsup: 100,000 reviews) goes through `TextBlock.from_folder` (cached next to the
folder in `imdb_tok/`), and the vocab is fastai's `make_vocab` over the counts of all of them (min_freq 3,
max_vocab 60000). The file holds, for every document in `get_text_files` order:
  ids      uint16, all documents' token ids concatenated (the vocab fits in 16 bits)
  offsets  int64, n_docs+1 entries; document i is ids[offsets[i]:offsets[i+1]]
  split    uint8, index into meta['splits'] (train, test, unsup)
  label    int8, index into meta['categories'] (neg, pos), -1 for unsup
  meta     the JSON of {vocab, splits, categories, names (file paths relative to the folder), settings}
as an uncompressed `.npz` (numpy's own format, read with allow_pickle=False) squeezed with xz (lzma): about half the
size zlib gives. `load_packed` reads it back (and `store_of` makes it a `TokenStore`): bench/gpu.py and
experiments/imdb_recipe.py load this file to use them, so the format is written down once. Prints the sizes and the
time each step took.
"""
import argparse, io, json, lzma, os, time
from pathlib import Path

import numpy as np

SPLITS = ['train', 'test', 'unsup']
CATEGORIES = ['neg', 'pos']


def pack_folder(path: Path, min_freq: int = 3, max_vocab: int = 60000, n_workers: int | None = None) -> dict:
    "Tokenize every text file under `path` (IMDb layout) as `TextDataLoaders.from_folder` does; the arrays to save."
    from ulmfit_lit.data import TextBlock, get_text_files
    path = Path(path)
    files = get_text_files(path)
    if not files: raise FileNotFoundError(f"no .txt files under {path}: give --src the IMDb folder (train/, test/, unsup/)")
    block = TextBlock.from_folder(path, is_lm=True, min_freq=min_freq, max_vocab=max_vocab, n_workers=n_workers)
    corpus, doc_idxs = block.tokenize(files)                 # the corpus in get_files order; doc_idxs maps files to it
    vocab = block.make_vocab(corpus)
    if len(vocab) > 65536: raise ValueError(f"a vocab of {len(vocab)} words does not fit uint16 ids")
    store = corpus.numericalize(vocab)
    lens = store.lengths()[doc_idxs]
    offsets = np.zeros(len(files) + 1, dtype=np.int64); np.cumsum(lens, out=offsets[1:])
    ids = np.concatenate([store[int(i)] for i in doc_idxs]).astype(np.uint16) if len(files) else np.zeros(0, np.uint16)
    rel = [f.relative_to(path) for f in files]
    split, label = np.empty(len(files), np.uint8), np.empty(len(files), np.int8)
    for k, r in enumerate(rel):
        top = r.parts[0]
        if top not in SPLITS: raise ValueError(f"{path/r}: expected IMDb's layout (train/, test/, unsup/), found {top}/")
        split[k] = SPLITS.index(top)
        label[k] = CATEGORIES.index(r.parts[1]) if top != 'unsup' and r.parts[1] in CATEGORIES else -1
        if top != 'unsup' and label[k] < 0: raise ValueError(f"{path/r}: a labelled review must be in neg/ or pos/")
    meta = dict(vocab=list(vocab), splits=SPLITS, categories=CATEGORIES, names=[str(r) for r in rel],
                min_freq=min_freq, max_vocab=max_vocab, source=str(path))
    return dict(ids=ids, offsets=offsets, split=split, label=label, meta=meta)


def save_packed(data: dict, out: Path, preset: int = 6) -> Path:
    "Write `data` as an xz-compressed .npz, atomically (a temporary file, then os.replace)."
    out = Path(out); out.parent.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    meta = np.frombuffer(json.dumps(data['meta']).encode('utf-8'), dtype=np.uint8)
    np.savez(buf, ids=data['ids'], offsets=data['offsets'], split=data['split'], label=data['label'], meta=meta)
    tmp = out.with_name(f'.{out.name}.tmp-{os.getpid()}')
    try:
        with lzma.open(tmp, 'wb', preset=preset) as f: f.write(buf.getbuffer())
        os.replace(tmp, out)
    finally:
        if tmp.exists(): tmp.unlink()
    return out


def load_packed(file: Path) -> dict:
    "Read a file written by `save_packed`: ids, offsets, split, label (numpy arrays) and meta (dict)."
    file = Path(file)
    if not file.is_file(): raise FileNotFoundError(f"no packed IMDb at {file}: make it with `python tools/pack_imdb.py`")
    with lzma.open(file, 'rb') as f: raw = f.read()
    with np.load(io.BytesIO(raw), allow_pickle=False) as z:
        data = {k: z[k] for k in ('ids', 'offsets', 'split', 'label')}
        data['meta'] = json.loads(z['meta'].tobytes().decode('utf-8'))
    n = len(data['offsets']) - 1
    if data['offsets'][0] != 0 or data['offsets'][-1] != len(data['ids']) or len(data['split']) != n or len(data['label']) != n:
        raise ValueError(f"{file} is inconsistent (offsets, split and label disagree); pack it again")
    return data


def store_of(data: dict):
    "The packed documents as the package's `TokenStore` (uint16 ids, int64 offsets, vocab)."
    from ulmfit_lit.tokenize import TokenStore
    return TokenStore(data['ids'], data['offsets'], data['meta']['vocab'])


def describe(data: dict) -> str:
    "A few lines on what a packed file holds."
    m, lens = data['meta'], np.diff(data['offsets'])
    lines = [f"{len(lens):,} documents, {len(data['ids']):,} tokens, vocab {len(m['vocab']):,}"]
    for s, name in enumerate(m['splits']):
        sel = data['split'] == s
        if not sel.any(): continue
        labels = {c: int((data['label'][sel] == i).sum()) for i, c in enumerate(m['categories'])}
        lines.append(f"  {name:6s} {int(sel.sum()):7,} docs, {int(lens[sel].sum()):11,} tokens, "
                     f"median length {int(np.median(lens[sel]))}, labels {labels}")
    return '\n'.join(lines)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--src', help="the IMDb folder (default: untar_data(URLs.IMDB) under $ULMFIT_LIT_HOME)")
    ap.add_argument('--out', default='.gpu/imdb_ids.npz.xz', help='the packed file to write (default %(default)s)')
    ap.add_argument('--min-freq', type=int, default=3); ap.add_argument('--max-vocab', type=int, default=60000)
    ap.add_argument('--n-workers', type=int, default=None, help='tokenizer processes (default: the package default)')
    ap.add_argument('--preset', type=int, default=6, help='xz preset 0-9 (default 6)')
    ap.add_argument('--check', metavar='FILE', help='only load FILE back and describe it')
    a = ap.parse_args(argv)
    if a.check:
        t = time.time(); data = load_packed(a.check)
        print(f"{a.check}: {os.path.getsize(a.check)/2**20:.1f} MiB, loaded in {time.time()-t:.1f} s\n{describe(data)}")
        return
    if a.src is None:
        from ulmfit_lit.download import URLs, untar_data
        a.src = untar_data(URLs.IMDB)
    t = time.time()
    data = pack_folder(Path(a.src), a.min_freq, a.max_vocab, a.n_workers)
    t_tok = time.time() - t
    t = time.time(); out = save_packed(data, Path(a.out), a.preset); t_save = time.time() - t
    t = time.time(); back = load_packed(out); t_load = time.time() - t
    same = all(np.array_equal(back[k], data[k]) for k in ('ids', 'offsets', 'split', 'label')) and back['meta'] == data['meta']
    if not same: raise RuntimeError(f"{out} does not load back to what was packed")
    print(f"tokenized + numericalized in {t_tok:.1f} s; wrote {out} ({os.path.getsize(out)/2**20:.1f} MiB, "
          f"raw {sum(data[k].nbytes for k in ('ids', 'offsets', 'split', 'label'))/2**20:.1f} MiB) in {t_save:.1f} s; "
          f"loads back identical in {t_load:.1f} s")
    print(describe(data))


if __name__ == '__main__':
    main()
