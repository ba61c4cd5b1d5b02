"""Run the tests held in a folder of fastai notebooks against a star-import namespace (ours by default).

    python tools/run_fastai_tests.py FOLDER [--import 'from ulmfit_lit.all import *'] [--json out.json] [-v]

The notebooks are read from FOLDER (this tool carries none of their code). Each notebook runs in a fresh process, in a
scratch working folder, with a namespace started by the `--import` line plus fastcore.test's helpers; its code cells run
in order, one top-level statement at a time:

- cells skipped: library-code cells (`#|export`, `#|exporti` and the older `#export` spellings), `show_doc`, nbdev
  directives and exports, shell/magic cells (`!`, `%`); lines importing fastai or nbdev are dropped from the other cells
  (the namespace under test stands in for them); cells that use CUDA are skipped as GPU when no GPU is present.
- a *test* is a top-level statement that calls a fastcore.test helper (test_eq, test_close, test_fail...) or asserts;
  a cell with no test that runs library code is a *smoke* test (it must run without an error).
- a statement reading a name that an earlier failed or skipped statement was to define is BLOCKED, not run, so a stale
  value never passes or fails a test; after a failing setup statement the rest of its cell is BLOCKED too.
- an error from the network (no internet here) or a missing GPU counts as EXCLUDED, not as a failure.

It prints one line per test (PASS, FAIL, BLOCKED, EXCLUDED) with the error, and the totals.
"""
import argparse, ast, contextlib, io, json, os, re, signal, subprocess, sys, tempfile, time, traceback, warnings
from pathlib import Path

TEST_FUNCS = {'test_eq', 'test_ne', 'test_close', 'test_fail', 'test_is', 'test_eq_type', 'test_shuffled', 'test_stdout',
              'test_warns', 'test_fig_exists', 'test', 'is_close', 'nequals'}
SKIP_DIRECTIVE = re.compile(r'^\s*#\s*\|?\s*(export|exporti|exports|default_exp|default_cls_lvl|eval:\s*false)\b', re.M)
NETWORK_ERR = re.compile(r'URLError|ConnectionError|gaierror|Name or service not known|Temporary failure in name '
                         r'resolution|Network is unreachable|Max retries exceeded|HTTPError|nodename nor servname|'
                         r'No address associated with hostname|Connection refused|timed out', re.I)
GPU_ERR = re.compile(r'CUDA|cuda|NVIDIA driver|Torch not compiled with CUDA', re.S)


def cells_of(nb_path):
    nb = json.loads(Path(nb_path).read_text())
    return [''.join(c['source']) if isinstance(c['source'], list) else c['source']
            for c in nb['cells'] if c.get('cell_type') == 'code']


def skip_reason(src, has_gpu):
    "Why a whole cell is not run (None: run it)"
    s = src.strip()
    if not s: return 'empty'
    if SKIP_DIRECTIVE.search(s): return 'library code (export)'
    if re.search(r'\bshow_doc\(', s): return 'show_doc'
    if re.search(r'notebook2script|nbdev_export|nbdev\.export', s): return 'nbdev export'
    if any(l.lstrip().startswith(('!', '%')) for l in s.splitlines()): return 'shell/magic'
    if not has_gpu and re.search(r"['\"]cuda['\"]|\.cuda\(\)|^\s*#\s*cuda\b", s, re.M): return 'GPU'
    return None


def drop_env_imports(src):
    "Drop the lines that import fastai or nbdev: the namespace under test stands in for them"
    return '\n'.join('' if re.match(r'\s*(from\s+(fastai|nbdev)\b|import\s+(fastai|nbdev)\b)', l) else l
                     for l in src.splitlines())


def is_test(stmt):
    for n in ast.walk(stmt):
        if isinstance(n, ast.Assert): return True
        if isinstance(n, ast.Call):
            f = n.func
            name = f.id if isinstance(f, ast.Name) else f.attr if isinstance(f, ast.Attribute) else None
            if name in TEST_FUNCS: return True
    return False


def is_pure_test(stmt):
    "A failing pure test changes no state, so the statements after it in its cell still run"
    if isinstance(stmt, ast.Assert): return True
    return isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Call) and is_test(stmt)


def bound_names(stmt):
    "Names a statement binds at top level (what a later statement may read)"
    out = set()
    for n in ast.walk(stmt):
        if isinstance(n, ast.Name) and isinstance(n.ctx, (ast.Store, ast.Del)): out.add(n.id)
        elif isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)): out.add(n.name)
        elif isinstance(n, (ast.Import, ast.ImportFrom)):
            out.update((a.asname or a.name).split('.')[0] for a in n.names if a.name != '*')
    return out


def read_names(stmt):
    "Names a statement reads, less those bound inside it (comprehension, loop, lambda and function variables)"
    inner = set()
    for n in ast.walk(stmt):
        if isinstance(n, ast.comprehension) or isinstance(n, (ast.For, ast.AsyncFor)):
            inner |= {m.id for m in ast.walk(n.target) if isinstance(m, ast.Name)}
        elif isinstance(n, (ast.Lambda, ast.FunctionDef, ast.AsyncFunctionDef)):
            a = n.args
            inner |= {x.arg for x in a.args + a.kwonlyargs + a.posonlyargs}
            inner |= {x.arg for x in (a.vararg, a.kwarg) if x is not None}
            if not isinstance(n, ast.Lambda):
                inner |= {m.id for b in n.body for m in ast.walk(b) if isinstance(m, ast.Name) and isinstance(m.ctx, ast.Store)}
        elif isinstance(n, ast.withitem) and n.optional_vars is not None:
            inner |= {m.id for m in ast.walk(n.optional_vars) if isinstance(m, ast.Name)}
    return {n.id for n in ast.walk(stmt) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)} - inner


class _Timeout(Exception): pass


def _alarm(signum, frame): raise _Timeout('cell timed out')


def classify_error(e, tb):
    msg = f'{type(e).__name__}: {e}'
    full = msg + '\n' + tb
    if NETWORK_ERR.search(full) and not isinstance(e, (AssertionError, NameError)): return 'EXCLUDED', 'network: ' + msg
    if GPU_ERR.search(msg) and isinstance(e, (RuntimeError, AssertionError, AttributeError)) and 'cuda' in msg.lower():
        return 'EXCLUDED', 'GPU: ' + msg
    return 'FAIL', msg


def run_notebook(nb_path, import_line, timeout, verbose):
    "Run one notebook's cells; return the list of result records"
    import torch
    has_gpu = torch.cuda.is_available()
    warnings.filterwarnings('ignore')
    ns = {'__name__': '__main__'}
    exec(import_line, ns)
    exec('from fastcore.test import *', ns)
    name = Path(nb_path).stem
    results, poisoned = [], {}   # poisoned: name -> what failed to define it
    signal.signal(signal.SIGALRM, _alarm)
    for ci, raw in enumerate(cells_of(nb_path)):
        why = skip_reason(raw, has_gpu)
        if why is not None and why != 'GPU': continue
        src = drop_env_imports(raw)
        try: tree = ast.parse(src)
        except SyntaxError as e:
            results.append(dict(nb=name, cell=ci, line=0, kind='smoke', status='FAIL', src=raw[:200], err=f'SyntaxError: {e}'))
            continue
        stmts = tree.body
        kinds = ['test' if is_test(s) else 'setup' for s in stmts]
        has_tests = 'test' in kinds
        if why == 'GPU':
            for s in stmts: poisoned.update({n: ('EXCLUDED', f'cell {ci} (GPU, skipped)') for n in bound_names(s)})
            results.append(dict(nb=name, cell=ci, line=1, kind='test' if has_tests else 'smoke', status='EXCLUDED',
                                src=raw.strip()[:300], err='GPU: cell uses CUDA and no GPU is present'))
            continue
        if not stmts: continue
        cell_rec = None
        if not has_tests and any(isinstance(n, ast.Call) for n in ast.walk(tree)):
            # a smoke test: the whole cell must run (a cell that calls nothing, like `start = '...'`, is mere setup)
            cell_rec = dict(nb=name, cell=ci, line=stmts[0].lineno, kind='smoke', status='PASS', src=src.strip()[:300], err=None)
        blocked = None   # (status, why) once a statement of this cell cannot run
        for s, kind in zip(stmts, kinds):
            seg = ast.get_source_segment(src, s) or ''
            rec = dict(nb=name, cell=ci, line=s.lineno, kind=kind, status='PASS', src=seg[:300], err=None)
            bad = sorted(n for n in read_names(s) if n in poisoned)
            if blocked is None and bad:
                root = poisoned[bad[0]]
                blocked = (root[0] if root[0] == 'EXCLUDED' else 'BLOCKED', f'reads {", ".join(bad)} from {root[1]}')
            if blocked is not None:
                rec.update(status=blocked[0], err=blocked[1])
                poisoned.update({n: (blocked[0], f'cell {ci} ({blocked[0].lower()})') for n in bound_names(s)})
            else:
                out = io.StringIO()
                t0 = time.time()
                try:
                    signal.alarm(timeout)
                    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
                        exec(compile(ast.Module([s], []), f'<{name} cell {ci}>', 'exec'), ns)
                    for n in bound_names(s): poisoned.pop(n, None)
                except BaseException as e:
                    if isinstance(e, KeyboardInterrupt): raise
                    tb = ''.join(traceback.format_exception(type(e), e, e.__traceback__)[-6:])
                    status, msg = classify_error(e, tb) if not isinstance(e, _Timeout) else ('FAIL', f'timed out after {timeout}s')
                    rec.update(status=status, err=msg[:600], tb=tb[-2000:], out=out.getvalue()[-500:])
                    root = 'EXCLUDED' if status == 'EXCLUDED' else 'BLOCKED'
                    poisoned.update({n: (root, f'cell {ci} ({status.lower()}: {msg[:80]})') for n in bound_names(s)})
                    if not is_pure_test(s): blocked = (root, f'an earlier statement of cell {ci} failed ({msg[:120]})')
                finally:
                    signal.alarm(0)
                rec['secs'] = round(time.time() - t0, 2)
            if cell_rec is not None:
                if rec['status'] != 'PASS' and cell_rec['status'] == 'PASS':
                    cell_rec.update(status=rec['status'], err=rec['err'], tb=rec.get('tb'), line=s.lineno, stmt=seg[:300])
            elif kind == 'test' or rec['status'] in ('FAIL', 'EXCLUDED'):
                # a setup statement inside a test cell is reported only when it fails (it blocks the tests after it)
                results.append(rec)
        if cell_rec is not None: results.append(cell_rec)
    return results


def report(results, verbose):
    for r in results:
        if r['kind'] == 'setup' and r['status'] == 'PASS': continue
        lines = [l for l in r.get('stmt', r['src']).strip().splitlines() if l.strip() and not l.lstrip().startswith('#')]
        first = (lines or [''])[0][:110]
        line = f"{r['status']:8} {r['nb']} cell {r['cell']} line {r['line']} [{r['kind']}]: {first}"
        if r['err']: line += f"\n         -> {r['err'][:300]}"
        print(line)


def totals(results):
    t = {}
    for r in results:
        if r['kind'] == 'setup': continue
        k = t.setdefault(r['kind'], dict(PASS=0, FAIL=0, BLOCKED=0, EXCLUDED=0))
        if r['status'] in k: k[r['status']] += 1
    return t


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('folder', help='a folder of fastai notebooks (.ipynb), or one notebook')
    ap.add_argument('--import', dest='import_line', default='from ulmfit_lit.all import *',
                    help="the star import that starts each notebook's namespace")
    ap.add_argument('--json', help='write every result record to this file')
    ap.add_argument('--timeout', type=int, default=600, help='seconds a statement may run')
    ap.add_argument('--one', help=argparse.SUPPRESS)   # internal: run this notebook in this process
    ap.add_argument('-v', '--verbose', action='store_true')
    a = ap.parse_args()
    if a.one:
        res = run_notebook(a.one, a.import_line, a.timeout, a.verbose)
        Path(a.json).write_text(json.dumps(res))
        return
    folder = Path(a.folder).resolve()
    nbs = [folder] if folder.is_file() else sorted(folder.glob('*.ipynb'))
    if not nbs: sys.exit(f'no notebooks in {folder}')
    print(f'namespace: {a.import_line}  (python {sys.executable})')
    allres = []
    for nb in nbs:
        with tempfile.TemporaryDirectory(prefix='fastai_nb_') as work:
            out = Path(work)/'res.json'
            env = dict(os.environ, PYTHONWARNINGS='ignore')
            p = subprocess.run([sys.executable, str(Path(__file__).resolve()), str(folder), '--one', str(nb),
                                '--import', a.import_line, '--json', str(out), '--timeout', str(a.timeout)],
                               cwd=work, env=env, capture_output=True, text=True)
            if p.returncode != 0 or not out.exists():
                res = [dict(nb=nb.stem, cell=-1, line=0, kind='smoke', status='FAIL', src='(the notebook run)',
                            err=f'runner crashed (rc {p.returncode}): {p.stderr[-800:]}')]
            else: res = json.loads(out.read_text())
        report(res, a.verbose)
        t = totals(res)
        print(f'== {nb.stem}: ' + '; '.join(f"{k}s {v['PASS']} passed, {v['FAIL']} failed, {v['BLOCKED']} blocked, "
                                            f"{v['EXCLUDED']} excluded" for k, v in sorted(t.items())))
        allres += res
    t = totals(allres)
    print('\nTOTAL')
    for k, v in sorted(t.items()):
        print(f"  {k}s: {v['PASS']} passed, {v['FAIL']} failed, {v['BLOCKED']} blocked, {v['EXCLUDED']} excluded "
              f"(of {sum(v.values())})")
    if a.json: Path(a.json).write_text(json.dumps(allres, indent=1))


if __name__ == '__main__': main()
