"""Language-model training speed on this CPU: tokens/s of one training step (forward, backward, AdamW) for a few
AWD-LSTM sizes, full softmax against sampled softmax, float32 against bfloat16 autocast. Random batches of 64 x 70
tokens; median (and range) of the steps after two warm-up ones. Prints one line per setting and records the table in
measurements.json (appendix H shows it); asserts nothing.

    python bench/pretrain_speed.py [--threads 2] [--no-record]"""
import argparse, time
import torch
import torch.nn.functional as F
from ulmfit_lit.awd_lstm import AWD_LSTM, get_language_model, awd_lstm_lm_config
from ulmfit_lit.measure import spread
from ulmfit_lit.pretrain import sampled_softmax_loss

from common import record_figures

SETTINGS = [  # emb, hid, layers, vocab, sampled words (0: full softmax), bf16 autocast
    (200, 400, 2, 20000, 0, False), (200, 400, 2, 20000, 0, True), (400, 1152, 3, 20000, 0, False),
    (400, 1152, 3, 20000, 0, True), (200, 400, 2, 20000, 1024, False), (256, 768, 2, 16000, 0, False),
    (256, 768, 2, 16000, 1024, False), (300, 1024, 2, 16000, 1024, False), (400, 1152, 3, 16000, 1024, False)]

def step_seconds(emb, hid, layers, vocab, n_samples, bf16, bs=64, bptt=70, steps=7) -> list[float]:
    "Seconds of each training step after the two warm-up ones."
    model = get_language_model(AWD_LSTM, vocab, dict(awd_lstm_lm_config, emb_sz=emb, n_hid=hid, n_layers=layers), 0.2)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    x, y = torch.randint(0, vocab, (bs, bptt)), torch.randint(0, vocab, (bs, bptt))
    probs, times = torch.full((vocab,), 1 / vocab), []
    for _ in range(steps):
        t = time.perf_counter()
        with torch.autocast('cpu', dtype=torch.bfloat16, enabled=bf16):
            raw = model[0](x); out = model[1].output_dp(raw)
            if n_samples: loss = sampled_softmax_loss(out.flatten(0, 1), y.flatten(), model[1].decoder.weight,
                                                      model[1].decoder.bias, probs, n_samples)
            else: loss = F.cross_entropy(model[1].decoder(out).flatten(0, 1).float(), y.flatten())
        loss.backward(); opt.step(); opt.zero_grad()
        times.append(time.perf_counter() - t)
    return times[2:]

if __name__ == '__main__':
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0]); p.add_argument('--threads', type=int, default=2)
    p.add_argument('--no-record', action='store_true', help='do not write the figures to measurements.json')
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    rows, tokens = [], 64 * 70
    for s in SETTINGS:
        emb, hid, layers, vocab, ns, bf16 = s
        sp = spread(step_seconds(*s))
        row = dict(model=f'{emb}/{hid}/{layers}', vocab=vocab, softmax=f'sampled {ns}' if ns else 'full',
                   precision='bf16' if bf16 else 'fp32', tokens_per_s=round(tokens / sp['median']),
                   tokens_per_s_range=[round(tokens / sp['max']), round(tokens / sp['min'])], steps=sp['runs'])
        rows.append(row)
        print(f"{row['model']} vocab {vocab:,} {row['softmax']:<13} {row['precision']}: {row['tokens_per_s']:8,} tokens/s "
              f"({row['tokens_per_s_range'][0]:,} to {row['tokens_per_s_range'][1]:,})", flush=True)
    record_figures('pretrain_speed', dict(note='one training step (forward, backward, AdamW) on random 64 x 70 batches, drop_mult 0.2; '
                                  'median tokens/s over the steps after two warm-up ones, with their range', rows=rows), args)
