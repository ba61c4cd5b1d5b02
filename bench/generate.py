"""Words per second of text generation: incremental (each new word fed once) against fastai's re-feeding.

    python bench/generate.py [--vocab 60000] [--n-words 40] [--prompt-len 20] [--device cpu]

Uses the default-size AWD-LSTM language model with random weights (speed does not depend on the weights) and greedy
decoding, so both ways must produce the same words; the script checks that and prints both rates.
"""
import argparse
import time

import torch

from ulmfit_lit.awd_lstm import AWD_LSTM, get_language_model
from ulmfit_lit.language_model import generate_ids


def best_time(f, repeats: int) -> float:
    best = float('inf')
    for _ in range(repeats):
        t0 = time.perf_counter(); f(); best = min(best, time.perf_counter() - t0)
    return best


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--vocab', type=int, default=60000)
    p.add_argument('--n-words', type=int, default=40)
    p.add_argument('--prompt-len', type=int, default=20)
    p.add_argument('--repeats', type=int, default=3)
    p.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu')
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
          f"best of {args.repeats}")
    print(f"{'method':<24}{'words/s':>10}{'seconds':>10}")
    print(f"{'incremental (ours)':<24}{args.n_words / t_inc:>10.1f}{t_inc:>10.3f}")
    print(f"{'re-feeding (fastai)':<24}{args.n_words / t_ref:>10.1f}{t_ref:>10.3f}")
    print(f"speed-up {t_ref / t_inc:.1f}x; same tokens: {inc == ref}")


if __name__ == '__main__':
    main()
