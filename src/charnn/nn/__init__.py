"""The network and its parts: parameters, cells, the layer stack, the fast seed-model path,
the text reader, the generation loop, regularisation masks, work buffers, threads and kernels.

The public face is `charnn.model`; these modules are what it is built from.
"""
