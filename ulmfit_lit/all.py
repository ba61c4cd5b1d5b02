"""Everything a notebook needs, so `from ulmfit_lit.all import *` serves fastai's text code as `from fastai.text.all import *` does.

Written by hand (not exported). First what fastai's star import puts in scope from the standard library, NumPy,
pandas, PyTorch and fastcore (fastai's own utility library, a dependency of this package), by name: not
`fastcore.all`, whose one-letter HTML builders (`A`, `B`, `P`...) would shadow a user's variables. Then every chapter's
and appendix's public names, through each module's `__all__`. `tests/test_fastai_compat.py` checks this namespace
against fastai 2.8.12's and names each group of fastai's names left out, with its reason.
"""
# the standard library, as fastai's star import gives it
import json, math, os, pickle, random, re, shutil, sys, tempfile, time, warnings
from collections import Counter, OrderedDict, defaultdict
from functools import partial, reduce
from operator import attrgetter, itemgetter
from typing import Any, Callable, Iterable, List, Optional, Tuple, Union
from warnings import warn

# NumPy, pandas, matplotlib and PyTorch under their usual short names
import numpy as np
import pandas as pd
import matplotlib.pyplot as plt
import torch
import torch.nn.functional as F
from torch import Tensor, nn

# fastcore's basics, which fastai's text code and its tests use (importing fastcore.xtras also gives Path its ls())
from fastcore.basics import (GetAttr, bind, chunked, compose, detuplify, first, ifnone, listify, maps, merge, partialler,
                             patch, range_of, setify, store_attr, tuplify)
from fastcore.foundation import L, coll_repr
from fastcore.imports import equals, is_coll, is_iter, noop, noops
from fastcore.meta import delegates
from fastcore.test import test_close, test_eq, test_eq_type, test_fail, test_is, test_ne, test_stdout
from fastcore.xtras import Path, ReindexCollection, is_listy, join_path_file, load_pickle, round_multiple, save_pickle

# the package: main chapters, then appendices
from .tokenize import *
from .data import *
from .awd_lstm import *
from .learner import *
from .language_model import *
from .classifier import *
from .baseline import *
from .recipe import *
from .corpus import *
from .files import *
from .download import *
from .checkpoint import *
from .distributed import *
from .pretrain import *
from .measure import *
from .fastai_compat import *
