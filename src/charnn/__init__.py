"""charnn: character-level recurrent language models from scratch in NumPy.

Every gradient is derived by hand (see docs/derivation.md) and checked against finite
differences and PyTorch autograd in the test suite.
"""
__version__ = "0.1.0"

from ._blas import prefer_avx512_openblas as _prefer_avx512_openblas

_prefer_avx512_openblas()   # before anything imports NumPy: see charnn/_blas.py
