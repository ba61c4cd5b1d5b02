"""Draw the course's diagrams into nbs/images/: ULMFiT's three stages (introduction) and the AWD-LSTM with its tensor
shapes (chapter 03). `python tools/draw_figures.py`; the PNGs are committed, so pages need no drawing at run time."""
from pathlib import Path

import matplotlib
matplotlib.use('Agg')
import matplotlib.pyplot as plt
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch

OUT = Path(__file__).resolve().parents[1]/'nbs'/'images'


def box(ax, x, y, w, h, text, color, size=10, weight='normal'):
    "A rounded box centred at (x, y) with `text` inside."
    ax.add_patch(FancyBboxPatch((x - w/2, y - h/2), w, h, boxstyle='round,pad=0.02,rounding_size=0.05',
                                fc=color, ec='#333333', lw=1.2))
    ax.text(x, y, text, ha='center', va='center', fontsize=size, weight=weight, wrap=True)


def arrow(ax, x0, y0, x1, y1, text=None, color='#333333'):
    "An arrow from (x0, y0) to (x1, y1), with `text` beside its middle."
    ax.add_patch(FancyArrowPatch((x0, y0), (x1, y1), arrowstyle='-|>', mutation_scale=14, lw=1.4, color=color))
    if text: ax.text((x0 + x1)/2, (y0 + y1)/2 + 0.12, text, ha='center', va='bottom', fontsize=8.5, color='#444444')


def three_stages():
    "ULMFiT's three stages (Howard & Ruder 2018, figure 1), with what each reads and what it hands on."
    fig, ax = plt.subplots(figsize=(11, 4.2))
    ax.set_xlim(0, 11); ax.set_ylim(0, 4.2); ax.axis('off')
    stages = [(1.9, '1. General-domain\nlanguage model', 'predict the next word\nof a large corpus\n(WikiText-103, or here\nIMDb\'s unlabelled reviews)', '#dbe9f6'),
              (5.5, '2. Target-task LM\nfine-tuning', 'predict the next word\nof the task\'s own texts\n(slanted triangular rates,\ndiscriminative rates)', '#dff0d8'),
              (9.1, '3. Classifier\nfine-tuning', 'a small head on the\nencoder, trained on\nlabelled reviews\n(gradual unfreezing)', '#fcf3cf')]
    for x, title, body, color in stages:
        box(ax, x, 3.15, 3.0, 0.95, title, color, size=11, weight='bold')
        box(ax, x, 1.55, 3.0, 1.55, body, '#ffffff', size=9.5)
        arrow(ax, x, 2.65, x, 2.35)
    arrow(ax, 3.45, 3.15, 3.95, 3.15, 'weights')
    arrow(ax, 7.05, 3.15, 7.55, 3.15, 'encoder')
    ax.text(5.5, 0.25, 'The same AWD-LSTM encoder goes through all three stages; only its head changes '
            '(next-word decoder, then classifier).', ha='center', fontsize=9.5, style='italic', color='#333333')
    fig.tight_layout()
    fig.savefig(OUT/'ulmfit_stages.png', dpi=110)
    plt.close(fig)


def awd_lstm_shapes():
    "The AWD-LSTM with ULMFiT's default sizes: embedding, three LSTMs, and the two heads, with tensor shapes."
    fig, ax = plt.subplots(figsize=(11, 6.4))
    ax.set_xlim(0, 11); ax.set_ylim(0, 6.4); ax.axis('off')
    enc = [(0.6, 'token ids', '(bs, bptt)', '#eeeeee'),
           (1.55, 'Embedding 60,000 x 400\n+ EmbeddingDropout (whole words), RNNDropout', '(bs, bptt, 400)', '#dbe9f6'),
           (2.5, 'LSTM 400 -> 1,152  (WeightDropout on its recurrent weights)\n+ RNNDropout between layers', '(bs, bptt, 1152)', '#dbe9f6'),
           (3.45, 'LSTM 1,152 -> 1,152  (WeightDropout)\n+ RNNDropout', '(bs, bptt, 1152)', '#dbe9f6'),
           (4.4, 'LSTM 1,152 -> 400  (WeightDropout)', '(bs, bptt, 400)', '#dbe9f6')]
    for y, text, shape, color in enc:
        box(ax, 3.2, y, 5.0, 0.7, text, color, size=9)
        ax.text(5.85, y, shape, va='center', fontsize=9, family='monospace')
    for (y0, *_), (y1, *_) in zip(enc, enc[1:]): arrow(ax, 3.2, y0 + 0.35, 3.2, y1 - 0.35)
    ax.text(0.45, 2.95, 'AWD_LSTM\nencoder', rotation=90, va='center', ha='center', fontsize=11, weight='bold', color='#1f4e79')
    ax.text(3.6, 4.9, 'the hidden state (h, c) of each layer is kept from one batch to the next, detached', ha='center',
            fontsize=8.5, style='italic')
    # language-model head
    box(ax, 2.0, 5.8, 3.2, 0.7, 'LinearDecoder: RNNDropout + Linear 400 -> 60,000\n(weight tied to the embedding)', '#dff0d8', size=8.5)
    ax.text(1.55, 5.15, 'logits (bs, bptt, 60000)', fontsize=8.5, family='monospace')
    arrow(ax, 1.2, 4.75, 1.4, 5.45)
    # classifier head
    box(ax, 9.35, 4.4, 3.2, 0.7, 'masked concat pooling: last, max, mean\n(bs, 1200)', '#fcf3cf', size=8.5)
    box(ax, 9.35, 5.5, 3.2, 0.8, 'BatchNorm, Dropout, Linear 1200 -> 50, ReLU\nBatchNorm, Dropout, Linear 50 -> n_class', '#fcf3cf', size=8.5)
    ax.text(8.35, 6.05, 'logits (bs, n_class)', fontsize=8.5, family='monospace')
    arrow(ax, 7.3, 4.4, 7.75, 4.4)
    arrow(ax, 9.35, 4.75, 9.35, 5.1)
    ax.text(9.35, 3.6, 'classifier: SentenceEncoder reads a review in\nchunks of 72 tokens, padding first, and keeps\n'
            'the outputs of the last 1,440 tokens', ha='center', fontsize=8.5, style='italic')
    fig.tight_layout()
    fig.savefig(OUT/'awd_lstm.png', dpi=110)
    plt.close(fig)


if __name__ == '__main__':
    OUT.mkdir(parents=True, exist_ok=True)
    three_stages(); awd_lstm_shapes()
    print('wrote', OUT/'ulmfit_stages.png', 'and', OUT/'awd_lstm.png')
