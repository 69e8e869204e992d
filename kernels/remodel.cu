// bonesim remodeling CA: one fused step over a block of the volume.
//
// Each thread block stages a (BZ+2, BY+2, BX+2) tile of packed 32-bit state
// words (bone | phase << 8 | timer << 16) in shared memory, once, with a
// one-voxel halo; neighbours outside the global volume read as the inert
// word. Each thread then applies bonesim_rule (remodel_rules.cuh) to its voxel
// and writes the new word to the other buffer (ping-pong, never copied).
// Marrow voxels (the majority) return after reading only themselves.
// Per-step counters (bone removed/added, recruited, seeds, surface voxels,
// perforations) are reduced per warp and per block and added to one of
// NSLOT slots to keep atomics uncontended; remodeling maps are written only
// where bone changed.
//
// Compile-check standalone: nvcc -std=c++17 -arch=sm_90 -ptx kernels/remodel.cu
#include "remodel_rules.cuh"

#ifndef BONESIM_BX
#define BONESIM_BX 32
#endif
#ifndef BONESIM_BY
#define BONESIM_BY 4
#endif
#ifndef BONESIM_BZ
#define BONESIM_BZ 4
#endif
#ifndef BONESIM_NSLOT
#define BONESIM_NSLOT 256
#endif
#define BONESIM_NCOUNT 8
#define BS_TX (BONESIM_BX + 2)
#define BS_TY (BONESIM_BY + 2)
#define BS_TZ (BONESIM_BZ + 2)
#define BS_NTHREADS (BONESIM_BX * BONESIM_BY * BONESIM_BZ)

struct BsTileNb {
    const bs_u32* tile;
    int base;
    __device__ __forceinline__ bs_u32 operator()(int k) const {
        return tile[base + bs_dz(k) * (BS_TY * BS_TX) + bs_dy(k) * BS_TX + bs_dx(k)];
    }
};

__device__ __forceinline__ bs_u32 bs_warp_sum(bs_u32 v) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_down_sync(0xFFFFFFFFu, v, o);
    return v;
}

// src: local array (nz, ny, nx) including `halo` voxels on every side;
// dst, rmap, fmap: the interior (nz-2h, ny-2h, nx-2h); (oz, oy, ox): global
// coordinates of src[0,0,0]; (gz, gy, gx): global volume shape.
extern "C" __global__ void __launch_bounds__(BS_NTHREADS)
BONESIM_CAT(bonesim_remodel_step_n, BONESIM_NEIGH)(
    const bs_u32* __restrict__ src, bs_u32* __restrict__ dst,
    bs_i32* __restrict__ rmap, bs_i32* __restrict__ fmap,
    bs_u64* __restrict__ counters,
    int nz, int ny, int nx, int halo,
    bs_i64 oz, bs_i64 oy, bs_i64 ox, bs_i64 gz, bs_i64 gy, bs_i64 gx,
    int map_day,
    bs_u32 act_thr, bs_u32 erode, bs_u32 depth, bs_u32 form, bs_u32 rev_steps,
    bs_u32 f_q16, bs_u32 lat0, bs_u32 cost1, bs_u32 cost2, bs_u32 cost3, bs_u32 key)
{
    __shared__ bs_u32 tile[BS_TZ * BS_TY * BS_TX];
    __shared__ bs_u32 bsum[BONESIM_NCOUNT];

    const int iz_n = nz - 2 * halo, iy_n = ny - 2 * halo, ix_n = nx - 2 * halo;
    const int z0 = blockIdx.z * BONESIM_BZ, y0 = blockIdx.y * BONESIM_BY, x0 = blockIdx.x * BONESIM_BX;
    const int tid = (threadIdx.z * BONESIM_BY + threadIdx.y) * BONESIM_BX + threadIdx.x;
    if (tid < BONESIM_NCOUNT) bsum[tid] = 0u;

    // stage the tile (interior coordinates z0-1 .. z0+BZ)
    for (int i = tid; i < BS_TZ * BS_TY * BS_TX; i += BS_NTHREADS) {
        const int tx = i % BS_TX, ty = (i / BS_TX) % BS_TY, tz = i / (BS_TX * BS_TY);
        const int lz = z0 + tz - 1 + halo, ly = y0 + ty - 1 + halo, lx = x0 + tx - 1 + halo;
        const bs_i64 qz = oz + lz, qy = oy + ly, qx = ox + lx;
        bs_u32 v = BONESIM_INERT;
        if (lz >= 0 && lz < nz && ly >= 0 && ly < ny && lx >= 0 && lx < nx &&
            qz >= 0 && qz < gz && qy >= 0 && qy < gy && qx >= 0 && qx < gx)
            v = __ldg(src + ((bs_i64)lz * ny + ly) * nx + lx);
        tile[i] = v;
    }
    __syncthreads();

    BsStep s;
    s.act_thr = act_thr; s.erode = erode; s.depth = depth; s.form = form; s.rev_steps = rev_steps;
    s.f_q16 = f_q16; s.lat0 = lat0; s.cost1 = cost1; s.cost2 = cost2; s.cost3 = cost3; s.key = key;

    const int iz = z0 + threadIdx.z, iy = y0 + threadIdx.y, ix = x0 + threadIdx.x;
    bs_u32 c_rem = 0u, c_add = 0u, ev = 0u;
    if (iz < iz_n && iy < iy_n && ix < ix_n) {
        BsTileNb nb;
        nb.tile = tile;
        nb.base = ((threadIdx.z + 1) * BS_TY + threadIdx.y + 1) * BS_TX + threadIdx.x + 1;
        const bs_u32 w = nb(13);
        const bs_i64 lin = ((oz + iz + halo) * gy + (oy + iy + halo)) * gx + (ox + ix + halo);
        const bs_u32 nw = bonesim_rule(nb, s, (bs_u32)((bs_u64)lin >> 32), (bs_u32)lin, &ev);
        const bs_i64 o = ((bs_i64)iz * iy_n + iy) * ix_n + ix;
        dst[o] = nw;
        const bs_u32 ob = w & 0xFFu, nbn = nw & 0xFFu;
        if (nbn < ob) {
            c_rem = ob - nbn;
            if (map_day >= 0 && rmap[o] < 0) rmap[o] = map_day;
        } else if (nbn > ob) {
            c_add = nbn - ob;
            if (map_day >= 0) fmap[o] = map_day;
        }
    }
    // counters: warp sums, then one shared atomic per warp, one global atomic per block and counter
    bs_u32 vals[6] = {c_rem, c_add, (ev & BS_EV_RECRUIT) ? 1u : 0u, (ev & BS_EV_SEED) ? 1u : 0u,
                      (ev & BS_EV_SURFACE) ? 1u : 0u, (ev & BS_EV_PERF) ? 1u : 0u};
    const int lane = tid & 31;
    for (int c = 0; c < 6; ++c) {
        const bs_u32 v = bs_warp_sum(vals[c]);
        if (lane == 0 && v) atomicAdd(&bsum[c], v);
    }
    __syncthreads();
    if (tid < 6 && bsum[tid]) {
        const int blin = (blockIdx.z * gridDim.y + blockIdx.y) * gridDim.x + blockIdx.x;
        atomicAdd(counters + (blin % BONESIM_NSLOT) * BONESIM_NCOUNT + tid, (bs_u64)bsum[tid]);
    }
}
