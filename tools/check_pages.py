"""A reader's check of the committed pages (the notebooks in nbs/): it fails when a page shows an error, an empty
output (a progress bar that left nothing, a blank stream) or a word from outside the course (internal names a reader
cannot know). Run by .ci/run; `python tools/check_pages.py` prints each problem with its page and cell."""
import json, re, sys
from pathlib import Path

NBS = Path(__file__).resolve().parent.parent/'nbs'
BANNED = [r'CONVENTIONS\.md', r"the issue'?s?\b", r'\bthis task\b', r'\bthis session\b', r'200 MB budget',
          r'10x aim', r'\bDEVELOPERS\.md\b', r'\bthe CEO\b']

def _text(output: dict) -> str:
    if output['output_type'] == 'stream': return ''.join(output.get('text', ''))
    data = output.get('data', {})
    return ''.join(''.join(v) if isinstance(v, list) else str(v) for k, v in data.items() if k.startswith('text'))

def problems(nb_path: Path) -> list[str]:
    nb, found = json.loads(nb_path.read_text(encoding='utf-8')), []
    for i, cell in enumerate(nb['cells']):
        src = ''.join(cell['source'])
        where = f"{nb_path.name} cell {i}"
        for pat in BANNED:
            if re.search(pat, src, re.I): found.append(f"{where}: words from outside the course: {pat!r}")
        for out in cell.get('outputs', []):
            if out['output_type'] == 'error': found.append(f"{where}: an error output ({out.get('ename')})")
            elif out['output_type'] == 'stream' and out.get('name') == 'stderr' and 'Traceback' in _text(out):
                found.append(f"{where}: a traceback on stderr")
            elif out['output_type'] in ('stream', 'display_data', 'execute_result'):
                data = out.get('data', {})
                if out['output_type'] == 'stream' and not _text(out).strip():
                    found.append(f"{where}: an empty output")
                elif data and set(data) <= {'text/html', 'text/plain'} and not _text(out).strip():
                    found.append(f"{where}: an empty output")
                elif 'text/html' in data and re.fullmatch(r'\s*(<[^>]*>\s*)*', ''.join(data['text/html'])):
                    found.append(f"{where}: an output of empty HTML (a progress bar that left nothing)")
    return found

if __name__ == '__main__':
    all_found = [p for nb in sorted(NBS.glob('*.ipynb')) for p in problems(nb)]
    for p in all_found: print(p)
    print(f"{len(all_found)} problem(s) in {len(list(NBS.glob('*.ipynb')))} pages")
    sys.exit(1 if all_found else 0)
