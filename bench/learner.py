"""Appendix H figures: (1) one optimizer step of fastai's Adam written out (PlainAdam) vs torch.optim.AdamW (the
for-loop, foreach and fused kernels) on an AWD-LSTM-sized parameter set; (2) the Learner's loop overhead against a
bare PyTorch loop on the same model and batches. Prints medians of several runs, never asserts a time; figures go to
measurements.json ('learner').

    python bench/learner.py [--vocab 8000] [--runs 5] [--fastai-python PY]
When fastai is found (--fastai-python or $FASTAI_PYTHON, see bench/common.py), its Adam step is timed on the same
parameters in a subprocess.
"""
import argparse, json, statistics, subprocess
import torch
from torch import nn
from ulmfit_lit.learner import Learner, PlainAdam, ModelResetter, set_seed
from ulmfit_lit.awd_lstm import AWD_LSTM, get_language_model, awd_lstm_lm_split
from ulmfit_lit.measure import fastai_python, spread, timed

from common import add_common_options, record_figures

def bench_steps(vocab, steps):
    set_seed(0)
    model = get_language_model(AWD_LSTM, vocab)
    params = [p for p in model.parameters()]
    for p in params: p.grad = torch.randn_like(p) * 1e-3
    n = sum(p.numel() for p in params)
    print(f'optimizer step, AWD-LSTM LM with vocab {vocab}: {n/1e6:.1f}M parameters, {torch.get_num_threads()} threads')
    opts = {'PlainAdam (fastai step, written out)': lambda: PlainAdam(params, lr=1e-3),
            'AdamW for-loop': lambda: torch.optim.AdamW(params, 1e-3, (0.9, 0.99), 1e-5, 0.01, foreach=False),
            'AdamW foreach (our Adam on GPU)': lambda: torch.optim.AdamW(params, 1e-3, (0.9, 0.99), 1e-5, 0.01, foreach=True)}
    try:
        torch.optim.AdamW(params[:1], fused=True); opts['AdamW fused'] = lambda: torch.optim.AdamW(params, 1e-3, (0.9, 0.99), 1e-5, 0.01, fused=True)
    except Exception: pass
    figures = {}
    for name, make in opts.items():
        opt = make(); opt.step()                    # create state
        ts = timed(opt.step, steps)
        print(f'  {name:40s} {statistics.median(ts)*1e3:8.1f} ms/step  (runs {min(ts)*1e3:.1f}-{max(ts)*1e3:.1f})')
        figures[name] = spread(ts)
        del opt
    return n, figures

def bench_loop(n_batches=60, repeats=3):
    set_seed(0)
    vocab, bs, sl = 200, 16, 32
    model = get_language_model(AWD_LSTM, vocab, dict(emb_sz=64, n_hid=128, n_layers=2, pad_token=1, bidir=False,
                               output_p=0.1, hidden_p=0.15, input_p=0.25, embed_p=0.02, weight_p=0.2, tie_weights=True, out_bias=True))
    batches = [(torch.randint(0, vocab, (bs, sl)), torch.randint(0, vocab, (bs, sl))) for _ in range(n_batches)]
    class D: pass
    dls = D(); dls.train, dls.valid, dls.vocab, dls.device = batches, batches[:1], list(range(vocab)), torch.device('cpu')
    learn = Learner(dls, model, splitter=awd_lstm_lm_split, cbs=[ModelResetter()], quiet=True)
    def bare():
        opt = torch.optim.AdamW(model.parameters(), 1e-3, (0.9, 0.99), 1e-5, 0.01, fused=True)   # as our Adam
        model.train(); model.reset()
        for x, y in batches:
            loss = nn.functional.cross_entropy(model(x)[0].reshape(-1, vocab), y.reshape(-1))
            loss.backward(); opt.step(); opt.zero_grad(set_to_none=True)
    bare_ts = timed(bare, repeats)
    learn_ts = timed(lambda: learn.fit(1, 1e-3), repeats)
    t_bare, t_learn = statistics.median(bare_ts), statistics.median(learn_ts)
    print(f'training loop, {n_batches} batches of {bs}x{sl} on a small AWD-LSTM, median of {repeats}:')
    print(f'  bare PyTorch loop {t_bare:.3f} s   Learner.fit (1 epoch incl. 1 valid batch) {t_learn:.3f} s   '
          f'overhead {100*(t_learn/t_bare-1):+.1f}%')
    return dict(bare_seconds=spread(bare_ts), learner_seconds=spread(learn_ts), overhead=round(t_learn / t_bare - 1, 3))

FASTAI_SNIPPET = r'''
import time, torch, sys
import json
from fastai.text.all import AWD_LSTM, get_language_model, Adam
m = get_language_model(AWD_LSTM, int(sys.argv[1]))
ps = list(m.parameters())
for p in ps: p.grad = torch.randn_like(p) * 1e-3
opt = Adam(ps, lr=1e-3); opt.step()
ts = []
for _ in range(int(sys.argv[2])):
    t = time.perf_counter(); opt.step(); ts.append(time.perf_counter() - t)
print(json.dumps(ts))
'''

if __name__ == '__main__':
    ap = argparse.ArgumentParser(); ap.add_argument('--vocab', type=int, default=8000)
    a = add_common_options(ap).parse_args()
    n_params, steps = bench_steps(a.vocab, a.runs)
    fastai_py = fastai_python(a.fastai_python)
    if fastai_py:
        r = subprocess.run([fastai_py, '-c', FASTAI_SNIPPET, str(a.vocab), str(a.runs)], capture_output=True, text=True)
        if r.returncode == 0:
            ts = json.loads(r.stdout.strip().splitlines()[-1])
            print(f'  {"fastai Adam (fastai 2.8.12)":40s} {statistics.median(ts)*1e3:8.1f} ms/step  (runs {min(ts)*1e3:.1f}-{max(ts)*1e3:.1f})')
            steps['fastai Adam (fastai 2.8.12)'] = spread(ts)
        else: print(f'  fastai: failed ({r.stderr.strip().splitlines()[-1:]})')
    loop = bench_loop(repeats=a.runs)
    record_figures('learner', dict(vocab=a.vocab, parameters=n_params, optimizer_step_seconds=steps, loop=loop), a)
