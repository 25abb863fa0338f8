r"""CUDA C++ source of charnn's fused GPU kernels (compiled at run time by NVRTC through CuPy).

Pure Python (no CuPy), so it can be read and checked on a machine with no GPU: `source(**defines)`
prepends the compile-time shape constants, `pick_layout` chooses them; backend/cuda.py compiles one
module per layout.

Notation as in model.py, row form, time-major: x (T, B) ids, hs (T+1, B, H) with hs[0] = h0,
rows r = t·B + b of every (T·B, ·) matrix.

Kernels
  rnn_fwd / rnn_bwd          persistent: the whole recurrence in one launch (thread-block clusters)
  rnn_fwd_step / rnn_bwd_step  one time step per launch (the same maths, no clusters)
  xent                        ŷ = softmax(o + c), dL/do = (ŷ − 1[y]) / N, −log ŷ[y], column sums of dL/do
  xent_finish                 dc = Σ_blocks, L = Σ_blocks / N
  scatter_rows, reduce_rows, finish_dU   dUᵀ[v] = Σ_{r: x_r = v} dz_r, then db = Σ_v dUᵀ[v]
  adam                        clip ±clip, Adam with bias correction, over one flat buffer
  bump                        t += 1 (the step counter lives on the device so a graph can replay)

The recurrence kernels compute, for one state vector per batch row,
    forward   h_{t+1} = tanh(W h_t + U x_t + b)                      (M = W)
    backward  dz_t = (dh_out_t + Wᵀ dz_{t+1}) ⊙ (1 − h_{t+1}²)        (M = Wᵀ)
i.e. a = M v + (per-step input), then an element-wise map. The H×H matrix M is split by rows
over the CS blocks of a cluster (rank r owns rows r·HR … r·HR+HR−1) and each block's share is split
again over KS groups of threads along k, so every thread keeps its KL = H/KS values of M in
registers for the whole sequence: M is read from memory once per launch, not once per step.
The blocks of a cluster exchange the new state through distributed shared memory and meet at one
cluster barrier per step; clusters own disjoint batch rows and never wait for one another.
"""
from __future__ import annotations

from dataclasses import dataclass

KERNELS = r"""
// ----- compile-time shape (prepended by source()) ------------------------------------------
// H hidden size, VS vocabulary size, CS blocks per cluster, NT threads per block, RI rows of M
// per thread, BG batch rows per cluster, BC batch rows per register chunk, CW columns per scatter block.
#define HR (H / CS)              // rows of M owned by one block
#define RG (HR / RI)             // row groups of a block (a thread owns rows rg, rg+RG, ...)
#define KS (NT / RG)             // thread groups along k
#define KL (H / KS)              // columns of M per thread: it keeps RI·KL values in registers
#define NO ((BG * HR + NT - 1) / NT)  // outputs finalised by each thread per step
#define VPL ((VS + 31) / 32)     // vocabulary entries per lane in xent
#define VSP (VPL * 32)
#define NEG_INF __int_as_float(0xff800000)  // NVRTC has no math.h INFINITY

// Kernels are extern "C" (plain names for CuPy); device helpers may be templates.

// ----- Hopper thread-block-cluster primitives (PTX, sm_90) --------------------------------------
#if PERSIST
__device__ __forceinline__ unsigned cluster_rank() {
    unsigned r;
    asm volatile("mov.u32 %0, %%cluster_ctarank;" : "=r"(r));
    return r;
}
__device__ __forceinline__ void cluster_arrive() {
    // release: this thread's earlier stores (to peers' shared memory too) are visible after the wait
    asm volatile("barrier.cluster.arrive.release.aligned;" ::: "memory");
}
__device__ __forceinline__ void cluster_wait() {
    asm volatile("barrier.cluster.wait.acquire.aligned;" ::: "memory");
}
__device__ __forceinline__ void cluster_sync() {
    cluster_arrive();
    cluster_wait();
}
__device__ __forceinline__ unsigned smem_addr(const void* p) {
    unsigned r;
    asm volatile("{ .reg .u64 a; cvta.to.shared.u64 a, %1; cvt.u32.u64 %0, a; }" : "=r"(r) : "l"(p));
    return r;
}
__device__ __forceinline__ unsigned peer_addr(unsigned local, unsigned rank) {
    unsigned r;
    asm volatile("mapa.shared::cluster.u32 %0, %1, %2;" : "=r"(r) : "r"(local), "r"(rank));
    return r;
}
__device__ __forceinline__ void st_cluster(unsigned addr, float v) {
    asm volatile("st.shared::cluster.f32 [%0], %1;" :: "r"(addr), "f"(v) : "memory");
}

#endif  // PERSIST

// ----- the recurrence -------------------------------------------------------------------------
// Load this thread's RI·KL values of M: rows base + rg + q·RG (q < RI), columns ks·KL … ks·KL + KL − 1.
// M = W (forward) or Wᵀ (backward).
__device__ __forceinline__ void load_m(float* Mreg, const float* __restrict__ W, int base, int rg, int ks,
                                       bool transpose) {
#pragma unroll
    for (int q = 0; q < RI; ++q) {
        const int row = base + rg + q * RG;
#pragma unroll
        for (int kk = 0; kk < KL; ++kk) {
            const int k = ks * KL + kk;
            Mreg[q * KL + kk] = transpose ? W[k * H + row] : W[row * H + k];
        }
    }
}

// part[ks][b][rg + q·RG] = Σ_kk M[rg + q·RG][ks·KL + kk] · v[b][ks·KL + kk] for the BG rows b.
// Each 16-byte load of v feeds 4·RI multiply-adds: shared memory delivers 128 bytes a clock, so
// with RI = 1 it, not the FMA units, would bound the step.
__device__ __forceinline__ void matvec(const float* Mreg, const float* vcur, float* part, int rg, int ks) {
#pragma unroll 1
    for (int b0 = 0; b0 < BG; b0 += BC) {
        float acc[BC * RI];
#pragma unroll
        for (int a = 0; a < BC * RI; ++a) acc[a] = 0.f;
        const float* vb = vcur + b0 * H + ks * KL;
#pragma unroll
        for (int kk = 0; kk < KL; kk += 4) {
#pragma unroll
            for (int bb = 0; bb < BC; ++bb) {
                // the threads of a warp share ks (or two values of it): broadcast loads
                const float4 v4 = *reinterpret_cast<const float4*>(vb + bb * H + kk);
#pragma unroll
                for (int q = 0; q < RI; ++q) {
                    float a = acc[bb * RI + q];
                    a = fmaf(Mreg[q * KL + kk], v4.x, a);
                    a = fmaf(Mreg[q * KL + kk + 1], v4.y, a);
                    a = fmaf(Mreg[q * KL + kk + 2], v4.z, a);
                    a = fmaf(Mreg[q * KL + kk + 3], v4.w, a);
                    acc[bb * RI + q] = a;
                }
            }
        }
#pragma unroll
        for (int bb = 0; bb < BC; ++bb) {
#pragma unroll
            for (int q = 0; q < RI; ++q) part[(ks * BG + b0 + bb) * HR + rg + q * RG] = acc[bb * RI + q];
        }
    }
}

// Per-step inputs of the element-wise map, fetched before the mat-vec so their latency hides.
//   forward:  pa = U[j, x_t] + b[j]                       (pb unused)
//   backward: pa = dh_out_t[j] (= Vᵀ dL/do_t),  pb = 1 − h_{t+1}[j]²
template <bool FWD>
__device__ __forceinline__ void prefetch(float* pa, float* pb, int t, int rank, int b_base, int B,
                                         const float* __restrict__ U, const float* __restrict__ bias,
                                         const int* __restrict__ x, const float* __restrict__ hs,
                                         const float* dz) {
#pragma unroll
    for (int n = 0; n < NO; ++n) {
        const int o = threadIdx.x + n * NT;
        const int b = o / HR, j = rank * HR + o % HR, gb = b_base + b;
        pa[n] = 0.f;
        pb[n] = 0.f;
        if (o < BG * HR && gb < B) {
            if (FWD) {
                pa[n] = U[j * VS + x[t * B + gb]] + bias[j];
            } else {
                pa[n] = dz[((long long)t * B + gb) * H + j];
                const float h = hs[((long long)(t + 1) * B + gb) * H + j];
                pb[n] = 1.f - h * h;
            }
        }
    }
}

// Sum the KS partial dot products and apply the element-wise map; returns the new state value.
template <bool FWD>
__device__ __forceinline__ float finalize_one(const float* part, int b, int ii, float pa, float pb) {
    float s = 0.f;
#pragma unroll
    for (int q = 0; q < KS; ++q) s += part[(q * BG + b) * HR + ii];
    return FWD ? tanhf(s + pa) : (s + pa) * pb;
}

#if PERSIST
// Shared memory: vbuf[2][BG][H] (state, double-buffered), part[KS][BG][HR].
template <bool FWD>
__device__ __forceinline__ void recurrence(const float* __restrict__ W, const float* __restrict__ U,
                                           const float* __restrict__ bias, const int* __restrict__ x,
                                           float* hs, float* dz, int B, int T) {
    extern __shared__ float4 smem4[];
    float* smem = reinterpret_cast<float*>(smem4);
    float* part = smem + 2 * BG * H;
    const int tid = threadIdx.x, rg = tid % RG, ks = tid / RG;
    const unsigned rank = cluster_rank();
    const int b_base = (blockIdx.x / CS) * BG;

    float Mreg[RI * KL];
    load_m(Mreg, W, rank * HR, rg, ks, !FWD);
    for (int idx = tid; idx < BG * H; idx += NT) {       // v_0 = h0 (forward) or 0 (dh_next at T)
        const int gb = b_base + idx / H;
        smem[idx] = (FWD && gb < B) ? hs[(long long)gb * H + idx % H] : 0.f;
    }
    unsigned peer[CS];
    const unsigned base = smem_addr(smem);
#pragma unroll
    for (int r = 0; r < CS; ++r) peer[r] = peer_addr(base, r);
    float pa[NO], pb[NO];
    prefetch<FWD>(pa, pb, FWD ? 0 : T - 1, rank, b_base, B, U, bias, x, hs, dz);
    cluster_sync();                                     // every block has started and set v_0

    int cur = 0;
    for (int s = 0; s < T; ++s) {
        const int t = FWD ? s : T - 1 - s;
        matvec(Mreg, smem + cur * BG * H, part, rg, ks);
        __syncthreads();
        const unsigned nxt = (unsigned)((cur ^ 1) * BG * H) * 4u;
        float val[NO];
#pragma unroll
        for (int n = 0; n < NO; ++n) {
            const int o = tid + n * NT;
            val[n] = 0.f;
            if (o < BG * HR) {
                const int b = o / HR, ii = o % HR, j = rank * HR + ii;
                val[n] = finalize_one<FWD>(part, b, ii, pa[n], pb[n]);
                const unsigned off = nxt + (unsigned)(b * H + j) * 4u;
#pragma unroll
                for (int r = 0; r < CS; ++r) st_cluster(peer[r] + off, val[n]);
            }
        }
        // Split barrier: arrive as soon as the new state is sent, then do the work that nobody
        // waits for (the global store of this step, the loads of the next one) before waiting.
        cluster_arrive();
#pragma unroll
        for (int n = 0; n < NO; ++n) {
            const int o = tid + n * NT;
            const int b = o / HR, j = rank * HR + o % HR, gb = b_base + b;
            if (o < BG * HR && gb < B) {
                if (FWD) hs[((long long)(t + 1) * B + gb) * H + j] = val[n];
                else dz[((long long)t * B + gb) * H + j] = val[n];
            }
        }
        if (s + 1 < T) prefetch<FWD>(pa, pb, FWD ? t + 1 : t - 1, rank, b_base, B, U, bias, x, hs, dz);
        cluster_wait();                                  // the new state is everywhere; part is free
        cur ^= 1;
    }
}

extern "C" __global__ void __cluster_dims__(CS, 1, 1) __launch_bounds__(NT, 1)
rnn_fwd(const float* __restrict__ W, const float* __restrict__ U, const float* __restrict__ bias,
        const int* __restrict__ x, float* hs, int B, int T) {
    recurrence<true>(W, U, bias, x, hs, nullptr, B, T);
}

extern "C" __global__ void __cluster_dims__(CS, 1, 1) __launch_bounds__(NT, 1)
rnn_bwd(const float* __restrict__ W, const float* __restrict__ hs, float* dz, int B, int T) {
    recurrence<false>(W, nullptr, nullptr, nullptr, const_cast<float*>(hs), dz, B, T);
}

#endif  // PERSIST

// One time step per launch: the same split of M over (virtual) ranks, the state through global
// memory. Used where clusters are unavailable; CUDA-graph replay keeps the launches cheap.
template <bool FWD>
__device__ __forceinline__ void one_step(const float* __restrict__ W, const float* __restrict__ U,
                                         const float* __restrict__ bias, const int* __restrict__ x,
                                         float* hs, float* dz, int B, int T, int t) {
    extern __shared__ float4 smem4[];
    float* smem = reinterpret_cast<float*>(smem4);
    float* part = smem + 2 * BG * H;
    const int tid = threadIdx.x, rg = tid % RG, ks = tid / RG;
    const int rank = blockIdx.x % CS;
    const int b_base = (blockIdx.x / CS) * BG;
    float Mreg[RI * KL];
    load_m(Mreg, W, rank * HR, rg, ks, !FWD);
    for (int idx = tid; idx < BG * H; idx += NT) {
        const int gb = b_base + idx / H;
        float v = 0.f;
        if (gb < B) {
            if (FWD) v = hs[((long long)t * B + gb) * H + idx % H];
            else if (t + 1 < T) v = dz[((long long)(t + 1) * B + gb) * H + idx % H];
        }
        smem[idx] = v;
    }
    float pa[NO], pb[NO];
    prefetch<FWD>(pa, pb, t, rank, b_base, B, U, bias, x, hs, dz);
    __syncthreads();
    matvec(Mreg, smem, part, rg, ks);
    __syncthreads();
#pragma unroll
    for (int n = 0; n < NO; ++n) {
        const int o = tid + n * NT;
        if (o < BG * HR) {
            const int b = o / HR, ii = o % HR, j = rank * HR + ii, gb = b_base + b;
            const float val = finalize_one<FWD>(part, b, ii, pa[n], pb[n]);
            if (gb < B) {
                if (FWD) hs[((long long)(t + 1) * B + gb) * H + j] = val;
                else dz[((long long)t * B + gb) * H + j] = val;
            }
        }
    }
}

extern "C" __global__ void __launch_bounds__(NT, 1)
rnn_fwd_step(const float* __restrict__ W, const float* __restrict__ U, const float* __restrict__ bias,
             const int* __restrict__ x, float* hs, int B, int T, int t) {
    one_step<true>(W, U, bias, x, hs, nullptr, B, T, t);
}

extern "C" __global__ void __launch_bounds__(NT, 1)
rnn_bwd_step(const float* __restrict__ W, const float* __restrict__ hs, float* dz, int B, int T, int t) {
    one_step<false>(W, nullptr, nullptr, nullptr, const_cast<float*>(hs), dz, B, T, t);
}

// ----- softmax + cross-entropy + its gradient, one warp per row ------------------------------
// d holds the logits o − c on entry (from the GEMM) and dL/do on exit. Per block: the column sums
// of dL/do (for dc) in part_c[block][VSP] and the summed −log ŷ[y] in part_loss[block].
extern "C" __global__ void __launch_bounds__(256)
xent(float* d, const float* __restrict__ c, const int* __restrict__ y, int N, float invN,
     float* __restrict__ part_c, float* __restrict__ part_loss) {
    __shared__ float red[8][VSP];
    __shared__ float redl[8];
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    float csum[VPL];
#pragma unroll
    for (int q = 0; q < VPL; ++q) csum[q] = 0.f;
    float lsum = 0.f;
    for (int row = blockIdx.x * 8 + warp; row < N; row += gridDim.x * 8) {
        float o[VPL];
        float m = NEG_INF;
#pragma unroll
        for (int q = 0; q < VPL; ++q) {
            const int v = lane + 32 * q;
            o[q] = v < VS ? d[(long long)row * VS + v] + c[v] : NEG_INF;
            m = fmaxf(m, o[q]);
        }
#pragma unroll
        for (int sh = 16; sh > 0; sh >>= 1) m = fmaxf(m, __shfl_xor_sync(0xffffffffu, m, sh));
        float e[VPL];
        float s = 0.f;
#pragma unroll
        for (int q = 0; q < VPL; ++q) {
            e[q] = (lane + 32 * q) < VS ? expf(o[q] - m) : 0.f;
            s += e[q];
        }
#pragma unroll
        for (int sh = 16; sh > 0; sh >>= 1) s += __shfl_xor_sync(0xffffffffu, s, sh);
        const int yy = y[row];
        const float inv = 1.f / s;
#pragma unroll
        for (int q = 0; q < VPL; ++q) {
            const int v = lane + 32 * q;
            if (v < VS) {
                const float g = (e[q] * inv - (v == yy ? 1.f : 0.f)) * invN;
                d[(long long)row * VS + v] = g;
                csum[q] += g;
                if (v == yy) lsum += logf(s) - (o[q] - m);   // −log ŷ[y], finite even if ŷ[y] underflows
            }
        }
    }
#pragma unroll
    for (int q = 0; q < VPL; ++q) red[warp][lane + 32 * q] = csum[q];
#pragma unroll
    for (int sh = 16; sh > 0; sh >>= 1) lsum += __shfl_xor_sync(0xffffffffu, lsum, sh);
    if (lane == 0) redl[warp] = lsum;
    __syncthreads();
    for (int v = threadIdx.x; v < VSP; v += blockDim.x) {
        float a = 0.f;
        for (int w = 0; w < 8; ++w) a += red[w][v];
        part_c[(long long)blockIdx.x * VSP + v] = a;
    }
    if (threadIdx.x == 0) {
        float a = 0.f;
        for (int w = 0; w < 8; ++w) a += redl[w];
        part_loss[blockIdx.x] = a;
    }
}

// dc[v] = Σ_g part_c[g][v];  loss[0] = Σ_g part_loss[g] / N   (one block; deterministic order)
extern "C" __global__ void xent_finish(const float* __restrict__ part_c, const float* __restrict__ part_loss, int G, int N,
                            float* __restrict__ dc, double* __restrict__ loss) {
    __shared__ double red[256];
    for (int v = threadIdx.x; v < VS; v += blockDim.x) {
        float a = 0.f;
        for (int g = 0; g < G; ++g) a += part_c[(long long)g * VSP + v];
        dc[v] = a;
    }
    double a = 0.0;
    for (int g = threadIdx.x; g < G; g += blockDim.x) a += (double)part_loss[g];
    red[threadIdx.x] = a;
    __syncthreads();
    for (int w = blockDim.x / 2; w > 0; w >>= 1) {
        if (threadIdx.x < w) red[threadIdx.x] += red[threadIdx.x + w];
        __syncthreads();
    }
    if (threadIdx.x == 0) loss[0] = red[0] / (double)N;
}

// ----- dUᵀ[v] = Σ_{r : x_r = v} dz_r ----------------------------------------------------------
// grid (G, H / CW), block CW: block g sums rows [g·R, (g+1)·R) of columns [y·CW, (y+1)·CW) into a
// shared (VS, CW) table; each thread owns one column, so no two threads ever add to one entry.
extern "C" __global__ void __launch_bounds__(CW)
scatter_rows(const float* __restrict__ dz, const int* __restrict__ x, int N, int R, float* __restrict__ part_u) {
    __shared__ float acc[VS * CW];
    const int tid = threadIdx.x, col = blockIdx.y * CW + tid;
    for (int v = 0; v < VS; ++v) acc[v * CW + tid] = 0.f;
    const int r0 = blockIdx.x * R;
    const int r1 = min(N, r0 + R);
    int r = r0;
    for (; r + 4 <= r1; r += 4) {                        // four independent loads in flight
        const float a0 = dz[(long long)r * H + col], a1 = dz[(long long)(r + 1) * H + col];
        const float a2 = dz[(long long)(r + 2) * H + col], a3 = dz[(long long)(r + 3) * H + col];
        const int x0 = x[r], x1 = x[r + 1], x2 = x[r + 2], x3 = x[r + 3];
        acc[x0 * CW + tid] += a0;
        acc[x1 * CW + tid] += a1;
        acc[x2 * CW + tid] += a2;
        acc[x3 * CW + tid] += a3;
    }
    for (; r < r1; ++r) acc[x[r] * CW + tid] += dz[(long long)r * H + col];
    for (int v = 0; v < VS; ++v) part_u[((long long)blockIdx.x * VS + v) * H + col] = acc[v * CW + tid];
}

// dUT[v][j] = Σ_g part_u[g][v][j]
extern "C" __global__ void reduce_rows(const float* __restrict__ part_u, int G, float* __restrict__ dUT) {
    const int idx = blockIdx.x * blockDim.x + threadIdx.x;
    if (idx >= VS * H) return;
    float a = 0.f;
    for (int g = 0; g < G; ++g) a += part_u[(long long)g * VS * H + idx];
    dUT[idx] = a;
}

// dU = dUTᵀ (H, VS) and db[j] = Σ_r dz_r[j] = Σ_v dUT[v][j]
extern "C" __global__ void finish_dU(const float* __restrict__ dUT, float* __restrict__ dU, float* __restrict__ db) {
    const int j = blockIdx.x * blockDim.x + threadIdx.x;
    if (j >= H) return;
    float s = 0.f;
    for (int v = 0; v < VS; ++v) {
        const float a = dUT[v * H + j];
        dU[j * VS + v] = a;
        s += a;
    }
    db[j] = s;
}

// ----- clip + Adam over every parameter at once ---------------------------------------------
//   g ← clip(g, −clip, clip);  m ← β1 m + (1−β1) g;  v ← β2 v + (1−β2) g²
//   p ← p − (lr / (1−β1^t)) · m / (√v / √(1−β2^t) + ε)      (optim.Adam, torch.optim.Adam)
extern "C" __global__ void adam(float* __restrict__ p, const float* __restrict__ g, float* __restrict__ m,
                     float* __restrict__ v, int n, double lr, double b1, double b2, double eps,
                     float clip, const int* __restrict__ tstep) {
    const int t = tstep[0] + 1;
    const float step_size = (float)(lr / (1.0 - pow(b1, (double)t)));
    const float sqrt_bc2 = (float)sqrt(1.0 - pow(b2, (double)t));
    const float fb1 = (float)b1, fb2 = (float)b2, fe = (float)eps;
    const float c1 = (float)(1.0 - b1), c2 = (float)(1.0 - b2);
    for (int k = blockIdx.x * blockDim.x + threadIdx.x; k < n; k += gridDim.x * blockDim.x) {
        float gi = g[k];
        if (clip > 0.f) gi = fminf(fmaxf(gi, -clip), clip);
        const float mi = fb1 * m[k] + c1 * gi;
        const float vi = fb2 * v[k] + c2 * (gi * gi);
        m[k] = mi;
        v[k] = vi;
        p[k] -= step_size * (mi / (sqrtf(vi) / sqrt_bc2 + fe));
    }
}

extern "C" __global__ void bump(int* tstep) { tstep[0] += 1; }

"""


def source(**defines: int) -> str:
    """The kernel source with `#define NAME value` lines for the shape constants prepended."""
    head = "".join(f"#define {k} {int(v)}\n" for k, v in sorted(defines.items()))
    return head + KERNELS


# ----- the launch geometry that goes with the source (pure arithmetic, testable without a GPU) ------
SMEM_OPTIN = 227 * 1024    # shared memory one block may opt in to on sm_90 (bytes)
SMEM_STATIC = 48 * 1024    # without opting in

# (blocks per cluster, threads per block), in order of preference (2×512 was fastest on an H100 at
# B = 128 and 1024, BENCHMARKS.md). 8 is the portable cluster limit.
SPLITS = ((2, 512), (4, 256), (8, 256), (1, 256), (1, 128), (2, 256), (8, 128), (1, 64))


@dataclass(frozen=True)
class Layout:
    """How the kernels are spread over the GPU for one (H, V, B).

    cs: blocks per cluster (the ranks that share M), nt: threads per block, ri: rows of M per
    thread, bg: batch rows per cluster, bc: batch rows per register chunk, cw: columns per block
    of the dU scatter, persistent: one launch for all T steps (clusters, sm_90+) or one per step.
    """

    H: int
    VS: int
    cs: int
    nt: int
    ri: int
    bg: int
    bc: int
    cw: int
    persistent: bool

    @property
    def hr(self) -> int:
        return self.H // self.cs

    @property
    def rg(self) -> int:
        return self.hr // self.ri

    @property
    def ks(self) -> int:
        return self.nt // self.rg

    @property
    def kl(self) -> int:
        return self.H // self.ks

    def smem_bytes(self) -> int:
        """Dynamic shared memory of a recurrence block: vbuf[2][BG][H] and part[KS][BG][HR]."""
        return 4 * (2 * self.bg * self.H + self.ks * self.bg * self.hr)

    def defines(self) -> dict[str, int]:
        return {"H": self.H, "VS": self.VS, "CS": self.cs, "NT": self.nt, "RI": self.ri, "BG": self.bg,
                "BC": self.bc, "CW": self.cw, "PERSIST": int(self.persistent)}


def split_ok(H: int, cs: int, nt: int, ri: int = 1) -> bool:
    """Whether H×H splits over cs blocks of nt threads, RI rows × KL columns (KL % 4 == 0) per thread."""
    if H % cs or (H // cs) % ri:
        return False
    rg = H // cs // ri
    if rg > nt or nt % rg:
        return False
    ks = nt // rg
    if H % ks:
        return False
    kl = H // ks
    # RI·KL values of M live in registers next to the accumulators and ~40 others; 64K registers
    # per SM, 255 per thread.
    return kl % 4 == 0 and ri * kl + 16 + 40 <= min(255, 65536 // nt)


def pick_layout(H: int, VS: int, B: int, *, sms: int, split: tuple[int, int] | None = None,
                persistent: bool = True, ri: int | None = None) -> Layout | None:
    """The layout for these shapes on a GPU with `sms` multiprocessors, or None if none fits.

    One cluster per group of bg batch rows, with about one block per multiprocessor: bg = ⌈B / (sms / cs)⌉,
    rounded up to a multiple of the register chunk bc; very large batches shrink bg until the shared
    memory fits (the extra clusters then run in further waves). RI is the largest of 4, 2, 1 that fits.
    """
    cw = next((w for w in (128, 64, 32, 16, 8, 4) if H % w == 0 and VS * w * 4 <= SMEM_STATIC), None)
    if cw is None or H % 4 or B < 1:
        return None
    for cs, nt in ([split] if split else SPLITS):
        r = next((r for r in ([ri] if ri else (4, 2, 1)) if split_ok(H, cs, nt, r)), None)
        if r is None:
            continue
        clusters = max(1, sms // cs)
        bg = -(-B // clusters)
        bc = min(bg, 8, 16 // r)
        bg = -(-bg // bc) * bc
        lay = Layout(H, VS, cs, nt, r, bg, bc, cw, persistent)
        while lay.smem_bytes() > SMEM_OPTIN and lay.bg > lay.bc:
            lay = Layout(H, VS, cs, nt, r, max(lay.bc, lay.bg // 2 // lay.bc * lay.bc), lay.bc, cw, persistent)
        if lay.smem_bytes() <= SMEM_OPTIN:
            return lay
    return None
