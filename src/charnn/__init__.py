"""charnn: character-level recurrent language models from scratch in NumPy.

Every gradient is derived by hand (see docs/derivation.md) and checked against finite
differences and PyTorch autograd in the test suite.
"""
__version__ = "0.1.0"
