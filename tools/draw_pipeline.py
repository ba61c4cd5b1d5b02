"""Draw the course's pipeline picture into nbs/images/pipeline.png (used by the index page and README)."""
from pathlib import Path

import matplotlib
matplotlib.use('Agg')
import matplotlib.pyplot as plt
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch

STAGES = [
    ('00', 'untar_data', 'IMDb folder\nor CSV'),
    ('01', 'tokenize', 'rules, spaCy,\nvocab'),
    ('', 'token store', 'ids + offsets\n(numpy, no copies)'),
    ('02', 'batches', 'LM streams,\nsorted, padded'),
    ('03', 'AWD-LSTM', 'encoder +\nheads'),
    ('04', 'Learner', 'one-cycle,\ncallbacks, fp16'),
]
TAIL = [('05', 'language model', 'fine-tune,\ngenerate'), ('06', 'classifier', 'gradual unfreezing,\npredict'),
        ('07', 'IMDb recipe', 'CLI, full run')]


def box(ax, x, y, num, title, sub, color):
    ax.add_patch(FancyBboxPatch((x, y), 1.7, 1.1, boxstyle='round,pad=0.05', fc=color, ec='#333', lw=1.2))
    label = f'{num}  {title}' if num else title
    ax.text(x + 0.85, y + 0.78, label, ha='center', va='center', fontsize=11 if len(label) < 16 else 9.5, weight='bold')
    ax.text(x + 0.85, y + 0.33, sub, ha='center', va='center', fontsize=8.5, color='#333')


def arrow(ax, a, b):
    ax.add_patch(FancyArrowPatch(a, b, arrowstyle='-|>', mutation_scale=14, lw=1.3, color='#444'))


def main(out=Path(__file__).resolve().parents[1]/'nbs'/'images'/'pipeline.png'):
    fig, ax = plt.subplots(figsize=(13, 3.6))
    ax.set_xlim(-0.2, 12.3); ax.set_ylim(-0.3, 3.1); ax.axis('off')
    for i, (num, title, sub) in enumerate(STAGES):
        x = i * 2.05
        box(ax, x, 1.8, num, title, sub, '#fde3c8' if title == 'token store' else '#dbe9f6')
        if i: arrow(ax, (x - 0.3, 2.35), (x - 0.02, 2.35))
    for j, (num, title, sub) in enumerate(TAIL):
        x = 6.15 + j * 2.05
        box(ax, x, 0.0, num, title, sub, '#e2f0d9')
        if j: arrow(ax, (x - 0.3, 0.55), (x - 0.02, 0.55))
    arrow(ax, (11.1, 1.75), (6.9, 1.2))
    fig.savefig(out, dpi=110, bbox_inches='tight', metadata={'Software': None})
    print(f'wrote {out}')


if __name__ == '__main__':
    main()
