"""charnn._blas: the OpenBLAS kernel choice on AMD CPUs with AVX-512 (set only when it is safe to)."""
from charnn import _blas

AMD_512 = "vendor_id\t: AuthenticAMD\nflags\t\t: fpu sse avx2 avx512f avx512bw avx512dq avx512vl avx512cd\n"
AMD_AVX2 = "vendor_id\t: AuthenticAMD\nflags\t\t: fpu sse avx2 fma\n"
INTEL_512 = "vendor_id\t: GenuineIntel\nflags\t\t: fpu avx2 avx512f avx512bw avx512dq avx512vl avx512cd\n"


def test_only_amd_with_avx512_asks_for_skylakex():
    assert _blas.cpu_wants_skylakex(AMD_512)
    assert not _blas.cpu_wants_skylakex(AMD_AVX2)
    assert not _blas.cpu_wants_skylakex(INTEL_512)      # OpenBLAS already picks AVX-512 kernels there
    assert not _blas.cpu_wants_skylakex("")


def test_never_overrides_a_choice_or_a_loaded_numpy(monkeypatch):
    monkeypatch.setenv("OPENBLAS_CORETYPE", "Haswell")
    assert not _blas.prefer_avx512_openblas()
    monkeypatch.delenv("OPENBLAS_CORETYPE")
    # NumPy is imported in the test process, so OpenBLAS is loaded already: nothing may change.
    assert not _blas.prefer_avx512_openblas()
    import os
    assert "OPENBLAS_CORETYPE" not in os.environ
