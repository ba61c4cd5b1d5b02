"""Forward+backward speed of the AWD-LSTM language model, in tokens per second.

    python bench/model.py                 # CPU (and the GPU too, when there is one)
    python bench/model.py --rounds 5      # more rounds

One step = forward in training mode (all dropouts on), cross-entropy on the logits, backward, zero the gradients.
Two sizes: fastai's default LM (vocab 60k, emb 400, hid 1152, 3 layers, bs 16, bptt 70) and a small one
(vocab 10k, emb 200, hid 400, 2 layers). tokens/s = bs*bptt / (median step time over all rounds). When fastai is
found (--fastai-python or $FASTAI_PYTHON, see bench/common.py), the same steps run there through a subprocess, in
the same run, alternating with ours round by round so both see the same load. Figures go to measurements.json
('model'); the script never asserts a time.
"""
import argparse, json, os, statistics, subprocess, sys, time

from common import add_common_options, record_figures   # standard library only: fastai's Python runs this file too

SIZES = {
    'default': dict(vocab=60000, bs=16, bptt=70, config=None),
    'small': dict(vocab=10000, bs=16, bptt=70,
                  config=dict(emb_sz=200, n_hid=400, n_layers=2, pad_token=1, bidir=False, output_p=0.1, hidden_p=0.15,
                              input_p=0.25, embed_p=0.02, weight_p=0.2, tie_weights=True, out_bias=True)),
}


def build(impl: str, vocab: int, config):
    "The language model from our package or from fastai."
    if impl == 'fastai':
        import warnings; warnings.filterwarnings('ignore')
        from fastai.text.all import AWD_LSTM, get_language_model
    else:
        from ulmfit_lit.awd_lstm import AWD_LSTM, get_language_model
    return get_language_model(AWD_LSTM, vocab, config=config)


def time_steps(impl: str, size: str, device: str, iters: int) -> list[float]:
    "Forward+backward step times, in seconds, of `impl`'s LM of `size` on `device`."
    import torch
    import torch.nn.functional as F
    torch.manual_seed(0)
    s = SIZES[size]
    model = build(impl, s['vocab'], s['config']).to(device).train()
    x = torch.randint(0, s['vocab'], (s['bs'], s['bptt']), device=device)
    y = torch.randint(0, s['vocab'], (s['bs'], s['bptt']), device=device)
    def step():
        logits = model(x)[0]                                        # (bs, bptt, vocab)
        F.cross_entropy(logits.reshape(-1, s['vocab']), y.reshape(-1)).backward()
        model.zero_grad(set_to_none=True)
        if device == 'cuda': torch.cuda.synchronize()
    step()                                                          # warm-up: allocations, kernel choice
    times = []
    for _ in range(iters):
        t0 = time.perf_counter(); step(); times.append(time.perf_counter() - t0)
    return times


def run_one(py: str, impl: str, size: str, devices, iters: int) -> dict:
    "Time one implementation and size in a fresh process (so neither run inherits the other's memory state)."
    env = os.environ if impl == 'ours' else dict(os.environ, PYTHONPATH='')   # fastai's Python: its own packages only
    out = subprocess.run([py, __file__, '--impl', impl, '--json', '--iters', str(iters), '--sizes', size,
                          '--devices', *devices], capture_output=True, text=True, env=env)
    if out.returncode != 0: raise RuntimeError(f'{impl} run failed:\n{out.stderr[-2000:]}')
    return json.loads(out.stdout.strip().splitlines()[-1])


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--iters', type=int, default=3, help='timed steps per size and round')
    p.add_argument('--rounds', type=int, default=3, help='rounds, ours and fastai alternating')
    p.add_argument('--sizes', nargs='+', default=list(SIZES), choices=list(SIZES))
    p.add_argument('--devices', nargs='+', default=None, help='cpu and/or cuda (default: cpu, plus cuda if present)')
    p.add_argument('--impl', default='ours', choices=['ours', 'fastai'])
    p.add_argument('--json', action='store_true', help='print one JSON line (used for the fastai subprocess)')
    a = add_common_options(p).parse_args()
    import torch
    devices = a.devices or (['cpu', 'cuda'] if torch.cuda.is_available() else ['cpu'])
    keys = [f'{d}/{s}' for d in devices for s in a.sizes]
    if a.json:   # one round of one implementation, for the subprocess
        print(json.dumps({k: time_steps(a.impl, k.split('/')[1], k.split('/')[0], a.iters) for k in keys})); return
    # Each size and implementation in its own process, ours and fastai alternating round by round, so that both see
    # the same load; every step of every round counts toward the median.
    from ulmfit_lit.measure import fastai_python, spread       # not above: fastai's Python has no ulmfit_lit
    fastai_py = fastai_python(a.fastai_python) if a.impl == 'ours' else None
    times = {impl: {k: [] for k in keys} for impl in ['ours', 'fastai']}
    for _ in range(a.rounds):
        for size in a.sizes:
            runs = [('ours', sys.executable)] + ([('fastai', fastai_py)] if fastai_py else [])
            for impl, py in runs:
                for k, ts in run_one(py, impl, size, devices, a.iters).items(): times[impl][k] += ts
    print(f'torch {torch.__version__}, {torch.get_num_threads()} threads; median of {a.rounds} rounds x {a.iters} steps,'
          f' each round after a warm-up step')
    print(f'{"device/size":<14} {"tokens/step":>11} {"ours tok/s":>11} {"fastai tok/s":>13}')
    figures = {}
    for k in keys:
        s = SIZES[k.split('/')[1]]
        n = s['bs'] * s['bptt']
        ours = n / statistics.median(times['ours'][k])
        fa = n / statistics.median(times['fastai'][k]) if fastai_py else None
        print(f'{k:<14} {n:>11} {ours:11.0f} ' + (f'{fa:13.0f}' if fa else f'{"-":>13}'))
        figures[k] = dict(tokens_per_step=n, ours_tokens_per_s=round(ours), ours_step_seconds=spread(times['ours'][k]))
        if fa: figures[k].update(fastai_tokens_per_s=round(fa), fastai_step_seconds=spread(times['fastai'][k]))
    record_figures('model', dict(sizes=figures), a)


if __name__ == '__main__':
    main()
