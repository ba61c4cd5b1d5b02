"""How fast the loaders make batches: LM and classifier batches per second on IMDb, against what a GPU consumes.

    python bench/dataload.py             # the full IMDb (untar_data(URLs.IMDB); tokenized once, then cached)
    python bench/dataload.py --sample    # the 1,000-review sample shipped with the package
    python bench/dataload.py --device cuda

Prints figures, never asserts them. fastai's AWD-LSTM trains at about 250k tokens/s at bs 128 on an H200; the loaders
should make batches at least 20 times faster than that. When fastai is importable from the side venv
(/work/fastai-venv, or $FASTAI_PYTHON), its LMDataLoader and SortedDL are timed on the same token ids in the same run.
"""
import os, sys
import argparse, json, subprocess, tempfile, textwrap, time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from ulmfit_lit.data import TextDataLoaders, LMDataLoader, SortedDL
from ulmfit_lit.download import URLs, untar_data

GPU_TOKENS_PER_S = 250_000   # fastai's AWD-LSTM at bs 128 on an H200


def time_batches(dl, n: int, repeats: int = 3) -> tuple[float, float]:
    "Best batches/s and tokens/s over `repeats` runs of (up to) `n` batches, from a fresh epoch each time."
    best_bps, best_tps = 0.0, 0.0
    for _ in range(repeats):
        count = tokens = 0
        start = time.perf_counter()
        for b in dl:
            x = b[0]
            tokens += x.numel(); count += 1
            if count == n: break
        if x.device.type == 'cuda': torch.cuda.synchronize()
        dt = time.perf_counter() - start
        best_bps, best_tps = max(best_bps, count / dt), max(best_tps, tokens / dt)
    return best_bps, best_tps


FASTAI_SCRIPT = textwrap.dedent('''
    import sys, time, json, random, numpy as np, torch
    from functools import partial
    from fastai.text.all import LMDataLoader, SortedDL, TensorText, TensorCategory, pad_input_chunk
    d = np.load(sys.argv[1]); ids, offsets, labels = d['ids'].astype(np.int64), d['offsets'], d['labels']
    n, lm_bs, lm_sl, cl_bs, cl_sl = (int(a) for a in sys.argv[2:7])
    docs = [TensorText(torch.from_numpy(ids[offsets[i]:offsets[i+1]])) for i in range(len(offsets) - 1)]
    def best(dl):
        out = 0.0
        for _ in range(3):
            c = 0; t = time.perf_counter()
            for b in dl:
                c += 1
                if c == n: break
            out = max(out, c / (time.perf_counter() - t))
        return out
    lm = LMDataLoader(docs, bs=lm_bs, seq_len=lm_sl, shuffle=True)
    ds = [(x, TensorCategory(int(l))) for x, l in zip(docs, labels)]
    cl = SortedDL(ds, bs=cl_bs, shuffle=True, drop_last=True, before_batch=partial(pad_input_chunk, seq_len=cl_sl))
    print(json.dumps(dict(lm=best(lm), clas=best(cl))))
''')


def fastai_python() -> str | None:
    "The side venv's python if it can import fastai."
    py = os.environ.get('FASTAI_PYTHON', '/work/fastai-venv/bin/python')
    if not Path(py).exists(): return None
    ok = subprocess.run([py, '-c', 'import fastai'], capture_output=True).returncode == 0
    return py if ok else None


def fastai_figures(py: str, store, doc_idxs, labels, n, lm_bs, lm_sl, cl_bs, cl_sl) -> dict | None:
    "fastai's batches/s on the same documents (ids copied into its list-of-tensors form first, not timed)."
    lens = store.offsets[1:] - store.offsets[:-1]
    sel = np.asarray(doc_idxs)
    offsets = np.zeros(len(sel) + 1, dtype=np.int64); np.cumsum(lens[sel], out=offsets[1:])
    ids = np.concatenate([store.ids[store.offsets[i]:store.offsets[i + 1]] for i in sel])
    with tempfile.TemporaryDirectory() as tmp:
        f = Path(tmp) / 'docs.npz'
        np.savez(f, ids=ids, offsets=offsets, labels=np.asarray(labels))
        res = subprocess.run([py, '-c', FASTAI_SCRIPT, str(f), str(n), str(lm_bs), str(lm_sl), str(cl_bs), str(cl_sl)],
                             capture_output=True, text=True)
    if res.returncode != 0: print('fastai run failed:', res.stderr[-500:]); return None
    return json.loads(res.stdout.strip().splitlines()[-1])


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--sample', action='store_true', help='the 1,000-review sample instead of the full IMDb')
    ap.add_argument('--n', type=int, default=2000, help='batches timed per run (best of 3 runs; each run starts an epoch, so it includes the shuffle)')
    ap.add_argument('--device', default='cpu', help="where batches go: 'cpu' or 'cuda'")
    ap.add_argument('--no-fastai', action='store_true', help='skip the fastai comparison')
    args = ap.parse_args()
    device = torch.device(args.device)
    lm_bs, lm_sl, cl_bs, cl_sl = 128, 80, 64, 72

    t0 = time.perf_counter()
    if args.sample:
        df = pd.read_csv(untar_data(URLs.IMDB_SAMPLE) / 'texts.csv')
        dls_lm = TextDataLoaders.from_df(df, text_col='text', is_lm=True, valid_col='is_valid', bs=lm_bs, seq_len=lm_sl, device=device)
        t1 = time.perf_counter()
        dls = TextDataLoaders.from_df(df, text_col='text', label_col='label', valid_col='is_valid', bs=cl_bs, seq_len=cl_sl, device=device)
        t2 = time.perf_counter()
        print(f'IMDb sample: from_df LM {t1 - t0:.1f}s, classifier {t2 - t1:.1f}s')
    else:
        path = untar_data(URLs.IMDB)
        dls = TextDataLoaders.from_folder(path, valid='test', bs=cl_bs, seq_len=cl_sl, device=device)
        t1 = time.perf_counter()
        dls = TextDataLoaders.from_folder(path, valid='test', bs=cl_bs, seq_len=cl_sl, device=device)
        t2 = time.perf_counter()
        dls_lm = TextDataLoaders.from_folder(path, is_lm=True, valid_pct=0.1, bs=lm_bs, seq_len=lm_sl, device=device)
        t3 = time.perf_counter()
        print(f'full IMDb: from_folder(valid="test") {t1 - t0:.1f}s (first call this run), again {t2 - t1:.1f}s; '
              f'from_folder(is_lm=True, valid_pct=0.1) {t3 - t2:.1f}s')

    need_lm = GPU_TOKENS_PER_S / (lm_bs * lm_sl)
    lm_bps, lm_tps = time_batches(dls_lm.train, args.n)
    print(f'LM batches (bs={lm_bs}, seq_len={lm_sl}, {device}): {lm_bps:,.0f} batches/s = {lm_tps / 1e6:.1f}M tokens/s; '
          f'the GPU consumes ~{need_lm:.0f} batches/s: {lm_tps / GPU_TOKENS_PER_S:.0f}x')
    cl_bps, cl_tps = time_batches(dls.train, args.n)
    print(f'classifier batches (bs={cl_bs}, seq_len={cl_sl}, {device}): {cl_bps:,.0f} batches/s = '
          f'{cl_tps / 1e6:.1f}M padded tokens/s: {cl_tps / GPU_TOKENS_PER_S:.0f}x {GPU_TOKENS_PER_S // 1000}k tokens/s')

    py = None if args.no_fastai else fastai_python()
    if py is None: print('fastai: not importable from a side venv, no comparison'); return
    cl_train = dls.train
    # fastai gets the classifier's training documents (it needs their labels) and runs both loaders on them
    figs = fastai_figures(py, _Store(cl_train), cl_train.doc_idxs, cl_train.labels, args.n, lm_bs, lm_sl, cl_bs, cl_sl)
    if figs is None: return
    ours_lm = LMDataLoader(_Store(cl_train), bs=lm_bs, seq_len=lm_sl, shuffle=True, doc_idxs=cl_train.doc_idxs, device=device)
    ours_lm_bps, _ = time_batches(ours_lm, args.n)
    print(f'same documents (classifier training set), CPU: fastai LMDataLoader {figs["lm"]:,.0f} batches/s vs ours '
          f'{ours_lm_bps:,.0f}; fastai SortedDL {figs["clas"]:,.0f} batches/s vs ours {cl_bps:,.0f}')


class _Store:
    "The ids/offsets of a loader, in the TokenStore shape the loaders read."
    def __init__(self, dl): self.ids, self.offsets = dl.ids, dl.offsets


if __name__ == '__main__': main()
