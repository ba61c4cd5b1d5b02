"""The label curve (Howard & Ruder 2018, Fig. 3) on real IMDb: accuracy on ONE fixed set of 2,000 IMDb test reviews
(balanced, seed 0) against N labelled training reviews (balanced draws from IMDb train; 3 draws for N <= 800, 1 for
1600 and 3200), for four methods on one tokenization and one vocab (the shipped LM's 16,008 words):
  ulmfit  - classifier from the shipped IMDb LM (no further LM fine-tuning), with the rule label_curve_rules.ulmfit_rule(N)
  scratch - the same AWD-LSTM classifier from random weights, all layers trained from the start, label_curve_rules.scratch_rule(N)
  bow     - NB-weighted logistic regression on uni+bigram presence (the package's BagOfWords), wd by 3-fold CV
  probe   - pooled features (last, max, mean) of the shipped LM, standardised, logistic regression, wd by 3-fold CV
Resumable: each finished (method, N, draw) is appended to --out and skipped on a restart.
    nohup python experiments/label_curve.py > label_curve.log 2>&1 &     # needs the full IMDb (untar_data(URLs.IMDB))"""
import argparse
import json
import time
from pathlib import Path
from label_curve_common import *
from label_curve_rules import ulmfit_rule, scratch_rule
from ulmfit_lit.measure import record

NS = [50, 100, 200, 400, 800, 1600, 3200]


def check_rules_match_the_package():
    "The rules here are chapter 08's `label_settings`, written as steps: they must give the same batches and epochs."
    from ulmfit_lit.recipe import label_settings
    for n in NS:
        s, u, sc = label_settings(n), ulmfit_rule(n), scratch_rule(n)
        assert (s['ulmfit']['bs'], s['ulmfit']['head_epochs']) == (u['bs'], u.get('head_epochs', 0)), (n, s, u)
        assert s['ulmfit']['n_stages'] == len(u['stages']), (n, s, u)
        assert (s['scratch']['bs'], s['scratch']['epochs']) == (sc['bs'], sc['stages'][0]['epochs']), (n, s, sc)
        assert abs(s['scratch']['lr'] - sc['stages'][0]['lr']) < 1e-12, (n, s, sc)


def n_draws(n): return 3 if n <= 800 else 1


def main():
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--methods', nargs='+', default=['bow', 'probe', 'ulmfit', 'scratch'])
    p.add_argument('--ns', type=int, nargs='+', default=NS)
    p.add_argument('--draws', type=int, nargs='+', default=None, help='only these draws (default: all of each N)')
    p.add_argument('--out', default=str(EXP/'label_curve_results.json'))
    p.add_argument('--record', action='store_true', help="write --out's runs into measurements.json (section label_curve) and stop")
    a = p.parse_args()
    check_rules_match_the_package()
    out = Path(a.out)
    if a.record: return record_curve(out)
    d = Data()
    test, y_test = d.test_idx, torch.as_tensor(d.labels[d.test_idx])
    done = {(r['method'], r['n'], r['draw']) for r in (json.loads(out.read_text()) if out.exists() else [])}
    todo = [(m, n, k) for n in a.ns for k in range(n_draws(n)) for m in a.methods if (m, n, k) not in done
            and (a.draws is None or k in a.draws)]
    print(f"# {len(done)} done, {len(todo)} to run: {todo}", flush=True)
    test_feats = None
    t_all = time.time()
    for m, n, k in todo:
        tr = d.draw(n, k, 'final')
        y_tr = torch.as_tensor(d.labels[tr])
        t = time.time()
        rec = dict(method=m, n=n, draw=k, n_test=len(test))
        if m == 'bow':
            predict = bow_predict(d, tr, seed=k)
            acc = (predict(docs(d, test)) == y_test).float().mean().item()
            rec['settings'] = dict(wds=[1e-4, 1e-3, 1e-2], folds=3, features='uni+bigram presence, NB log-count ratio')
        elif m == 'probe':
            learn = make_learner(d.dls(tr, tr[:2]), True, 0., lin_ftrs=[])
            if test_feats is None:
                f = HOME/'label_curve_probe_test_feats.pt'      # the shipped LM is fixed: its test features once
                if f.exists(): test_feats = torch.load(f)
                else: test_feats = pooled_features_model(learn, d, test); torch.save(test_feats, f)
            ftr = pooled_features_model(learn, d, tr)
            predict, wd = probe_fit(ftr, y_tr)
            acc = (predict(test_feats) == y_test).float().mean().item()
            rec['settings'] = dict(wd=wd, wds=[1e-4, 1e-3, 1e-2, 1e-1], folds=3, features='masked concat pool, 768')
        else:
            cfg = ulmfit_rule(n) if m == 'ulmfit' else scratch_rule(n)
            learn, r = neural_run(d, tr, cfg, seed=k, log=None)
            rec['train_seconds'] = r['train_seconds']
            t_eval = time.time()
            acc = evaluate(learn, d, test)
            rec['eval_seconds'] = round(time.time() - t_eval, 1)
            rec['settings'] = dict(cfg=cfg, stages=r['stages'], **{x: r[x] for x in ('probe', 'head') if x in r})
        rec['acc'] = acc
        rec['seconds'] = round(time.time() - t, 1)
        append_json(out, rec)
        print(f"{m:8s} N={n:5d} draw={k}: acc {acc:.4f}  ({rec['seconds']:.0f}s; {time.time() - t_all:.0f}s so far)",
              flush=True)


PAPER = dict(source='Howard & Ruder 2018, Table 4: validation error (%) of ULMFiT on IMDb, all 25,000 labels',
             with_pretraining=5.00, without_pretraining=5.63)


def record_curve(out: Path):
    "The runs of `out` (accuracy of each method, N and draw on the 2,000 test reviews) into measurements.json."
    runs = [dict(method=r['method'], n=r['n'], draw=r['draw'], acc=r['acc'], seconds=r['seconds'])
            for r in json.loads(out.read_text()) if r['method'] in ('ulmfit', 'scratch', 'bow', 'probe')]
    settings = {str(n): dict(ulmfit=ulmfit_rule(n), scratch=scratch_rule(n)) for n in NS}
    figures = dict(test='2,000 IMDb test reviews, 1,000 of each label (seed 0)', ns=NS,
                   draws={str(n): n_draws(n) for n in NS}, threads=1, runs=runs, settings=settings, paper=PAPER,
                   raw=f'experiments/{out.name}')
    record(EXP.parent/'measurements.json', 'label_curve', figures,
           command='python experiments/label_curve.py (then --record), OMP_NUM_THREADS=1')


if __name__ == '__main__': main()
