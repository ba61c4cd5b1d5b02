"Named settings for tuning runs (a dict, or a function of N giving one)."
L4 = 2.6 ** 4
def stages_default(lr=2e-2, final_epochs=1, e=1):
    "train_classifier's stages as the demo runs them (final_epochs=1); `e` epochs for each of the first three."
    return [dict(freeze_to=-1, epochs=e, lr=lr), dict(freeze_to=-2, epochs=e, lr=lr / 2, disc=L4),
            dict(freeze_to=-3, epochs=e, lr=lr / 4, disc=L4), dict(freeze_to=0, epochs=final_epochs, lr=lr / 20, disc=L4)]

CONFIGS = {
    'probe': dict(method='probe'),
    'bow': dict(method='bow'),
    # the current pipeline (train_classifier defaults as run_demo / ulmfit_pipeline use them)
    'default': dict(pretrained=True, drop_mult=0.5, bs=32, head='default', stages=stages_default()),
    'default_drop02': dict(pretrained=True, drop_mult=0.2, bs=32, head='default', stages=stages_default()),
    # linear probe as the head's start, then all layers fine-tuned (discriminative lrs) for 2 epochs
    'lpft_2ep': dict(pretrained=True, drop_mult=0.5, bs=32, head='probe',
                     stages=[dict(freeze_to=0, epochs=2, lr=1e-3, disc=L4)]),
}

def _gu(n, head, steps=15, bs=None, drop_mult=0.5, lr=2e-2, head_epochs=None, last_lr=None, final_steps=None):
    "Gradual unfreezing with the default lrs, each stage `steps` optimizer steps (epochs = ceil(steps / batches))."
    bs = bs or (16 if n <= 200 else 32)
    st = [dict(freeze_to=-2, steps=steps, lr=lr / 2, disc=L4), dict(freeze_to=-3, steps=steps, lr=lr / 4, disc=L4),
          dict(freeze_to=0, steps=final_steps or steps, lr=last_lr or lr / 20, disc=L4)]
    cfg = dict(pretrained=True, drop_mult=drop_mult, bs=bs, head=head, stages=st)
    if head == 'default': st.insert(0, dict(freeze_to=-1, steps=steps, lr=lr))
    else: cfg.update(head_epochs=head_epochs or max(10, -(-100 * bs // n)), head_lr=lr)   # >= ~100 head steps
    return cfg

CONFIGS.update({
    'gu_s15': lambda n: _gu(n, 'default', 15),
    'ch_gu_s15': lambda n: _gu(n, 'cached', 15),
})

CONFIGS.update({
    'ch_gu_s25': lambda n: _gu(n, 'cached', 25, bs=32),
    'default_bnrecal': dict(CONFIGS['default'], bn_recal_trace=True),
    'default_drop02_bnrecal': dict(CONFIGS['default_drop02'], bn_recal_trace=True),
})

CONFIGS.update({
    'gu_s25': lambda n: _gu(n, 'default', 25, bs=32),
    'gu_s25_d02': lambda n: _gu(n, 'default', 25, bs=32, drop_mult=0.2),
})
