"""Pretraining sweep: a few AWD-LSTM language-model configs, each trained on IMDb's unsup reviews for about the same
CPU time, compared on held-out perplexity (full softmax) and on a sentiment probe of their features.

    python experiments/pretrain_sweep.py [IMDB_FOLDER] [--seconds 210] [--out /tmp/sweep] [--no-record]

Each run's length is set from the tokens/s a short timing of that config gave on the course's 2-core machine
(the third value of each CONFIGS row), so all runs get the same budget. Each model is then scored by probe.py (beside
this script). Prints one JSON line per config and adds the table to measurements.json under 'pretrain_sweep' (chapter
15 shows it). Asserts nothing."""
import argparse, json, subprocess, sys
from pathlib import Path

from ulmfit_lit.download import URLs, untar_data
from ulmfit_lit.pretrain import pretrain_lm

from common import record_figures

CONFIGS = [  # (name, config, tokens/s measured with a 5-step timing on the 2-core machine)
    ('200/400/2, vocab 20k, full softmax', dict(emb_sz=200, n_hid=400, max_vocab=20000, n_samples=0), 2447),
    ('200/400/2, vocab 20k, sampled 1024', dict(emb_sz=200, n_hid=400, max_vocab=20000, n_samples=1024), 11465),
    ('256/768/2, vocab 16k, sampled 1024', dict(emb_sz=256, n_hid=768, max_vocab=16000, n_samples=1024), 5392),
    ('300/1024/2, vocab 16k, sampled 1024', dict(emb_sz=300, n_hid=1024, max_vocab=16000, n_samples=1024), 3407),
]
TOKENS_PER_EPOCH = 14.76e6      # 49,000 unsup reviews at bs 64, bptt 70

def main():
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('folder', nargs='?'); p.add_argument('--out', default='/tmp/sweep')
    p.add_argument('--seconds', type=float, default=210.); p.add_argument('--only', type=int, nargs='*')
    p.add_argument('--no-record', action='store_true', help='print only; leave measurements.json alone')
    a = p.parse_args()
    folder = Path(a.folder) if a.folder else untar_data(URLs.IMDB)
    rows = []
    for k, (name, cfg, speed) in enumerate(CONFIGS):
        if a.only and k not in a.only: continue
        out = Path(a.out)/name.split(',')[0].replace('/', '-')
        r = pretrain_lm(folder, out, dict(cfg, epochs=speed * a.seconds / TOKENS_PER_EPOCH), resume=False)
        last = r['history'][-1]
        probe = subprocess.run([sys.executable, str(Path(__file__).parent/'probe.py'), str(out)], capture_output=True,
                               text=True, check=True).stdout.strip().splitlines()[-1]
        rows.append(dict(name=name, tokens_seen=r['tokens_seen'], train_seconds=round(r['seconds']),
                         tokens_per_s=round(r['tokens_per_s']), perplexity=round(last['perplexity'], 1),
                         accuracy=round(last['accuracy'], 4), probe_accuracy=json.loads(probe)['probe_accuracy']))
        print(json.dumps(rows[-1]), flush=True)
    record_figures('pretrain_sweep', dict(seconds_each=a.seconds, rows=rows), a)   # one run per config: no spread

if __name__ == '__main__': main()
