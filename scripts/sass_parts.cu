// Micro kernels for scripts/sass_count.py: one part of the tile kernel's voxel-step each, nothing
// else, so their SASS shows what that part costs a thread (= a voxel: the tile kernel steps one voxel
// per thread). Each reads its inputs from `in` so that nothing folds away.
//   counters_seven_shfl  the counter reduction of before issue 15's step 2: seven accumulators set
//                        from the event bits, five shuffles per counter and warp, shared atomics
//   counters_packed      the current one (remodel.cu bs_flush_counters, BsThread): two packed
//                        accumulators, a warp vote, REDUX sums
//   skip_uniform         a voxel of a skipped uniform tile: staging with the vote, the voting
//                        barrier, the copy (remodel_block.cuh bs_tile_block on the interior path)
#include "remodel.cu"

__device__ __forceinline__ bs_u32 shfl_sum(bs_u32 v) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_down_sync(0xFFFFFFFFu, v, o);
    return v;
}

// ob, nbn: the voxel's old and new bone; ev: its events (remodel_rules.cuh BS_EV_*).
extern "C" __global__ void __launch_bounds__(BS_NTHREADS, 2) counters_seven_shfl(const bs_u32* in, bs_u64* counters) {
    __shared__ bs_u32 bsum[BONESIM_NCOUNT];
    const int tid = (threadIdx.z * BONESIM_BY + threadIdx.y) * BONESIM_BX + threadIdx.x;
    if (tid < BONESIM_NCOUNT) bsum[tid] = 0u;
    __syncthreads();
    const bs_u32 x = in[blockIdx.x * BS_NTHREADS + tid];
    const bs_u32 ob = x & 0xFFu, nbn = (x >> 8) & 0xFFu, ev = in[tid + 7];
    bs_u32 c[BS_NACC];
#pragma unroll
    for (int i = 0; i < BS_NACC; ++i) c[i] = 0u;
    if (nbn < ob) c[0] = ob - nbn;
    else if (nbn > ob) c[1] = nbn - ob;
    c[2] = (ev & BS_EV_RECRUIT) ? 1u : 0u;
    c[3] = (ev & BS_EV_SEED) ? 1u : 0u;
    c[4] = (ev & BS_EV_SURFACE) ? 1u : 0u;
    c[5] = (ev & BS_EV_PERF) ? 1u : 0u;
    c[6] = (ev & BS_EV_MODEL) ? 1u : 0u;
    const int lane = tid & 31;
#pragma unroll
    for (int k = 0; k < BS_NACC; ++k) {
        const bs_u32 v = shfl_sum(c[k]);
        if (lane == 0 && v) atomicAdd(&bsum[k], v);
    }
    __syncthreads();
    if (tid < BS_NACC && bsum[tid]) {
        const int blin = (blockIdx.z * gridDim.y + blockIdx.y) * gridDim.x + blockIdx.x;
        atomicAdd(counters + (blin % BONESIM_NSLOT) * BONESIM_NCOUNT + tid, (bs_u64)bsum[tid]);
    }
}

extern "C" __global__ void __launch_bounds__(BS_NTHREADS, 2) counters_packed(const bs_u32* in, bs_u64* counters) {
    __shared__ bs_u32 bsum[BONESIM_NCOUNT];
    BsDeviceExec ex;
    bs_exec_init(ex, (threadIdx.z * BONESIM_BY + threadIdx.y) * BONESIM_BX + threadIdx.x, bsum);
    __syncthreads();
    const bs_u32 x = in[blockIdx.x * BS_NTHREADS + ex.tid];
    const bs_u32 ob = x & 0xFFu, nbn = (x >> 8) & 0xFFu, ev = in[ex.tid + 7];
    if (nbn < ob) ex.r.bone += ob - nbn;
    else if (nbn > ob) ex.r.bone += (nbn - ob) << 16;
    ex.r.ev += ev;
    bs_flush_counters(ex, bsum, counters);
}

extern "C" __global__ void __launch_bounds__(BS_NTHREADS, 2) skip_uniform(const bs_u32* src, bs_u32* dst, const BsGeom g) {
    __shared__ bs_u32 tile[BS_TILE];
    const int tid = (threadIdx.z * BONESIM_BY + threadIdx.y) * BONESIM_BX + threadIdx.x;
    const int z0 = blockIdx.z * BONESIM_BZ, y0 = blockIdx.y * BONESIM_BY, x0 = blockIdx.x * BONESIM_BX;
    const int lz0 = z0 - 1 + g.halo, ly0 = y0 - 1 + g.halo, lx0 = x0 - 1 + g.halo;
    const bs_u32* base = src + ((bs_i64)lz0 * g.ny + ly0) * g.nx + lx0;
    const int plane = g.ny * g.nx, row = g.nx;
    const bs_u32 ref = bs_ldg(base);
    bs_u32 diff = 0u;
    for (int i = tid; i < BS_TILE; i += BS_NTHREADS) {
        const int tx = i % BS_TX, ty = (i / BS_TX) % BS_TY, tz = i / (BS_TX * BS_TY);
        const bs_u32 v = bs_ldg(base + (tz * plane + ty * row + tx));
        tile[i] = v;
        diff |= v ^ ref;
    }
    if (__syncthreads_or(diff != 0u)) return;
    const bs_u32 w = tile[0];
    if (bs_uniform_unchanged(w, BsStep())) {
        BsIO io = {src, dst, 0, 0, 0, 0, -1, 0, -1};
        bs_keep_voxel(g, z0 + threadIdx.z, y0 + threadIdx.y, x0 + threadIdx.x, io, w);
    }
}
