"""Everything a notebook needs, so `from ulmfit_lit.all import *` serves fastai's text tutorial code.

Written by hand (not exported): each chapter's module adds its public names through its own `__all__`.
"""
from functools import partial   # the tutorial's DataBlock code uses `partial(get_text_files, folders=...)`
from .download import *
from .tokenize import *
from .data import *
from .awd_lstm import *
from .learner import *
from .language_model import *
from .classifier import *
from .cli import *
# fastai's `load_learner` gives back the learner it exported; for text that is `load_text_learner`'s job
from .classifier import load_text_learner as load_learner
