"""Pick OpenBLAS's AVX-512 kernels on AMD CPUs that have AVX-512, before NumPy loads OpenBLAS.

OpenBLAS (as bundled with NumPy's wheels) chooses its kernels by CPU model. On AMD Zen 4 and later
it picks the Haswell (AVX2) kernels although the CPU runs AVX-512: measured on the project's
2-core AMD EPYC machine, one core's float32 GEMM of (6400×512)·(512×2048) ran at 119 GFLOP/s
with the Haswell kernel and 231 GFLOP/s with OPENBLAS_CORETYPE=SkylakeX (results equal up to
float rounding). Training is GEMM-bound, so charnn asks for the SkylakeX kernels when all the
AVX-512 subsets they use are present.

The variable only works if it is set before OpenBLAS is loaded, i.e. before the first
``import numpy`` of the process; `charnn` (the command) imports this package first, so it always
applies there. Nothing is changed when the user has set OPENBLAS_CORETYPE, when NumPy is already
imported, when CHARNN_KEEP_BLAS is set, or on CPUs other than AMD ones with AVX-512 (Intel
AVX-512 CPUs get these kernels by default).
"""
from __future__ import annotations

import os
import sys

_NEEDED = {"avx512f", "avx512bw", "avx512dq", "avx512vl", "avx512cd"}


def cpu_wants_skylakex(cpuinfo: str) -> bool:
    """True for an AMD CPU whose /proc/cpuinfo flags include every AVX-512 subset the kernels use."""
    vendor = next((ln.split(":", 1)[1].strip() for ln in cpuinfo.splitlines() if ln.startswith("vendor_id")), "")
    flags = next((set(ln.split(":", 1)[1].split()) for ln in cpuinfo.splitlines() if ln.startswith("flags")), set())
    return vendor == "AuthenticAMD" and _NEEDED <= flags


def prefer_avx512_openblas() -> bool:
    """Set OPENBLAS_CORETYPE=SkylakeX when it helps and is still possible; returns whether it did."""
    if "numpy" in sys.modules or os.environ.get("OPENBLAS_CORETYPE") or os.environ.get("CHARNN_KEEP_BLAS"):
        return False
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            info = f.read(200_000)
    except OSError:
        return False
    if not cpu_wants_skylakex(info):
        return False
    os.environ["OPENBLAS_CORETYPE"] = "SkylakeX"
    return True
