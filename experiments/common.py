"""What the experiments that record share: the one measurements file at the repository root, and the command line
written beside their figures (the script relative to the root, as bench/ records it), through `ulmfit_lit.measure`."""
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MEASUREMENTS = ROOT/'measurements.json'


def command() -> str:
    "This run's command line as recorded: the script relative to the repository root, absolute paths as PATH."
    words = [os.path.relpath(sys.argv[0], ROOT)] + ['PATH' if a.startswith('/') else a for a in sys.argv[1:]]
    return 'python ' + ' '.join(words)


def record_figures(section: str, figures: dict, args=None) -> None:
    "Write `figures` under `section` of measurements.json with `ulmfit_lit.measure.record`, unless `--no-record`."
    if args is not None and getattr(args, 'no_record', False): return
    from ulmfit_lit.measure import record
    record(MEASUREMENTS, section, figures, command=command())
