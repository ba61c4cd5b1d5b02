"""Training throughput on one device: ours against fastai, on the same batches, in the same run.

    python bench/gpu.py                                   # the GPU table (data: .gpu/imdb_ids.npz.xz)
    python bench/gpu.py --which lm --lm-runs 128:fp16,128:bf16 --steps 50
    python bench/gpu.py --small --device cpu --steps 2 --fastai no     # a smoke test on a CPU, seconds

What it prints, one table per task:
- LM: the default AWD-LSTM language model (`language_model_learner`, drop_mult 1: every AWD dropout plus AR/TAR),
  seq_len 72, trained with `fit_one_cycle` on batches cut from the packed IMDb by `LMDataLoader`; tokens/s = bs*72 per
  step.
- classifier: the default AWD-LSTM classifier (`text_classifier_learner`, drop_mult 0.5) on batches of training reviews
  as a shuffled `SortedDL` makes them (lengths as IMDb's, padded first); tokens/s counts the real (non-pad) tokens.
For each (bs, precision) of --lm-runs / --clas-runs: `ours` and `fastai` train on the SAME batches, prepared ahead and already on the device, in
separate processes (one for ours, one for fastai); `--warmup` steps are run first and not timed, then `--steps` steps
are timed between two torch.cuda.synchronize() calls. `ours+loader` is ours again, fed by our own `LMDataLoader` /
`SortedDL` (host batching and copies included; for the --loader-runs). `loss` columns give the training loss
at the first step and the mean of the last five timed steps (same one-cycle schedule, same data: the two should
roughly agree). `GiB` is the peak GPU memory of each. Each result is also printed as it comes (`#   ...` lines).
Figures only, never asserted. fastai runs when `import fastai.text.all` works for `--fastai-python` (default:
$FASTAI_PYTHON as for every benchmark, else this python; on the GPU machine put the carried wheels on PYTHONPATH, see bench/gpu_session.sh).
"""
import argparse, gc, importlib.util, json, math, os, subprocess, sys, tempfile, time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
SMALL_CONFIG = dict(emb_sz=32, n_hid=64, n_layers=2)      # --small: a model a CPU trains in milliseconds per step
CATEGORIES = ['neg', 'pos']


# ---------------------------------------------------------------- data: the packed IMDb, or a synthetic stand-in
def pack_tool():
    "tools/pack_imdb.py, where the packed file is written and read (loaded from its file: tools/ holds scripts)."
    spec = importlib.util.spec_from_file_location('pack_imdb', REPO/'tools'/'pack_imdb.py')
    mod = importlib.util.module_from_spec(spec); spec.loader.exec_module(mod)
    return mod


def load_data(path: str | None, small: bool, seed: int = 0) -> dict:
    "The packed IMDb (ids, offsets, split, label, vocab); a synthetic corpus with IMDb-like lengths when there is none."
    if path and Path(path).is_file():
        d = pack_tool().load_packed(path)
        d['vocab'], d['source'] = d['meta']['vocab'], str(path)
        return d
    rng = np.random.default_rng(seed)
    n_docs, n_vocab = (400, 2000) if small else (20000, 60008)
    lens = np.clip(rng.lognormal(math.log(224), 0.75, n_docs), 10, 3000).astype(np.int64)   # IMDb: median 224
    offsets = np.zeros(n_docs + 1, np.int64); np.cumsum(lens, out=offsets[1:])
    ids = np.minimum(rng.zipf(1.3, int(offsets[-1])) + 1, n_vocab - 1).astype(np.uint16)      # word frequencies ~ Zipf
    ids[offsets[:-1]] = 2                                                                       # xxbos starts a doc
    vocab = ['xxunk', 'xxpad', 'xxbos'] + [f'w{i}' for i in range(3, n_vocab)]
    split = np.where(np.arange(n_docs) < n_docs // 2, 0, 2).astype(np.uint8)
    label = np.where(split == 0, rng.integers(0, 2, n_docs), -1).astype(np.int8)
    return dict(ids=ids, offsets=offsets, split=split, label=label, vocab=vocab,
                source=f'synthetic ({n_docs} docs; no packed file at {path})')


def lm_batches(d: dict, bs: int, seq_len: int, n: int) -> np.ndarray:
    "`n` language-model batches `(n, bs, seq_len+1)` from `LMDataLoader` over every document (cycled if too few)."
    from ulmfit_lit.data import LMDataLoader
    dl = LMDataLoader(_Store(d), bs=bs, seq_len=seq_len, seed=0)
    full = [b for b in range(len(dl)) if b < len(dl) - 1 or dl.last_len == seq_len]    # whole-length batches only
    return np.stack([dl.batch_ids(full[i % len(full)]) for i in range(n)])


def clas_batches(d: dict, bs: int, seq_len: int, n: int) -> list[tuple[np.ndarray, np.ndarray]]:
    "`n` classifier batches (x padded first, y) of training reviews, as a shuffled `SortedDL` makes them."
    from ulmfit_lit.data import SortedDL
    train = np.flatnonzero(d['split'] == 0)
    dl = SortedDL(_Store(d), d['label'][train].astype(np.int64), bs=bs, seq_len=seq_len, shuffle=True,
                  doc_idxs=train, seed=0)
    out = []
    while len(out) < n:
        for x, y in dl:
            out.append((x.numpy(), y.numpy()))
            if len(out) == n: break
    return out


class _Store:
    "The packed arrays in the shape the loaders take (`ids`, `offsets`)."
    def __init__(self, d: dict): self.ids, self.offsets = d['ids'], d['offsets']


# ---------------------------------------------------------------- the workers: one process per library
class FixedDL:
    "A loader that yields the same prepared batches, already on the device (both libraries iterate it as is)."
    def __init__(self, batches, bs: int, seq_len: int = 72):
        self.batches, self.bs, self.seq_len = batches, bs, seq_len
    def __len__(self): return len(self.batches)
    def __iter__(self): return iter(self.batches)
    def to(self, device):
        self.batches = [tuple(t.to(device) for t in b) for b in self.batches]; return self


class FastaiDLs:
    "The few things fastai's Learner and learner functions read from a `DataLoaders`."
    def __init__(self, train, valid, vocab, device, path):
        self.train, self.valid, self.vocab, self.device, self.path = train, valid, vocab, device, Path(path)
    def __getitem__(self, i): return [self.train, self.valid][i]


def _sync(device):
    import torch
    if device.type == 'cuda': torch.cuda.synchronize(device)


def make_timer(base, cancel, warmup: int, steps: int, device, pad: int = 1, fastai: bool = False):
    "A callback (of either library) that times steps warmup..warmup+steps-1, counts real tokens, then stops the fit."
    import torch
    class Timer(base):
        order = 100
        def __init__(self):
            super().__init__()
            self.t0 = self.t1 = None; self.tokens = torch.zeros((), dtype=torch.long, device=device); self.losses = []
        def _before_batch(self, learn):
            if not learn.training: return
            if learn.iter == warmup: _sync(device); self.t0 = time.perf_counter()
            if learn.iter >= warmup: self.tokens += (learn.xb[0] != pad).sum()      # stays on the device: no sync
        def _after_batch(self, learn):
            if not learn.training: return
            self.losses.append(learn.loss.detach().float().reshape(()))
            if learn.iter + 1 == warmup + steps:
                _sync(device); self.t1 = time.perf_counter()
                raise cancel()
    if fastai:    # fastai's callbacks take no argument and reach the learner through self.learn
        Timer.before_batch = lambda self: self._before_batch(self.learn)
        Timer.after_batch = lambda self: self._after_batch(self.learn)
    else:
        Timer.before_batch = Timer._before_batch
        Timer.after_batch = Timer._after_batch
    return Timer()


def run_worker(impl: str, task: str, spec_file: str) -> None:
    "Train every `task` configuration of the spec with `impl` ('ours' or 'fastai'); print one RESULT json line each."
    import warnings; warnings.filterwarnings('ignore')
    import torch
    spec = json.loads(Path(spec_file).read_text())
    tmp = Path(spec_file).parent
    device = torch.device(spec['device'])
    if impl == 'fastai':
        from fastai.text.all import (language_model_learner, text_classifier_learner, AWD_LSTM, Callback,
                                     CancelFitException, CrossEntropyLossFlat, awd_lstm_lm_config, awd_lstm_clas_config)
        import fastai; version = f'fastai {fastai.__version__}'
    else:
        from ulmfit_lit.learner import Callback, CancelFitException
        from ulmfit_lit.awd_lstm import AWD_LSTM, awd_lstm_lm_config, awd_lstm_clas_config
        from ulmfit_lit.language_model import language_model_learner
        from ulmfit_lit.classifier import text_classifier_learner
        from ulmfit_lit.data import TextDataLoaders, LMDataLoader, SortedDL
        version = 'ulmfit_lit'
    vocab = json.loads((tmp/'vocab.json').read_text())
    sl, warmup, steps = spec['seq_len'], spec['warmup'], spec['steps']
    for job in spec['jobs']:
        if job['task'] != task: continue
        if impl == 'fastai' and job['loader'] != 'fixed': continue
        if impl == 'fastai' and device.type != 'cuda' and job['precision'] != 'fp32': continue   # fastai: CUDA-only amp
        task, bs, prec = job['task'], job['bs'], job['precision']
        config = dict(awd_lstm_lm_config if task == 'lm' else awd_lstm_clas_config, **spec['config_overrides'])
        torch.manual_seed(0)
        if job['loader'] == 'fixed':
            z = np.load(tmp/job['file'])
            if task == 'lm':
                xy = torch.from_numpy(z['xy'].astype(np.int64))
                batches = [(b[:, :-1].contiguous(), b[:, 1:].contiguous()) for b in xy]
            else:
                batches = [(torch.from_numpy(z[f'x{i}'].astype(np.int64)), torch.from_numpy(z[f'y{i}'].astype(np.int64)))
                           for i in range(job['n'])]
            train = FixedDL(batches, bs, sl).to(device)
            valid = FixedDL(train.batches[:1], bs, sl)
        else:   # ours, with our own loaders over the whole store
            ids, offsets = np.load(tmp/'ids.npy'), np.load(tmp/'offsets.npy')
            split, label = np.load(tmp/'split.npy'), np.load(tmp/'label.npy')
            store = type('S', (), dict(ids=ids, offsets=offsets))()
            if task == 'lm':
                train = LMDataLoader(store, bs=bs, seq_len=sl, shuffle=True, seed=0)
                valid = LMDataLoader(store, bs=bs, seq_len=sl, doc_idxs=np.arange(min(50, len(offsets) - 1)))
            else:
                tr = np.flatnonzero(split == 0)
                train = SortedDL(store, label[tr].astype(np.int64), bs=bs, seq_len=sl, shuffle=True, doc_idxs=tr, seed=0)
                valid = SortedDL(store, label[tr[:bs]].astype(np.int64), bs=bs, seq_len=sl, doc_idxs=tr[:bs])
        if impl == 'fastai':
            dls = FastaiDLs(train, valid, vocab, device, tmp)
            if task == 'lm': learn = language_model_learner(dls, AWD_LSTM, config=config, drop_mult=1., pretrained=False)
            else: learn = text_classifier_learner(dls, AWD_LSTM, config=config, drop_mult=0.5, pretrained=False,
                                                  n_out=len(CATEGORIES), loss_func=CrossEntropyLossFlat())
        else:
            dls = TextDataLoaders(train, valid, vocab, None if task == 'lm' else CATEGORIES, path=tmp, device=device)
            if task == 'lm': learn = language_model_learner(dls, AWD_LSTM, config=config, drop_mult=1., pretrained=False,
                                                            quiet=True)
            else: learn = text_classifier_learner(dls, AWD_LSTM, config=config, drop_mult=0.5, pretrained=False,
                                                  quiet=True)
        learn.model.to(device)
        if prec == 'fp16': learn.to_fp16()
        elif prec == 'bf16': learn.to_bf16()
        timer = make_timer(Callback, CancelFitException, warmup, steps, device, fastai=impl == 'fastai')
        if device.type == 'cuda': torch.cuda.reset_peak_memory_stats(device)
        res = dict(impl=impl, version=version, **job)
        try:
            if impl == 'fastai':
                with learn.no_bar(), learn.no_logging(): learn.fit_one_cycle(1, spec['lr'][task], cbs=[timer])
            else: learn.fit_one_cycle(1, spec['lr'][task], cbs=[timer])
            if timer.t1 is None: raise RuntimeError(f"the fit ended before {warmup + steps} steps")
            secs = timer.t1 - timer.t0
            res.update(tokens=int(timer.tokens), secs=secs, tok_s=int(timer.tokens) / secs, ms_step=1e3 * secs / steps,
                       losses=[float(l) for l in torch.stack(timer.losses).cpu()])
            if device.type == 'cuda': res['mem_gib'] = torch.cuda.max_memory_allocated(device) / 2**30
        except Exception as e:          # one failing configuration (out of memory, say) does not end the table
            res['error'] = f'{type(e).__name__}: {str(e).splitlines()[0][:200] if str(e) else ""}'
        print('RESULT ' + json.dumps(res), flush=True)
        del learn, dls, train, valid, timer
        gc.collect()
        if device.type == 'cuda': torch.cuda.empty_cache()


# ---------------------------------------------------------------- the driver
def fastai_available(python: str, env: dict) -> tuple[bool, str]:
    "Whether `python` can import fastai.text.all (and which version), checked in a subprocess."
    try:
        r = subprocess.run([python, '-c', 'import warnings; warnings.filterwarnings("ignore"); import fastai, '
                            'fastai.text.all; print(fastai.__version__)'], capture_output=True, text=True, env=env,
                           timeout=300)
    except (OSError, subprocess.TimeoutExpired) as e: return False, str(e)
    if r.returncode: return False, (r.stderr.strip().splitlines() or ['?'])[-1]
    return True, r.stdout.strip()


def _short(r: dict) -> str:
    "One result as a progress line."
    head = f"{r['impl']:6s} {r['task']:4s} bs {r['bs']:3d} {r['precision']} {r['loader']:6s}"
    if 'error' in r: return f"{head}: {r['error']}"
    return (f"{head}: {r['tok_s']:>10,.0f} tok/s  {r['ms_step']:6.1f} ms/step  loss {_fmt_loss(r)}"
            + (f"  {r['mem_gib']:.1f} GiB" if 'mem_gib' in r else ''))


def run_impl(python: str, impl: str, task: str, spec_file: Path, env: dict) -> list[dict]:
    "Run one library's worker on one task in its own process, printing each result as it comes; the results."
    cmd = [python, str(Path(__file__).resolve()), '--worker', impl, '--task', task, '--spec', str(spec_file)]
    t = time.time()
    with tempfile.TemporaryFile('w+') as err:
        p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=err, text=True, env=env)
        res = []
        for line in p.stdout:          # streamed: a run stopped by a time limit still leaves its finished lines
            if line.startswith('RESULT '):
                res.append(json.loads(line[7:])); print('#   ' + _short(res[-1]), flush=True)
        p.wait()
        if p.returncode:
            err.seek(0)
            print(f"# {impl} {task} worker failed (exit {p.returncode}) after {time.time()-t:.0f} s:\n"
                  + '\n'.join('#   ' + l for l in err.read().strip().splitlines()[-15:]), flush=True)
        else: print(f"# {impl} {task}: {len(res)} runs in {time.time()-t:.0f} s", flush=True)
    return res


def _fmt_loss(r: dict | None) -> str:
    if not r or 'losses' not in r: return '-'
    ls = r['losses']; return f"{ls[0]:.2f}>{np.mean(ls[-5:]):.2f}"


def print_table(task: str, results: list[dict], spec: dict) -> None:
    "One table for `task`: per (bs, precision) ours, fastai, the ratio, ours with its own loader, losses, memory."
    rows = sorted({(r['bs'], r['precision']) for r in results if r['task'] == task},
                  key=lambda k: (k[0], ['fp32', 'fp16', 'bf16'].index(k[1])))
    if not rows: return
    what = 'tokens/s' if task == 'lm' else 'real (non-pad) tokens/s'
    print(f"\n{'LM' if task == 'lm' else 'classifier'} training, {what} ({spec['steps']} timed steps after "
          f"{spec['warmup']} warm-up, seq_len {spec['seq_len']}, device {spec['device_name']})")
    head = (f"{'bs':>4} {'prec':>5} {'ours':>10} {'fastai':>10} {'ours/fa':>8} {'ours+loader':>12} "
            f"{'ms/step':>8} {'loss ours':>12} {'loss fastai':>12} {'GiB ours/fa':>12}")
    print(head); print('-' * len(head))
    def find(impl, loader, bs, prec):
        for r in results:
            if (r['task'], r['impl'], r['loader'], r['bs'], r['precision']) == (task, impl, loader, bs, prec): return r
    for bs, prec in rows:
        o, f, ol = find('ours', 'fixed', bs, prec), find('fastai', 'fixed', bs, prec), find('ours', 'loader', bs, prec)
        val = lambda r: ('error' if 'error' in r else f"{r['tok_s']:,.0f}") if r else '-'
        ratio = f"{o['tok_s']/f['tok_s']:.2f}x" if o and f and 'tok_s' in o and 'tok_s' in f else '-'
        ms = f"{o['ms_step']:.1f}" if o and 'ms_step' in o else '-'
        mem = '/'.join(f"{r['mem_gib']:.1f}" if r and 'mem_gib' in r else '-' for r in (o, f))
        print(f"{bs:>4} {prec:>5} {val(o):>10} {val(f):>10} {ratio:>8} {val(ol):>12} {ms:>8} "
              f"{_fmt_loss(o):>12} {_fmt_loss(f):>12} {mem:>12}")
    for r in results:
        if r['task'] == task and 'error' in r: print(f"  {r['impl']} ({r['loader']}) bs {r['bs']} {r['precision']}: {r['error']}")


def parse_list(s: str, kind=str) -> list: return [kind(v) for v in s.split(',') if v.strip()]


def parse_runs(s: str) -> dict:
    "'64:fp16,128:bf16' -> {64: ['fp16'], 128: ['bf16']} (batch size -> precisions, in the order given)."
    runs = {}
    for item in parse_list(s):
        bs, _, prec = item.partition(':')
        if not bs.isdigit() or prec not in ('fp32', 'fp16', 'bf16'):
            sys.exit(f"bad run {item!r}: write batch size:precision, e.g. 128:bf16 (precision fp32, fp16 or bf16)")
        runs.setdefault(int(bs), []).append(prec)
    return runs


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--data', default=str(REPO/'.gpu'/'imdb_ids.npz.xz'),
                    help='packed IMDb from tools/pack_imdb.py (default %(default)s; synthetic data if missing)')
    ap.add_argument('--device', default=None, help='cuda or cpu (default: cuda when there is one)')
    ap.add_argument('--steps', type=int, default=30, help='timed steps per configuration (default %(default)s)')
    ap.add_argument('--warmup', type=int, default=10, help='untimed steps first (default %(default)s)')
    ap.add_argument('--small', action='store_true', help='a tiny model and batches: a smoke test that runs on a CPU')
    ap.add_argument('--which', default='lm,clas', help='tasks: lm, clas or lm,clas (default)')
    ap.add_argument('--lm-runs', default=None, help='LM runs as bs:precision pairs (default on CUDA: '
                    '64,128,256 in fp16 and bf16, and 128:fp32; on a CPU: 32:fp32,32:bf16, or 8 with --small)')
    ap.add_argument('--clas-runs', default=None, help='classifier runs as bs:precision pairs (default on CUDA: '
                    '64 and 128 in fp16 and bf16; on a CPU: 32:fp32, or 8:fp32 with --small)')
    ap.add_argument('--loader-runs', default=None, help="bs:precision runs (of either task) ALSO timed with ours fed by "
                    "its own loaders (default 128:bf16 on CUDA; on a CPU the first run of each task; 'none': no such runs)")
    ap.add_argument('--seq-len', type=int, default=72)
    ap.add_argument('--fastai', choices=['auto', 'yes', 'no'], default='auto',
                    help='run fastai on the same batches: auto (when importable), yes (fail if not), no')
    ap.add_argument('--fastai-python', default=os.environ.get('FASTAI_PYTHON', sys.executable),
                    help='the python that imports fastai (default: $FASTAI_PYTHON, else this one)')
    ap.add_argument('--json', help='also write every result (loss curves included) to this file')
    ap.add_argument('--worker', choices=['ours', 'fastai'], help=argparse.SUPPRESS)
    ap.add_argument('--spec', help=argparse.SUPPRESS)
    ap.add_argument('--task', help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if a.worker: return run_worker(a.worker, a.task, a.spec)

    import torch
    device = torch.device(a.device or ('cuda' if torch.cuda.is_available() else 'cpu'))
    cuda = device.type == 'cuda'
    if cuda and not torch.cuda.is_available(): sys.exit("--device cuda: torch sees no GPU here")
    dev_name = torch.cuda.get_device_name(device) if cuda else 'cpu'
    tasks = parse_list(a.which)
    if set(tasks) - {'lm', 'clas'}: sys.exit(f"--which takes lm and/or clas, not {a.which!r}")
    b = 8 if a.small else 32
    lm_runs = parse_runs(a.lm_runs or ('64:fp16,128:fp16,256:fp16,64:bf16,128:bf16,256:bf16,128:fp32' if cuda
                                       else f'{b}:fp32,{b}:bf16'))
    clas_runs = parse_runs(a.clas_runs or ('64:fp16,128:fp16,64:bf16,128:bf16' if cuda else f'{b}:fp32'))
    if a.loader_runs == 'none': loader_runs = set()
    elif a.loader_runs: loader_runs = {(bs, p) for bs, ps in parse_runs(a.loader_runs).items() for p in ps}
    elif cuda: loader_runs = {(128, 'bf16')}
    else: loader_runs = {(bs, ps[0]) for runs in (lm_runs, clas_runs) for bs, ps in list(runs.items())[:1]}

    t0 = time.time()
    d = load_data(a.data, a.small)
    n = a.warmup + a.steps
    print(f"# data: {d['source']}: {len(d['offsets'])-1:,} docs, {len(d['ids']):,} tokens, vocab {len(d['vocab']):,} "
          f"(loaded in {time.time()-t0:.1f} s)")
    print(f"# device {dev_name}; torch {torch.__version__}; model {'small ' + str(SMALL_CONFIG) if a.small else 'default'}")
    tmp = Path(tempfile.mkdtemp(prefix='gpu_bench_'))
    (tmp/'vocab.json').write_text(json.dumps(d['vocab']))
    for k in ('ids', 'offsets', 'split', 'label'): np.save(tmp/f'{k}.npy', d[k])
    jobs = []
    t = time.time()
    def add_jobs(task, bs, precs, f):
        for p in precs:
            jobs.append(dict(task=task, bs=bs, precision=p, loader='fixed', file=f, n=n))
            if (bs, p) in loader_runs: jobs.append(dict(task=task, bs=bs, precision=p, loader='loader', n=n))
    if 'lm' in tasks:
        for bs, precs in lm_runs.items():
            f = f'lm_bs{bs}.npz'; np.savez(tmp/f, xy=lm_batches(d, bs, a.seq_len, n))
            add_jobs('lm', bs, precs, f)
    if 'clas' in tasks:
        for bs, precs in clas_runs.items():
            bt = clas_batches(d, bs, a.seq_len, n)
            f = f'clas_bs{bs}.npz'; np.savez(tmp/f, **{f'x{i}': x for i, (x, _) in enumerate(bt)},
                                             **{f'y{i}': y for i, (_, y) in enumerate(bt)})
            real = [int((x != 1).sum()) for x, _ in bt[a.warmup:]]
            print(f"# classifier bs {bs}: timed batches hold {sum(real)/len(real):,.0f} real tokens on average "
                  f"(padded widths {min(x.shape[1] for x, _ in bt)}..{max(x.shape[1] for x, _ in bt)})")
            add_jobs('clas', bs, precs, f)
    print(f"# {len(jobs)} configurations for ours; batches prepared in {time.time()-t:.1f} s", flush=True)
    spec = dict(device=str(device), device_name=dev_name, seq_len=a.seq_len, warmup=a.warmup, steps=a.steps, jobs=jobs,
                config_overrides=SMALL_CONFIG if a.small else {}, lr=dict(lm=5e-3, clas=1e-2))
    (tmp/'spec.json').write_text(json.dumps(spec))

    env = dict(os.environ)      # the workers import ulmfit_lit as this process does (installed, or $PYTHONPATH on a GPU)
    fa_ok = False
    if a.fastai != 'no':
        fa_ok, why = fastai_available(a.fastai_python, env)
        if fa_ok: print(f"# fastai {why} from {a.fastai_python}", flush=True)
        elif a.fastai == 'yes': sys.exit(f"--fastai yes, but fastai does not import: {why}")
        else: print(f"# fastai: not importable ({why}); ours only", flush=True)
    results = []
    for task in tasks:        # ours then fastai, task by task: a time limit leaves whole comparisons behind it
        results += run_impl(sys.executable, 'ours', task, tmp/'spec.json', env)
        if fa_ok: results += run_impl(a.fastai_python, 'fastai', task, tmp/'spec.json', env)
    for task in tasks: print_table(task, results, spec)
    if a.json:
        Path(a.json).write_text(json.dumps(dict(spec=spec, results=results), indent=1))
        print(f"\n# results written to {a.json}")
    print(f"# total {time.time()-t0:.0f} s")
    import shutil; shutil.rmtree(tmp, ignore_errors=True)


if __name__ == '__main__':
    main()
