"""Tuning runs on IMDb *train* reviews only: N training reviews from the DRAW pool (kind='tune' draws), scored on the
first --dev reviews of the DEV pool (never the test reviews). Appends one record per (config, N, draw, seed) to
experiments/label_curve_tuning.json and skips records already there.
    python experiments/label_curve_tune.py CONFIG_NAME[,CONFIG_NAME...] --n 800 100 [--draws 0] [--dev 500]"""
import argparse
import json
import time

from label_curve_common import *
from label_curve_configs import CONFIGS

OUT = EXP/'label_curve_tuning.json'

def main():
    p = argparse.ArgumentParser()
    p.add_argument('configs'); p.add_argument('--n', type=int, nargs='+', required=True)
    p.add_argument('--draws', type=int, nargs='+', default=[0]); p.add_argument('--seed', type=int, default=0)
    p.add_argument('--dev', type=int, default=500); p.add_argument('--no-trace', action='store_true')
    a = p.parse_args()
    d = Data(); dev = d.dev_idx[:a.dev]
    done = {(r['config'], r['n'], r['draw'], r['seed'], r['n_dev']) for r in (json.loads(OUT.read_text()) if OUT.exists() else [])}
    for n in a.n:
        for draw in a.draws:
            tr = d.draw(n, draw, 'tune')
            for name in a.configs.split(','):
                key = (name, n, draw, a.seed, a.dev)
                if key in done: print('skip', key); continue
                cfg = CONFIGS[name](n) if callable(CONFIGS[name]) else CONFIGS[name]
                print(f'# {name} N={n} draw={draw}: {cfg}', flush=True)
                t = time.time()
                if cfg.get('method') == 'probe':
                    l = make_learner(d.dls(tr, dev[:2]), True, 0., lin_ftrs=[])
                    ftr, fdv = pooled_features_model(l, d, tr), pooled_features_model(l, d, dev)
                    pred, wd = probe_fit(ftr, torch.as_tensor(d.labels[tr]))
                    rec = dict(acc=(pred(fdv) == torch.as_tensor(d.labels[dev])).float().mean().item(), wd=wd)
                elif cfg.get('method') == 'bow':
                    pred = bow_predict(d, tr)
                    rec = dict(acc=(pred(docs(d, dev)) == torch.as_tensor(d.labels[dev])).float().mean().item())
                else:
                    learn, rec = neural_run(d, tr, cfg, seed=a.seed, trace_idx=None if a.no_trace else dev)
                    rec['acc'] = rec['stages'][-1]['acc'] if not a.no_trace else evaluate(learn, d, dev)
                for k in ('n', 'seed'): rec.pop(k, None)
                rec = dict(config=name, n=n, draw=draw, seed=a.seed, n_dev=a.dev, acc=rec.pop('acc'),
                           seconds=round(time.time() - t, 1), **rec)
                append_json(OUT, rec)
                print(f'=> {name} N={n} draw={draw}: dev acc {rec["acc"]:.4f} ({rec["seconds"]}s)', flush=True)

if __name__ == '__main__': main()
