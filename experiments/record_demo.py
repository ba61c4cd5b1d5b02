"""`make demo`'s command, timed from a fresh home (nothing cached: the sample is unpacked and tokenized again), its
printed table parsed and written to measurements.json (section `demo`), which chapter 08 shows. Run it on a quiet
machine: `python experiments/record_demo.py` (add `--no-record` to only print)."""
import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from common import record_figures



def parse(stdout: str) -> dict:
    "The demo's stdout as figures: each row's accuracy and seconds, the majority share, the three reviews."
    rows, reviews, majority = {}, [], None
    for line in stdout.splitlines():
        if m := re.match(r'^(.+?)\s+([\d.]+)\s+(\d+)s$', line):
            rows[m[1]] = dict(accuracy=float(m[2]), seconds=int(m[3]))
        elif m := re.match(r'^always the most common label \((\w+)\)\s+([\d.]+)$', line):
            majority = float(m[2])
        elif m := re.match(r'^\s*(positive|negative) \(([\d.]+)\) (right|WRONG)  (.+)$', line):
            reviews.append(dict(predicted=m[1], prob=float(m[2]), right=m[3] == 'right', text=m[4]))
    if not rows or majority is None or len(reviews) != 3:
        raise ValueError(f"the demo's output did not parse (rows {len(rows)}, reviews {len(reviews)}):\n{stdout}")
    return dict(rows=rows, majority=majority, reviews=reviews)


if __name__ == '__main__':
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument('--threads', type=int, default=os.cpu_count(), help="OMP_NUM_THREADS, as the Makefile's DEMO_THREADS")
    ap.add_argument('--no-record', action='store_true')
    args = ap.parse_args()
    exe = Path(sys.executable).with_name('ulmfit-lit')
    with tempfile.TemporaryDirectory(prefix='demo_home_') as home:
        env = dict(os.environ, ULMFIT_LIT_HOME=home, OMP_NUM_THREADS=str(args.threads))
        t = time.time()
        r = subprocess.run([str(exe), 'demo'], env=env, capture_output=True, text=True)
        wall = time.time() - t
    if r.returncode: sys.exit(f"ulmfit-lit demo failed:\n{r.stderr[-3000:]}")
    print(r.stdout)
    torch.set_num_threads(args.threads)                  # so that the recorded machine names the demo's threads
    figures = dict(parse(r.stdout), total_seconds=round(wall), threads=args.threads, seed=42, lm_epochs=None,
                   stdout=r.stdout.splitlines())
    print(f"# wall {wall:.0f} s with OMP_NUM_THREADS={args.threads}")
    record_figures('demo', figures, args)
