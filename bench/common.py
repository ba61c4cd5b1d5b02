"""What every benchmark shares: finding fastai, medians and spreads, and the one measurements file.

fastai 2.8.12 lives in a separate environment (it is never a dependency of the package). Every script finds it the
same way: `--fastai-python PY`, or else the environment variable FASTAI_PYTHON; with neither, or when that Python
cannot `import fastai.text.all`, the script says so and reports our side alone.

Each figure is the median of several runs, printed with its range, and written to `measurements.json` at the
repository root under the script's own section (with the date, the command and the machine), which is where the
README and the chapters read it from. `--no-record` leaves the file alone.
"""
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MEASUREMENTS = ROOT/'measurements.json'


def add_common_options(parser, runs: int = 5):
    "The options every benchmark takes: fastai's Python, the number of runs, and whether to record."
    parser.add_argument('--fastai-python', default=os.environ.get('FASTAI_PYTHON'),
                        help='a Python that can import fastai 2.8.12 (default: $FASTAI_PYTHON)')
    parser.add_argument('--runs', type=int, default=runs, help='timed runs of each side; the median is reported')
    parser.add_argument('--no-record', action='store_true', help='do not write the figures to measurements.json')
    return parser


def fastai_python(py: str | None) -> str | None:
    "`py` if it can import fastai's text module; otherwise None, after saying why."
    if not py:
        print('fastai: no --fastai-python or $FASTAI_PYTHON given; our side only'); return None
    r = subprocess.run([py, '-c', 'import fastai, fastai.text.all; print(fastai.__version__)'], capture_output=True, text=True)
    if r.returncode != 0:
        print(f'fastai: {py} cannot import fastai.text.all; our side only'); return None
    return py


def spread(values: list[float]) -> dict:
    "The median of `values` with their range and count."
    return dict(median=statistics.median(values), min=min(values), max=max(values), runs=len(values))


def timed(f, runs: int) -> list[float]:
    "Wall seconds of `runs` calls of `f` (warm it up first yourself if it has a first-call cost)."
    out = []
    for _ in range(runs):
        t = time.perf_counter(); f(); out.append(time.perf_counter() - t)
    return out


def machine() -> str:
    "The CPU model, the cores and the torch threads, in one line."
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path('/proc/cpuinfo').read_text().splitlines():
            if line.startswith('model name'): cpu = line.split(':', 1)[1].strip(); break
    except OSError: pass
    import torch
    gpu = f', {torch.cuda.get_device_name()}' if torch.cuda.is_available() else ''
    return f'{cpu}, {os.cpu_count()} cores, {torch.get_num_threads()} torch threads{gpu}'


def record(section: str, figures: dict, args=None) -> None:
    "Write `figures` under `section` of measurements.json (atomically), with the date, the command and the machine."
    if args is not None and getattr(args, 'no_record', False): return
    data = json.loads(MEASUREMENTS.read_text()) if MEASUREMENTS.exists() else {}
    words = [os.path.relpath(sys.argv[0], ROOT)] + ['PATH' if a.startswith('/') else a for a in sys.argv[1:]]
    cmd = 'python ' + ' '.join(words)
    data[section] = dict(date=time.strftime('%Y-%m-%d'), command=cmd, machine=machine(), **figures)
    tmp = MEASUREMENTS.with_name('.measurements.json.tmp')
    tmp.write_text(json.dumps(data, indent=1) + '\n'); tmp.replace(MEASUREMENTS)
    print(f'recorded under {section!r} in {MEASUREMENTS.name}')
