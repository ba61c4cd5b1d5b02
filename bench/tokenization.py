"""Tokenization throughput: ulmfit_lit against fastai 2.8.12 on the same IMDb reviews, in one run.

    python bench/tokenization.py [--path IMDB_FOLDER] [--n 5000] [--workers 2] [--runs 5] [--fastai-python PY]

Prints texts/s and tokens/s for ours and, when fastai is found (--fastai-python or $FASTAI_PYTHON, see
bench/common.py), for fastai's `tokenize_texts` on the same texts with the same number of worker processes; then
whether the tokens are identical. Median of `--runs` runs each, written to measurements.json ('tokenization').
Figures only: a benchmark never asserts a time.
"""
import sys
from pathlib import Path
import argparse, json, os, random, statistics, subprocess, tempfile, time

from common import add_common_options, record_figures

FASTAI_SNIPPET = r'''
import json, sys, time, resource
from fastai.text.all import tokenize_texts
def cpu():
    s, c = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return s.ru_utime + s.ru_stime + c.ru_utime + c.ru_stime
texts = json.load(open(sys.argv[1])); n_workers, runs, out = int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
secs, cpus = [], []
for _ in range(runs):
    c0, t0 = cpu(), time.perf_counter(); toks = tokenize_texts(texts, n_workers=n_workers)
    secs.append(time.perf_counter() - t0); cpus.append(cpu() - c0)
json.dump({'seconds': secs, 'cpu': cpus, 'tokens': [list(t) for t in toks]}, open(out, 'w'))
'''

def cpu_seconds():
    "CPU time of this process and its finished children (the worker processes), user + system."
    import resource
    s, c = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return s.ru_utime + s.ru_stime + c.ru_utime + c.ru_stime

def default_path():
    try:
        from ulmfit_lit.download import untar_data, URLs
        return untar_data(URLs.IMDB)
    except Exception as e:
        sys.exit(f"No --path given and ulmfit_lit.download could not provide IMDb ({e!r}); pass --path IMDB_FOLDER")

def pick_files(path: Path, n: int, seed: int = 0):
    files = sorted(str(p) for p in Path(path).rglob('*.txt') if any(s in p.parts for s in ('train', 'test', 'unsup')))
    if not files: sys.exit(f"no .txt files under {path}")
    return random.Random(seed).sample(files, min(n, len(files)))

def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--path', type=Path, default=None, help='IMDb folder (imdb/ with train, test, unsup)')
    ap.add_argument('--n', type=int, default=5000, help='number of reviews (0: all)')
    ap.add_argument('--workers', type=int, default=2)
    ap.add_argument('--no-fastai', action='store_true')
    a = add_common_options(ap).parse_args()
    from ulmfit_lit.corpus import tokenize_texts_to_store
    from ulmfit_lit.measure import fastai_python, spread
    from ulmfit_lit.tokenize import SpacyTokenizer
    path = a.path or default_path()
    files = pick_files(path, a.n if a.n > 0 else 10**9)
    texts = [Path(f).read_text(encoding='utf-8') for f in files]
    print(f"{len(texts)} IMDb reviews, {a.workers} workers, median of {a.runs} runs, {os.cpu_count()} cpus")

    import spacy  # noqa: F401  (imported once, as fastai's is by `import fastai.text.all`, outside the timing)
    secs, cpus, tkd = [], [], None
    for _ in range(a.runs):
        tok = SpacyTokenizer()   # a fresh tokenizer each run: no piece cache carried over between runs
        c0, t0 = cpu_seconds(), time.perf_counter()
        tkd = tokenize_texts_to_store(texts, tok=tok, n_workers=a.workers)
        secs.append(time.perf_counter() - t0); cpus.append(cpu_seconds() - c0)
    n_tok, med, med_cpu = int(len(tkd.store.ids)), statistics.median(secs), statistics.median(cpus)
    print(f"ulmfit_lit: {med:6.2f} s  {len(texts)/med:8.0f} texts/s  {n_tok/med:10.0f} tokens/s  ({n_tok} tokens; "
          f"{med_cpu:.2f} CPU-s in all processes; runs {min(secs):.2f}-{max(secs):.2f} s)")
    figures = dict(n_texts=len(texts), workers=a.workers, tokens=n_tok, ours_seconds=spread(secs),
                   ours_cpu_seconds=spread(cpus))

    py = None if a.no_fastai else fastai_python(a.fastai_python)
    if py is None: record_figures('tokenization', figures, a); return
    with tempfile.TemporaryDirectory() as d:
        inp, out = Path(d)/'texts.json', Path(d)/'out.json'
        inp.write_text(json.dumps(texts))
        r = subprocess.run([py, '-c', FASTAI_SNIPPET, str(inp), str(a.workers), str(a.runs), str(out)],
                           capture_output=True, text=True)
        if r.returncode != 0: print("fastai failed:\n" + r.stderr[-2000:]); return
        res = json.loads(out.read_text())
    fsecs, fcpus, ftoks = res['seconds'], res['cpu'], res['tokens']
    fs, fcpu, f_tok = statistics.median(fsecs), statistics.median(fcpus), sum(len(t) for t in ftoks)
    print(f"fastai    : {fs:6.2f} s  {len(texts)/fs:8.0f} texts/s  {f_tok/fs:10.0f} tokens/s  ({f_tok} tokens; "
          f"{fcpu:.2f} CPU-s in all processes; runs {min(fsecs):.2f}-{max(fsecs):.2f} s)")
    print(f"speed-up  : {fs/med:.1f}x wall-clock, {fcpu/med_cpu:.1f}x less CPU time")
    ours = tkd.token_lists()
    bad = [i for i, (x, y) in enumerate(zip(ours, ftoks)) if x != y]
    same = not bad and len(ours) == len(ftoks)
    print(f"identical tokens: {same}" + (f" (differ in {len(bad)} docs, e.g. {files[bad[0]]})" if bad else ''))
    figures.update(fastai_seconds=spread(fsecs), fastai_cpu_seconds=spread(fcpus), speedup=round(fs / med, 1),
                   cpu_speedup=round(fcpu / med_cpu, 1), identical_tokens=same)
    record_figures('tokenization', figures, a)

if __name__ == '__main__': main()
