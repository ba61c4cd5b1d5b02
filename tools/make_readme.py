"""Write README.md from nbs/index.ipynb (what `nbdev_readme` does with Quarto, done here without it).

Markdown cells are copied as they are, visible code cells become Python blocks with their text outputs, cells with
`#| echo: false` (those that render figures from measurements.json) give their Markdown output alone, and image
links are made relative to the repository root.
"""
import json
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def cell_text(cell) -> str:
    return ''.join(cell['source'])


def is_hidden(src: str) -> bool:
    return bool(re.search(r'^#\|\s*(hide|echo:\s*false)', src, re.M))


def main():
    nb = json.loads((ROOT/'nbs'/'index.ipynb').read_text(encoding='utf-8'))
    parts = ['<!-- Generated from nbs/index.ipynb by tools/make_readme.py: edit the notebook, not this file. -->']
    for cell in nb['cells']:
        src = cell_text(cell)
        if cell['cell_type'] == 'markdown':
            src = re.sub(r'\]\((images/)', r'](nbs/\1', src)
            src = re.sub(r'\]\((\d\d_[\w]+)\.ipynb\)', r'](nbs/\1.ipynb)', src)
            parts.append(src)
        elif cell['cell_type'] == 'code' and re.search(r'^#\|\s*echo:\s*false', src, re.M) and not re.search(r'^#\|\s*hide', src, re.M):
            # a cell that renders figures from measurements.json: its Markdown output goes in, its code does not
            parts += [''.join(o['data']['text/markdown']).strip() for o in cell.get('outputs', [])
                      if 'text/markdown' in o.get('data', {})]
        elif cell['cell_type'] == 'code' and src.strip() and not is_hidden(src):
            parts.append(f'```python\n{src}\n```')
            outs = [''.join(o.get('text', '') or o.get('data', {}).get('text/plain', '')) for o in cell.get('outputs', [])]
            outs = [o for o in outs if o.strip()]
            if outs: parts.append('```\n' + '\n'.join(outs).rstrip() + '\n```')
    (ROOT/'README.md').write_text('\n\n'.join(parts) + '\n', encoding='utf-8')


if __name__ == '__main__':
    main()
