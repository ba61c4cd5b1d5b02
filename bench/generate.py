"""Words per second of text generation: incremental (each new word fed once) against re-feeding, and fastai.

    python bench/generate.py [--vocab 60000] [--n-words 40] [--prompt-len 20] [--device cpu] [--fastai-python PY]

Uses the default-size AWD-LSTM language model with random weights (speed does not depend on the weights) and greedy
decoding, so both ways must produce the same words; the script checks that and prints both rates. When fastai is
importable from a side environment (default /work/fastai-venv/bin/python), fastai 2.8.12's own `LMLearner.predict`
(which re-feeds the whole text through `get_preds` for every word) is timed on the same model size in the same run.
"""
import argparse
import subprocess
import textwrap
import time
from pathlib import Path

import torch

from ulmfit_lit.awd_lstm import AWD_LSTM, get_language_model
from ulmfit_lit.language_model import generate_ids


def best_time(f, repeats: int) -> float:
    best = float('inf')
    for _ in range(repeats):
        t0 = time.perf_counter(); f(); best = min(best, time.perf_counter() - t0)
    return best


FASTAI_SNIPPET = textwrap.dedent('''
    import sys, time, warnings
    warnings.filterwarnings('ignore')
    import pandas as pd, torch
    from fastai.text.all import TextDataLoaders, language_model_learner, AWD_LSTM
    vocab_sz, n_words, prompt_len, repeats = map(int, sys.argv[1:5])
    torch.manual_seed(0)
    vocab = ['xxunk', 'xxpad', 'xxbos', 'xxeos', 'xxfld', 'xxrep', 'xxwrep', 'xxup', 'xxmaj']
    vocab += [f'w{i}' for i in range(vocab_sz - len(vocab))]
    df = pd.DataFrame({'text': [' '.join(f'w{i}' for i in range(j, j + 50)) for j in range(64)]})
    dls = TextDataLoaders.from_df(df, text_col='text', is_lm=True, text_vocab=vocab, bs=4, seq_len=10)
    learn = language_model_learner(dls, AWD_LSTM, pretrained=False)
    prompt = ' '.join(f'w{i}' for i in range(prompt_len - 1))     # + xxbos = prompt_len tokens
    learn.predict(prompt, n_words=2)
    best = float('inf')
    for _ in range(repeats):
        t0 = time.perf_counter(); learn.predict(prompt, n_words=n_words, temperature=1.); best = min(best, time.perf_counter() - t0)
    print(best)
''')


def fastai_time(py: str, args) -> float | None:
    "fastai's best time for `n_words` words, or None when fastai is not importable from `py`."
    if not Path(py).exists(): return None
    r = subprocess.run([py, '-c', FASTAI_SNIPPET, str(args.vocab), str(args.n_words), str(args.prompt_len),
                        str(args.repeats)], capture_output=True, text=True)
    if r.returncode != 0: print(f"(fastai run failed: {r.stderr.strip().splitlines()[-1:]})"); return None
    return float(r.stdout.strip().splitlines()[-1])


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--vocab', type=int, default=60000)
    p.add_argument('--n-words', type=int, default=40)
    p.add_argument('--prompt-len', type=int, default=20)
    p.add_argument('--repeats', type=int, default=3)
    p.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    p.add_argument('--fastai-python', default='/work/fastai-venv/bin/python')
    args = p.parse_args()
    torch.manual_seed(0)
    model = get_language_model(AWD_LSTM, args.vocab).to(args.device).eval()
    prompt = torch.randint(10, args.vocab, (args.prompt_len,), device=args.device)
    inc = generate_ids(model, prompt, args.n_words, temperature=0)
    ref = generate_ids(model, prompt, args.n_words, temperature=0, refeed=True)
    assert inc == ref, 'incremental and re-fed greedy generation disagree'
    t_inc = best_time(lambda: generate_ids(model, prompt, args.n_words, temperature=0), args.repeats)
    t_ref = best_time(lambda: generate_ids(model, prompt, args.n_words, temperature=0, refeed=True), args.repeats)
    print(f"device {args.device}, vocab {args.vocab:,}, prompt {args.prompt_len} tokens, {args.n_words} words, "
          f"best of {args.repeats}, {torch.get_num_threads()} threads")
    print(f"{'method':<34}{'words/s':>10}{'seconds':>10}")
    print(f"{'incremental (ours)':<34}{args.n_words / t_inc:>10.1f}{t_inc:>10.3f}")
    print(f"{'re-feeding the prefix (ours)':<34}{args.n_words / t_ref:>10.1f}{t_ref:>10.3f}")
    t_fa = fastai_time(args.fastai_python, args) if args.device == 'cpu' else None
    if t_fa is not None: print(f"{'fastai 2.8.12 predict (re-feeds)':<34}{args.n_words / t_fa:>10.1f}{t_fa:>10.3f}")
    print(f"speed-up over re-feeding {t_ref / t_inc:.1f}x"
          + (f", over fastai {t_fa / t_inc:.1f}x" if t_fa else '')
          + f"; same tokens: {inc == ref}")


if __name__ == '__main__':
    main()
