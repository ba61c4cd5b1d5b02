"""What the timing scripts share beyond `ulmfit_lit.measure` (which times, summarises, finds fastai and records):
their common options, and the one measurements file they write, at the repository root.

fastai 2.8.12 lives in a separate environment (it is never a dependency of the package). Every script finds it the
same way: `--fastai-python PY`, or else the environment variable FASTAI_PYTHON; with neither, or when that Python
cannot `import fastai.text.all`, the script says so and reports our side alone (`ulmfit_lit.measure.fastai_python`).

Each figure is the median of several runs, printed with its range, and written to `measurements.json` under the
script's own section (with the date, the command and the machine), which is where the README and the chapters read
it from. `--no-record` leaves the file alone.

This module imports only the standard library at import time: `bench/model.py` also runs under fastai's Python,
which has no `ulmfit_lit`.
"""
import os
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


def record_figures(section: str, figures: dict, args=None) -> None:
    "Write `figures` under `section` of measurements.json with `ulmfit_lit.measure.record`, unless `--no-record`."
    if args is not None and getattr(args, 'no_record', False): return
    from ulmfit_lit.measure import record
    record(MEASUREMENTS, section, figures)   # the command: the script relative to the root
