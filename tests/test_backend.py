"""The array backend on a machine without a GPU (CI): NumPy behaviour, clean `cuda` refusals, and the
pure parts of the fused CUDA path (kernel source, launch geometry, its work split)."""
from __future__ import annotations

import ast
import shutil
import subprocess
import sys
import types
from pathlib import Path

import numpy as np
import pytest

import charnn
from charnn.nn import parallel
from charnn import backend, model
from charnn.backend import cuda_src
from charnn.backend.cuda_src import SPLITS, Layout, pick_layout, source, split_ok

from clihelp import SMALL, assert_user_error, charnn as run_charnn, write_corpus

PKG = Path(charnn.__file__).parent


@pytest.fixture
def no_cupy(monkeypatch):
    """Make `import cupy` fail, as on a machine without CuPy, whatever this one has installed."""
    monkeypatch.setattr(backend, "_cupy", None)
    monkeypatch.setitem(sys.modules, "cupy", None)


def fake_cupy(count=0, error=None):
    def get_device_count():
        if error is not None:
            raise error
        return count
    return types.SimpleNamespace(cuda=types.SimpleNamespace(runtime=types.SimpleNamespace(getDeviceCount=get_device_count)))


# ----- get_xp and friends with NumPy ---------------------------------------------------------------
def test_cpu_is_numpy():
    assert backend.get_xp("cpu") is np
    assert backend.get_xp() is np
    a = np.arange(6.0).reshape(2, 3)
    assert backend.xp_of(a) is np and backend.xp_of(a, a.T) is np
    assert backend.to_numpy(a) is a or np.shares_memory(backend.to_numpy(a), a)
    assert isinstance(backend.to_numpy([1, 2]), np.ndarray)


def test_unknown_device_is_a_backend_error():
    with pytest.raises(backend.BackendError, match="unknown device 'tpu'"):
        backend.get_xp("tpu")


def test_cuda_without_cupy_is_one_clear_line(no_cupy):
    with pytest.raises(backend.BackendError) as err:
        backend.get_xp("cuda")
    msg = str(err.value)
    assert "--device cuda" in msg and "CuPy" in msg and "\n" not in msg
    assert backend._cupy is None                         # nothing half-initialised is kept


@pytest.mark.parametrize("count, error, needle", [(0, None, "no CUDA GPU is visible"),
                                                  (None, RuntimeError("driver too old"), "driver too old")])
def test_cuda_without_a_gpu_is_one_clear_line(monkeypatch, count, error, needle):
    monkeypatch.setattr(backend, "_cupy", None)
    monkeypatch.setitem(sys.modules, "cupy", fake_cupy(count, error))
    with pytest.raises(backend.BackendError) as err:
        backend.get_xp("cuda")
    assert needle in str(err.value) and "\n" not in str(err.value)
    assert backend._cupy is None


def test_arrays_of_an_imported_array_module_are_recognised(monkeypatch):
    """A module that CuPy-like code imported itself (get_xp never called) still owns its arrays."""
    class FakeArray:
        pass
    fake = types.SimpleNamespace(ndarray=FakeArray, asnumpy=lambda a: np.array([7.0]))
    monkeypatch.setattr(backend, "_cupy", None)
    monkeypatch.setitem(sys.modules, "cupy", fake)
    assert backend.xp_of(np.ones(2), FakeArray()) is fake
    assert backend.is_cupy(FakeArray()) and not backend.is_cupy(np.ones(2))
    np.testing.assert_array_equal(backend.to_numpy(FakeArray()), [7.0])


def test_host_copy_and_to_device_with_numpy():
    d = {"W": np.ones((2, 2), np.float32), "b": np.zeros(2)}
    h = backend.host_copy(d)
    assert set(h) == {"W", "b"} and h["W"].dtype == np.float32 and h["b"].dtype == np.float64
    moved = backend.to_device(d, np)
    assert all(isinstance(v, np.ndarray) for v in moved.values())
    np.testing.assert_array_equal(moved["W"], d["W"])


def test_numpy_params_never_take_the_fused_path():
    p = model.init_params(5, 8, seed=0)
    x = np.zeros((2, 3), dtype=np.int64)
    assert backend.fused_loss_and_grads(p, x, x) is None
    loss, grads, h = model.loss_and_grads(p, x, x)      # the portable engine, unchanged
    assert np.isfinite(loss) and set(grads) == set(p) and h.shape == (2, 8)


def test_train_device_cuda_refuses_in_one_line_and_makes_no_run(tmp_path, no_cupy):
    corpus = write_corpus(tmp_path, 3000)
    out = tmp_path / "run"
    res = run_charnn("train", "--data", corpus, "--out", out, "--device", "cuda", "--max-steps", "2", *SMALL)
    assert_user_error(res, "--device cuda", "CuPy")
    assert not out.exists()


# ----- only the backend package imports CuPy ------------------------------------------------------
def imported_top_names(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def test_only_the_backend_package_imports_cupy():
    files = sorted(PKG.rglob("*.py"))
    users = {f.relative_to(PKG).as_posix() for f in files if imported_top_names(f) & {"cupy", "cupyx"}}
    assert users, "the backend should import CuPy somewhere"
    assert all(u.startswith("backend/") for u in users), users
    # and nothing imports the CuPy-importing module at load time: `import charnn.<x>` stays GPU-free
    code = ("import sys, charnn, charnn.cli, charnn.train, charnn.model, charnn.backend; "
            "print('cupy' in sys.modules, 'charnn.backend.cuda' in sys.modules)")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert res.stdout.split() == ["False", "False"]


# ----- launch geometry and work split of the fused kernels (pure arithmetic) ----------------------
SHAPES = [(H, B) for H in (16, 32, 64, 128, 256, 512) for B in (1, 3, 32, 37, 128, 1024, 5000)]


@pytest.mark.parametrize("H, B", SHAPES)
def test_layout_is_consistent(H, B):
    lay = pick_layout(H, 65, B, sms=132)
    assert lay is not None
    assert lay.hr * lay.cs == H and lay.rg * lay.ri == lay.hr and lay.ks * lay.rg == lay.nt
    assert lay.kl * lay.ks == H and lay.kl % 4 == 0 and lay.bg % lay.bc == 0 and lay.bc * lay.ri <= 16
    assert lay.smem_bytes() <= cuda_src.SMEM_OPTIN and lay.cs <= 8
    assert H % lay.cw == 0 and 65 * lay.cw * 4 <= cuda_src.SMEM_STATIC
    assert split_ok(H, lay.cs, lay.nt, lay.ri)


def test_layout_refuses_what_the_kernels_cannot_do():
    assert pick_layout(256, 20000, 8, sms=132) is None       # vocabulary too large for the dU table
    assert pick_layout(6, 10, 8, sms=132) is None            # H not a multiple of 4
    assert pick_layout(256, 65, 8, sms=132, split=(1, 256)) is None   # M would not fit in registers
    assert pick_layout(256, 65, 8, sms=132, split=(2, 512), ri=3) is None
    assert all(cs <= 8 for cs, _ in SPLITS)                   # portable cluster sizes only


def emulate_recurrence_step(lay: Layout, M: np.ndarray, v: np.ndarray, B: int) -> np.ndarray:
    """M v for every batch row, computed with the kernel's own index arithmetic (matvec + finalize).

    Mirrors cuda_src.recurrence: cluster c owns rows c·BG…, rank r owns outputs r·HR…, thread tid is
    (rg = tid % RG, ks = tid / RG) holding M[r·HR + rg + q·RG, ks·KL : ks·KL + KL] for q < RI;
    outputs o = tid + n·NT.
    """
    H, out, written = lay.H, np.full((B, lay.H), np.nan), np.zeros((B, lay.H), int)
    no = -(-lay.bg * lay.hr // lay.nt)
    for cl in range(-(-B // lay.bg)):
        vb = np.zeros((lay.bg, H))
        rows = min(B, (cl + 1) * lay.bg) - cl * lay.bg
        vb[:rows] = v[cl * lay.bg: cl * lay.bg + rows]
        for rank in range(lay.cs):
            part = np.full(lay.ks * lay.bg * lay.hr, np.nan)
            for tid in range(lay.nt):
                rg, ks = tid % lay.rg, tid // lay.rg
                cols = slice(ks * lay.kl, (ks + 1) * lay.kl)
                for q in range(lay.ri):
                    mrow = M[rank * lay.hr + rg + q * lay.rg, cols]
                    for b in range(lay.bg):
                        part[(ks * lay.bg + b) * lay.hr + rg + q * lay.rg] = mrow @ vb[b, cols]
            for tid in range(lay.nt):
                for n in range(no):
                    o = tid + n * lay.nt
                    if o < lay.bg * lay.hr:
                        b, ii = o // lay.hr, o % lay.hr
                        j, gb = rank * lay.hr + ii, cl * lay.bg + b
                        s = sum(part[(q * lay.bg + b) * lay.hr + ii] for q in range(lay.ks))
                        if gb < B:
                            out[gb, j] = s
                            written[gb, j] += 1
    assert (written == 1).all(), "every output is written exactly once"
    return out


@pytest.mark.parametrize("H, B, split, ri", [(32, 5, None, None), (64, 7, (1, 64), 4), (64, 3, (2, 128), 2),
                                             (128, 9, (2, 512), 4), (128, 5, (4, 256), 4), (128, 4, None, 1)])
def test_work_split_computes_the_matrix_vector_product(H, B, split, ri):
    rng = np.random.default_rng(H + B)
    lay = pick_layout(H, 11, B, sms=6, split=split, ri=ri)
    assert lay is not None and (ri is None or lay.ri == ri)
    M, v = rng.normal(size=(H, H)), rng.normal(size=(B, H))
    np.testing.assert_allclose(emulate_recurrence_step(lay, M, v, B), v @ M.T, rtol=1e-12, atol=1e-12)


# ----- the kernel source -----------------------------------------------------------------------------
KERNEL_NAMES = ["rnn_fwd", "rnn_bwd", "rnn_fwd_step", "rnn_bwd_step", "xent", "xent_finish", "scatter_rows",
                "reduce_rows", "finish_dU", "adam", "bump"]


def test_source_defines_every_kernel_the_driver_launches():
    src = source(**pick_layout(256, 65, 128, sms=132).defines())
    for name in KERNEL_NAMES:
        assert f"{name}(" in src, name
    assert src.count("{") == src.count("}")
    assert src.startswith("#define BC ")
    driver = (PKG / "backend" / "cuda.py").read_text(encoding="utf-8")
    for name in KERNEL_NAMES:
        assert f'"{name}"' in driver, name


def test_source_compiles_for_hopper_when_nvcc_is_installed(tmp_path):
    """Where the CUDA toolkit is installed (not in CI), compile every kernel for sm_90 and sm_80."""
    nvcc = shutil.which("nvcc")
    if nvcc is None:
        return                                     # CI: no toolkit; the GPU check compiles with NVRTC
    for n, (lay, arch) in enumerate([(pick_layout(256, 65, 1024, sms=132), "sm_90"),
                                     (pick_layout(32, 10, 3, sms=132, persistent=False), "sm_80")]):
        cu = tmp_path / f"k{n}.cu"
        cu.write_text(source(**lay.defines()), encoding="utf-8")
        res = subprocess.run([nvcc, f"-arch={arch}", "-std=c++17", "-cubin", "-Xptxas", "-v",
                              "-o", str(tmp_path / f"k{n}.cubin"), str(cu)], capture_output=True, text=True)
        assert res.returncode == 0, res.stderr[-3000:]
        assert "spill stores" in res.stderr and " 0 bytes spill stores" in res.stderr


def test_sharded_reference_when_one_pool_thread_runs_several_shards(monkeypatch):
    """The NumPy engine (gpu_check's float64 reference) sharded over threads: a pool thread that runs
    two equal-shaped shards of one call must not hand both the same workspace. That shared
    workspace made gpu_check's B=37 H=128 parity fail intermittently on the 16-core device host
    (4 shards of 9, 9, 9, 10 rows: loss right, every gradient and h_T off by ~0.5), which looked
    like a race in the CUDA kernels. One worker thread makes the collision deterministic."""
    from concurrent.futures import ThreadPoolExecutor

    B, T, Hs, Vs = 12, 5, 16, 9
    rng = np.random.default_rng(7)
    p = model.init_params(Vs, Hs, seed=7, dtype=np.float64)
    x, y = rng.integers(0, Vs, (B, T)), rng.integers(0, Vs, (B, T))
    h0 = rng.uniform(-0.5, 0.5, (B, Hs))
    monkeypatch.setattr(parallel, "num_shards", lambda xp, B: 1)
    loss1, g1, h1 = model.loss_and_grads(p, x, y, h0)
    pool = ThreadPoolExecutor(max_workers=1)              # shards 1, 2, 3 all run in this one thread
    monkeypatch.setattr(parallel, "num_shards", lambda xp, B: 4)
    monkeypatch.setattr(parallel, "executor", lambda workers: pool)
    try:
        loss4, g4, h4 = model.loss_and_grads(p, x, y, h0)
    finally:
        pool.shutdown()
    assert loss4 == pytest.approx(loss1, rel=1e-12)
    np.testing.assert_allclose(h4, h1, rtol=1e-12, atol=1e-14)
    for k in g1:
        np.testing.assert_allclose(g4[k], g1[k], rtol=1e-10, atol=1e-14, err_msg=k)
