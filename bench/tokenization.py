"""Tokenization throughput: ulmfit_lit against fastai 2.8.12 on the same IMDb reviews, in one run.

    python bench/tokenization.py [--path IMDB_FOLDER] [--n 5000] [--workers 2] [--runs 3] [--fastai-python PY]

Prints texts/s and tokens/s for ours and, when a Python with fastai is found (`import fastai` here, or
--fastai-python, default /work/fastai-venv/bin/python), for fastai's `tokenize_texts` on the same texts; then
whether the tokens are identical. Figures only: a benchmark never asserts a time (the machine may be shared).
"""
import sys
from pathlib import Path
import argparse, json, os, random, subprocess, tempfile, time

FASTAI_SNIPPET = r'''
import json, sys, time, resource
from fastai.text.all import tokenize_texts
def cpu():
    s, c = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return s.ru_utime + s.ru_stime + c.ru_utime + c.ru_stime
texts = json.load(open(sys.argv[1])); n_workers, runs, out = int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
best = best_cpu = None
for _ in range(runs):
    c0, t0 = cpu(), time.perf_counter(); toks = tokenize_texts(texts, n_workers=n_workers)
    dt, dc = time.perf_counter() - t0, cpu() - c0
    best, best_cpu = (dt, dc) if best is None or dt < best else (best, best_cpu)
json.dump({'seconds': best, 'cpu': best_cpu, 'tokens': [list(t) for t in toks]}, open(out, 'w'))
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

def find_fastai_python(arg):
    if arg: return arg
    try:
        import fastai  # noqa: F401
        return sys.executable
    except ImportError:
        p = Path('/work/fastai-venv/bin/python')
        return str(p) if p.exists() else None

def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--path', type=Path, default=None, help='IMDb folder (imdb/ with train, test, unsup)')
    ap.add_argument('--n', type=int, default=5000, help='number of reviews (0: all)')
    ap.add_argument('--workers', type=int, default=2)
    ap.add_argument('--runs', type=int, default=3, help='report the best of this many runs')
    ap.add_argument('--fastai-python', default=None, help='a Python that can import fastai 2.8.12')
    ap.add_argument('--no-fastai', action='store_true')
    a = ap.parse_args()
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from ulmfit_lit.tokenize import tokenize_texts_to_store, SpacyTokenizer
    path = a.path or default_path()
    files = pick_files(path, a.n if a.n > 0 else 10**9)
    texts = [Path(f).read_text(encoding='utf-8') for f in files]
    print(f"{len(texts)} IMDb reviews from {path}, {a.workers} workers, best of {a.runs} runs, {os.cpu_count()} cpus "
          f"(machine may be shared)")

    import spacy  # noqa: F401  (imported once, as fastai's is by `import fastai.text.all`, outside the timing)
    best = best_cpu = tkd = None
    for _ in range(a.runs):
        tok = SpacyTokenizer()   # a fresh tokenizer each run: no piece cache carried over between runs
        c0, t0 = cpu_seconds(), time.perf_counter()
        tkd = tokenize_texts_to_store(texts, tok=tok, n_workers=a.workers)
        dt, dc = time.perf_counter() - t0, cpu_seconds() - c0
        best, best_cpu = (dt, dc) if best is None or dt < best else (best, best_cpu)
    n_tok = int(len(tkd.store.ids))
    print(f"ulmfit_lit: {best:6.2f} s  {len(texts)/best:8.0f} texts/s  {n_tok/best:10.0f} tokens/s  ({n_tok} tokens; {best_cpu:.2f} CPU-s in all processes)")

    py = None if a.no_fastai else find_fastai_python(a.fastai_python)
    if py is None: print("fastai: not importable (pass --fastai-python); skipped"); return
    with tempfile.TemporaryDirectory() as d:
        inp, out = Path(d)/'texts.json', Path(d)/'out.json'
        inp.write_text(json.dumps(texts))
        r = subprocess.run([py, '-c', FASTAI_SNIPPET, str(inp), str(a.workers), str(a.runs), str(out)],
                           capture_output=True, text=True)
        if r.returncode != 0: print("fastai failed:\n" + r.stderr[-2000:]); return
        res = json.loads(out.read_text())
    fs, fcpu, ftoks = res['seconds'], res['cpu'], res['tokens']
    f_tok = sum(len(t) for t in ftoks)
    print(f"fastai    : {fs:6.2f} s  {len(texts)/fs:8.0f} texts/s  {f_tok/fs:10.0f} tokens/s  ({f_tok} tokens; {fcpu:.2f} CPU-s in all processes)")
    print(f"speed-up  : {fs/best:.1f}x wall-clock, {fcpu/best_cpu:.1f}x less CPU time (the fairer figure on a busy machine)")
    ours = tkd.token_lists()
    bad = [i for i, (x, y) in enumerate(zip(ours, ftoks)) if x != y]
    print(f"identical tokens: {not bad and len(ours) == len(ftoks)}" + (f" (differ in {len(bad)} docs, e.g. {files[bad[0]]})" if bad else ''))

if __name__ == '__main__': main()
