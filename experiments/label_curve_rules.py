"""The settings the final curve uses, as functions of N, chosen on IMDb *train* reviews only (label_curve_tuning.json:
tune draws from the DRAW pool scored on DEV reviews; see label_curve_notes.md for the measurements behind each choice)."""
import math

L4 = 2.6 ** 4          # ULMFiT's discriminative spread: slice(lr / 2.6**4, lr) over the layer groups


def ulmfit_rule(n: int) -> dict:
    """Classifier stage from the shipped IMDb LM (no LM fine-tuning).
    N <= 200: the frozen-encoder stage only (ULMFiT's first stage, done to convergence): fastai's head (BN, dropout,
      Linear(768, 50), ReLU, BN, dropout, Linear(50, 2)) trained on the frozen encoder's pooled features, computed
      once in eval mode (no encoder dropout), ~100+ steps (bs 16) at one-cycle lr 2e-2. On dev, unfreezing the LSTM
      layers at these N lost 1-4 points against this (N=100: 0.73-0.75 vs 0.758; N=200: 0.786 vs probe 0.794).
    N >= 400: gradual unfreezing, train_classifier's stages and lrs (head 2e-2; then freeze_to -2, -3, 0 at 1e-2,
      5e-3, 1e-3 with slice(lr / 2.6**4, lr)), drop_mult 0.5, bs 32, fastai's head; each stage 25 optimizer steps
      (one epoch at N=800, two at 400) up to N=800, 50 steps for N >= 1600 (one epoch at 1600; at 3200 each stage
      takes a fresh random half of the reviews: 50 steps, to stay near 10 minutes on one thread)."""
    if n <= 200:
        bs = 16
        return dict(pretrained=True, drop_mult=0.5, bs=bs, head='cached', head_lr=2e-2,
                    head_epochs=max(10, math.ceil(100 * bs / n)), stages=[])
    steps = 25 if n <= 800 else 50
    lr = 2e-2
    return dict(pretrained=True, drop_mult=0.5, bs=32, head='default',
                stages=[dict(freeze_to=-1, steps=steps, lr=lr), dict(freeze_to=-2, steps=steps, lr=lr / 2, disc=L4),
                        dict(freeze_to=-3, steps=steps, lr=lr / 4, disc=L4),
                        dict(freeze_to=0, steps=steps, lr=lr / 20, disc=L4)])


SCRATCH_LR = 2.37e-3   # lr_find valley, random weights, N=400 (label_curve_tuning.json: 'scratch_lr_find')


def scratch_rule(n: int) -> dict:
    """The same AWD-LSTM classifier from random weights: every layer trainable from the start (no gradual unfreezing,
    no discriminative lrs), one one-cycle of ~120 optimizer steps (at least 2 epochs) at lr_find's valley 2.4e-3,
    drop_mult 0.5, fastai's head, bs 16 up to N=200 (else 32).
    Dev (N=400): 10 epochs (120 steps) at 2.4e-3 reach 0.757 (chance for the first 4 epochs, 0.74-0.76 from epoch 8);
    5 epochs at 1e-2 stay at chance (0.52). Epochs: N=50: 40, 100: 20, 200: 10, 400: 10, 800: 5, 1600: 3, 3200: 2."""
    bs = 16 if n <= 200 else 32
    # ceil, not round: round(120 / 50) = 2 epochs gave N=1600 only 100 steps, and that run ended with its *training*
    # loss still at chance (0.723 > ln 2; every other N ended at 0.04-0.18): the first, `round` version of this rule is
    # kept in label_curve_results.json as method 'scratch_v1'. ceil changes N=1600 only (2 -> 3 epochs, 150 steps).
    epochs = max(2, math.ceil(120 / (n // bs)))
    return dict(pretrained=False, drop_mult=0.5, bs=bs, head='default',
                stages=[dict(freeze_to=0, epochs=epochs, lr=SCRATCH_LR, disc=1)])
