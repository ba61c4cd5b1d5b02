"""What the experiments that record share: the one measurements file at the repository root, written through
`ulmfit_lit.measure.record` (which notes the date, the machine and the command, the script relative to the root)."""
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MEASUREMENTS = ROOT/'measurements.json'


def record_figures(section: str, figures: dict, args=None) -> None:
    "Write `figures` under `section` of measurements.json with `ulmfit_lit.measure.record`, unless `--no-record`."
    if args is not None and getattr(args, 'no_record', False): return
    from ulmfit_lit.measure import record
    record(MEASUREMENTS, section, figures)   # the command: the script relative to the root
