"""`python -m ulmfit_lit ...` runs the `ulmfit-lit` command (chapter 07)."""
from ulmfit_lit.cli import main

main()
