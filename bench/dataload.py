"""How fast the loaders make batches: LM and classifier batches per second on IMDb, against what a GPU consumes.

    python bench/dataload.py             # the full IMDb (untar_data(URLs.IMDB); tokenized once, then cached)
    python bench/dataload.py --sample    # the 1,000-review sample shipped with the package
    python bench/dataload.py --device cuda

Prints figures, never asserts them. fastai's AWD-LSTM trains at about 250k tokens/s at bs 128 on an H200; the loaders
should make batches at least 20 times faster than that. When fastai is found (--fastai-python or $FASTAI_PYTHON,
see bench/common.py), its LMDataLoader and SortedDL are timed on the same token ids in the same run, in-process like
ours (num_workers=0: neither side gets worker processes). Medians of --runs; figures go to measurements.json
('dataload').
"""
import argparse, json, statistics, subprocess, tempfile, textwrap, time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from ulmfit_lit.data import TextDataLoaders, LMDataLoader
from ulmfit_lit.download import URLs, untar_data
from ulmfit_lit.measure import fastai_python, spread

from common import add_common_options, record_figures

GPU_TOKENS_PER_S = 250_000   # fastai's AWD-LSTM at bs 128 on an H200


def time_batches(dl, n: int, repeats: int = 3) -> tuple[list, list]:
    "Batches/s and tokens/s of each of `repeats` runs of (up to) `n` batches, from a fresh epoch each time."
    bps, tps = [], []
    for _ in range(repeats):
        count = tokens = 0
        start = time.perf_counter()
        for b in dl:
            x = b[0]
            tokens += x.numel(); count += 1
            if count == n: break
        if x.device.type == 'cuda': torch.cuda.synchronize()
        dt = time.perf_counter() - start
        bps.append(count / dt); tps.append(tokens / dt)
    return bps, tps


FASTAI_SCRIPT = textwrap.dedent('''
    import sys, time, json, random, numpy as np, torch
    from functools import partial
    from fastai.text.all import LMDataLoader, SortedDL, TensorText, TensorCategory, pad_input_chunk
    d = np.load(sys.argv[1]); ids, offsets, labels = d['ids'].astype(np.int64), d['offsets'], d['labels']
    n, lm_bs, lm_sl, cl_bs, cl_sl, runs = (int(a) for a in sys.argv[2:8])
    docs = [TensorText(torch.from_numpy(ids[offsets[i]:offsets[i+1]])) for i in range(len(offsets) - 1)]
    def rates(dl):
        out = []
        for _ in range(runs):
            c = 0; t = time.perf_counter()
            for b in dl:
                c += 1
                if c == n: break
            out.append(c / (time.perf_counter() - t))
        return out
    # num_workers=0: batches made in this process, as ours are (fastai's default would start worker processes)
    lm = LMDataLoader(docs, bs=lm_bs, seq_len=lm_sl, shuffle=True, num_workers=0)
    ds = [(x, TensorCategory(int(l))) for x, l in zip(docs, labels)]
    cl = SortedDL(ds, bs=cl_bs, shuffle=True, drop_last=True, before_batch=partial(pad_input_chunk, seq_len=cl_sl),
                  num_workers=0)
    print(json.dumps(dict(lm=rates(lm), clas=rates(cl))))
''')


def fastai_figures(py: str, store, doc_idxs, labels, n, lm_bs, lm_sl, cl_bs, cl_sl, runs) -> dict | None:
    "fastai's batches/s on the same documents (ids copied into its list-of-tensors form first, not timed)."
    lens = store.offsets[1:] - store.offsets[:-1]
    sel = np.asarray(doc_idxs)
    offsets = np.zeros(len(sel) + 1, dtype=np.int64); np.cumsum(lens[sel], out=offsets[1:])
    ids = np.concatenate([store.ids[store.offsets[i]:store.offsets[i + 1]] for i in sel])
    with tempfile.TemporaryDirectory() as tmp:
        f = Path(tmp) / 'docs.npz'
        np.savez(f, ids=ids, offsets=offsets, labels=np.asarray(labels))
        res = subprocess.run([py, '-c', FASTAI_SCRIPT, str(f), str(n), str(lm_bs), str(lm_sl), str(cl_bs), str(cl_sl), str(runs)],
                             capture_output=True, text=True)
    if res.returncode != 0: print('fastai run failed:', res.stderr[-500:]); return None
    return json.loads(res.stdout.strip().splitlines()[-1])


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--sample', action='store_true', help='the 1,000-review sample instead of the full IMDb')
    ap.add_argument('--n', type=int, default=2000, help='batches timed per run (each run starts an epoch, so it includes the shuffle)')
    ap.add_argument('--device', default='cpu', help="where batches go: 'cpu' or 'cuda'")
    ap.add_argument('--no-fastai', action='store_true', help='skip the fastai comparison')
    args = add_common_options(ap).parse_args()
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
    lm_bps, lm_tps = (statistics.median(v) for v in time_batches(dls_lm.train, args.n, args.runs))
    print(f'LM batches (bs={lm_bs}, seq_len={lm_sl}, {device}): {lm_bps:,.0f} batches/s = {lm_tps / 1e6:.1f}M tokens/s; '
          f'the GPU consumes ~{need_lm:.0f} batches/s: {lm_tps / GPU_TOKENS_PER_S:.0f}x')
    cl_runs, cl_tok_runs = time_batches(dls.train, args.n, args.runs)
    cl_bps, cl_tps = statistics.median(cl_runs), statistics.median(cl_tok_runs)
    print(f'classifier batches (bs={cl_bs}, seq_len={cl_sl}, {device}): {cl_bps:,.0f} batches/s = '
          f'{cl_tps / 1e6:.1f}M padded tokens/s: {cl_tps / GPU_TOKENS_PER_S:.0f}x {GPU_TOKENS_PER_S // 1000}k tokens/s')

    figures = dict(data='sample' if args.sample else 'full IMDb', device=str(device), batches_per_run=args.n,
                   lm=dict(bs=lm_bs, seq_len=lm_sl, ours_batches_per_s=round(lm_bps)),
                   classifier=dict(bs=cl_bs, seq_len=cl_sl, ours_batches_per_s=round(cl_bps)))
    py = None if args.no_fastai else fastai_python(args.fastai_python)
    if py is None: record_figures('dataload', figures, args); return
    cl_train = dls.train
    # fastai gets the classifier's training documents (it needs their labels) and runs both loaders on them
    figs = fastai_figures(py, _Store(cl_train), cl_train.doc_idxs, cl_train.labels, args.n, lm_bs, lm_sl, cl_bs, cl_sl,
                          args.runs)
    if figs is None: record_figures('dataload', figures, args); return
    ours_lm = LMDataLoader(_Store(cl_train), bs=lm_bs, seq_len=lm_sl, shuffle=True, doc_idxs=cl_train.doc_idxs, device=device)
    ours_lm_runs = time_batches(ours_lm, args.n, args.runs)[0]
    fa_lm, fa_cl, ours_lm_bps = statistics.median(figs['lm']), statistics.median(figs['clas']), statistics.median(ours_lm_runs)
    print(f'same documents (classifier training set), both in-process: fastai LMDataLoader {fa_lm:,.0f} batches/s vs '
          f'ours {ours_lm_bps:,.0f}; fastai SortedDL {fa_cl:,.0f} batches/s vs ours {cl_bps:,.0f}')
    figures['same_documents'] = dict(ours_lm_batches_per_s=spread(ours_lm_runs), fastai_lm_batches_per_s=spread(figs['lm']),
                                     ours_classifier_batches_per_s=spread(cl_runs),
                                     fastai_classifier_batches_per_s=spread(figs['clas']))
    record_figures('dataload', figures, args)


class _Store:
    "The ids/offsets of a loader, in the TokenStore shape the loaders read."
    def __init__(self, dl): self.ids, self.offsets = dl.ids, dl.offsets


if __name__ == '__main__': main()
