"""Words per second of text generation, through the call users make: `LMLearner.predict`, ours against fastai's.

    python bench/generate.py [--vocab 60000] [--n-words 40] [--prompt-len 20] [--runs 5] [--fastai-python PY]

Both sides build the default-size AWD-LSTM language model with random weights (speed does not depend on the
weights) on the same vocab, and continue the same prompt by `n_words` words with `predict(prompt, n_words,
temperature=1.)`: tokenizing, sampling and decoding included on both sides. Ours feeds each new word once
(the LSTM's state carries the prefix); fastai's re-reads the whole text for every word. The same script also
checks, on our side, that greedy generation gives the same words both ways, and times the re-feeding way.
Median of `--runs` calls each (after a warm-up call); figures go to measurements.json ('generate').
"""
import argparse
import json
import statistics
import subprocess

import pandas as pd
import torch

from ulmfit_lit.measure import fastai_python, spread, timed

from common import add_common_options, record_figures

SETUP = '''
vocab_sz, n_words, prompt_len, runs = {vocab}, {n_words}, {prompt_len}, {runs}
torch.manual_seed(0)
vocab = ['xxunk', 'xxpad', 'xxbos', 'xxeos', 'xxfld', 'xxrep', 'xxwrep', 'xxup', 'xxmaj']
vocab += [f'w{{i}}' for i in range(vocab_sz - len(vocab))]
df = pd.DataFrame({{'text': [' '.join(f'w{{i}}' for i in range(j, j + 50)) for j in range(64)]}})
dls = TextDataLoaders.from_df(df, text_col='text', is_lm=True, text_vocab=vocab, bs=4, seq_len=10)
learn = language_model_learner(dls, AWD_LSTM, pretrained=False)
prompt = ' '.join(f'w{{i}}' for i in range(prompt_len - 1))     # + xxbos = prompt_len tokens
learn.predict(prompt, n_words=2)                                # warm-up
'''

FASTAI_SNIPPET = '''
import json, time, warnings
warnings.filterwarnings('ignore')
import pandas as pd, torch
from fastai.text.all import TextDataLoaders, language_model_learner, AWD_LSTM
{setup}
ts = []
for _ in range(runs):
    t0 = time.perf_counter(); learn.predict(prompt, n_words=n_words, temperature=1.); ts.append(time.perf_counter() - t0)
print(json.dumps(ts))
'''


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--vocab', type=int, default=60000)
    p.add_argument('--n-words', type=int, default=40)
    p.add_argument('--prompt-len', type=int, default=20)
    args = add_common_options(p).parse_args()
    setup = SETUP.format(vocab=args.vocab, n_words=args.n_words, prompt_len=args.prompt_len, runs=args.runs)
    from ulmfit_lit.all import TextDataLoaders, language_model_learner, AWD_LSTM
    from ulmfit_lit.language_model import generate_ids
    scope = dict(pd=pd, torch=torch, TextDataLoaders=TextDataLoaders, language_model_learner=language_model_learner,
                 AWD_LSTM=AWD_LSTM)
    exec(setup, scope)
    learn, prompt, n = scope['learn'], scope['prompt'], args.n_words
    ours = timed(lambda: learn.predict(prompt, n_words=n, temperature=1.), args.runs)

    model = learn.model.eval()
    ids = torch.as_tensor(learn.dls.test_dl([prompt]).doc(0).astype('int64'))
    same = generate_ids(model, ids, n, temperature=0) == generate_ids(model, ids, n, temperature=0, refeed=True)
    refeed = timed(lambda: learn.predict(prompt, n_words=n, temperature=1., refeed=True), args.runs)

    fa = None
    py = fastai_python(args.fastai_python)
    if py:
        r = subprocess.run([py, '-c', FASTAI_SNIPPET.format(setup=setup)], capture_output=True, text=True)
        if r.returncode != 0: print('fastai run failed:', r.stderr.strip().splitlines()[-1:])
        else: fa = [float(t) for t in json.loads(r.stdout.strip().splitlines()[-1])]

    print(f"vocab {args.vocab:,}, prompt {args.prompt_len} tokens, {n} words at temperature 1, median of {args.runs} "
          f"predict calls, {torch.get_num_threads()} threads")
    print(f"{'predict':<36}{'words/s':>10}{'seconds':>10}")
    rows = {'ours (each word fed once)': ours, 'ours with refeed=True': refeed}
    if fa: rows['fastai 2.8.12 (re-reads the text)'] = fa
    for name, ts in rows.items():
        m = statistics.median(ts)
        print(f"{name:<36}{n / m:>10.1f}{m:>10.3f}   (runs {min(ts):.3f}-{max(ts):.3f} s)")
    speedup = statistics.median(fa) / statistics.median(ours) if fa else None
    print(f"greedy words identical fed once or re-read: {same}" + (f"; ours over fastai: {speedup:.1f}x" if fa else ''))
    figures = dict(n_words=n, vocab=args.vocab, prompt_len=args.prompt_len, temperature=1.0, same_greedy_words=same,
                   ours_seconds=spread(ours), ours_refeed_seconds=spread(refeed),
                   ours_words_per_s=round(n / statistics.median(ours), 1))
    if fa: figures.update(fastai_seconds=spread(fa), fastai_words_per_s=round(n / statistics.median(fa), 1),
                          speedup=round(speedup, 1))
    record_figures('generate', figures, args)


if __name__ == '__main__':
    main()
