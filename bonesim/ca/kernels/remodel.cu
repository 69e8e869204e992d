// bonesim remodeling CA: one fused step over a block of the volume.
//
// Each thread block stages a (BZ+2, BY+2, BX+2) tile of packed 32-bit state
// words (bone | phase << 8 | timer << 16) in shared memory, once, with a
// one-voxel halo; neighbours outside the global volume read as the inert
// word. Each thread then applies bonesim_rule (remodel_rules.cuh) to its voxel
// and writes the new word to the other buffer (ping-pong, never copied).
// Marrow voxels (the majority) return after reading only themselves, full
// bone amid full quiescent bone after an AND/OR over its neighbours.
// Per-step counters (bone removed/added, recruited, seeds, surface voxels,
// perforations) are reduced per warp and per block and added to one of
// NSLOT slots to keep atomics uncontended; remodeling maps are written only
// where bone changed. The tiling logic lives in remodel_block.cuh, which the
// CPU tests also run (host block emulation); only this CUDA shell is GPU-only.
//
// Compile-check standalone: nvcc -std=c++17 -arch=sm_90 -ptx kernels/remodel.cu
#include "remodel_block.cuh"

#ifndef BONESIM_NSLOT
#define BONESIM_NSLOT 256
#endif
#define BONESIM_NCOUNT 8
// resident blocks per SM the register allocation must allow (4 x 512 threads = full occupancy)
#ifndef BONESIM_MIN_BLOCKS
#define BONESIM_MIN_BLOCKS 2
#endif

__device__ __forceinline__ bs_u32 bs_warp_sum(bs_u32 v) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_down_sync(0xFFFFFFFFu, v, o);
    return v;
}

// Add a thread's 6 step counters to the run's counters: warp sums, one shared atomic per warp,
// one global atomic per block and counter, into one of NSLOT slots (uncontended).
// Every thread of the block must call it (it holds a __syncthreads).
__device__ __forceinline__ void bs_flush_counters(const bs_u32 (&c)[6], bs_u32* bsum, int tid,
                                                  bs_u64* counters) {
    const int lane = tid & 31;
#pragma unroll
    for (int k = 0; k < 6; ++k) {
        const bs_u32 v = bs_warp_sum(c[k]);
        if (lane == 0 && v) atomicAdd(&bsum[k], v);
    }
    __syncthreads();
    if (tid < 6 && bsum[tid]) {
        const int blin = (blockIdx.z * gridDim.y + blockIdx.y) * gridDim.x + blockIdx.x;
        atomicAdd(counters + (blin % BONESIM_NSLOT) * BONESIM_NCOUNT + tid, (bs_u64)bsum[tid]);
    }
}

extern "C" __global__ void __launch_bounds__(BS_NTHREADS, BONESIM_MIN_BLOCKS)
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
    __shared__ bs_u32 tile[BS_TILE];
    __shared__ bs_u32 bsum[BONESIM_NCOUNT];

    BsGeom g;
    g.nz = nz; g.ny = ny; g.nx = nx; g.halo = halo;
    g.oz = oz; g.oy = oy; g.ox = ox; g.gz = gz; g.gy = gy; g.gx = gx;
    const int z0 = blockIdx.z * BONESIM_BZ, y0 = blockIdx.y * BONESIM_BY, x0 = blockIdx.x * BONESIM_BX;
    const int tid = (threadIdx.z * BONESIM_BY + threadIdx.y) * BONESIM_BX + threadIdx.x;
    if (tid < BONESIM_NCOUNT) bsum[tid] = 0u;
    for (int i = tid; i < BS_TILE; i += BS_NTHREADS) tile[i] = bs_tile_value(src, g, z0, y0, x0, i);
    __syncthreads();

    BsStep s;
    s.act_thr = act_thr; s.erode = erode; s.depth = depth; s.form = form; s.rev_steps = rev_steps;
    s.f_q16 = f_q16; s.lat0 = lat0; s.cost1 = cost1; s.cost2 = cost2; s.cost3 = cost3; s.key = key;
    bs_u32 c[6];
    bs_block_voxel(tile, g, s, z0, y0, x0, threadIdx.z, threadIdx.y, threadIdx.x, dst, rmap, fmap, map_day, c);

    bs_flush_counters(c, bsum, tid, counters);
}

// z-marching variant (see remodel_block.cuh): grid (ceil(X/ZBX), ceil(Y/ZBY), ceil(Z/ZCHUNK)).
extern "C" __global__ void __launch_bounds__(BS_ZNTHREADS)
BONESIM_CAT(bonesim_remodel_step_zm_n, BONESIM_NEIGH)(
    const bs_u32* __restrict__ src, bs_u32* __restrict__ dst,
    bs_i32* __restrict__ rmap, bs_i32* __restrict__ fmap,
    bs_u64* __restrict__ counters,
    int nz, int ny, int nx, int halo,
    bs_i64 oz, bs_i64 oy, bs_i64 ox, bs_i64 gz, bs_i64 gy, bs_i64 gx,
    int map_day,
    bs_u32 act_thr, bs_u32 erode, bs_u32 depth, bs_u32 form, bs_u32 rev_steps,
    bs_u32 f_q16, bs_u32 lat0, bs_u32 cost1, bs_u32 cost2, bs_u32 cost3, bs_u32 key)
{
    __shared__ bs_u32 ring[3 * BS_ZPLANE];
    __shared__ bs_u32 bsum[BONESIM_NCOUNT];

    BsGeom g;
    g.nz = nz; g.ny = ny; g.nx = nx; g.halo = halo;
    g.oz = oz; g.oy = oy; g.ox = ox; g.gz = gz; g.gy = gy; g.gx = gx;
    BsStep s;
    s.act_thr = act_thr; s.erode = erode; s.depth = depth; s.form = form; s.rev_steps = rev_steps;
    s.f_q16 = f_q16; s.lat0 = lat0; s.cost1 = cost1; s.cost2 = cost2; s.cost3 = cost3; s.key = key;

    const int iz_n = nz - 2 * halo;
    const int y0 = blockIdx.y * BONESIM_ZBY, x0 = blockIdx.x * BONESIM_ZBX;
    const int zbeg = blockIdx.z * BONESIM_ZCHUNK;
    const int zend = min(zbeg + BONESIM_ZCHUNK, iz_n);
    const int tid = threadIdx.y * BONESIM_ZBX + threadIdx.x;
    if (tid < BONESIM_NCOUNT) bsum[tid] = 0u;
    for (int i = tid; i < BS_ZPLANE; i += BS_ZNTHREADS) {
        ring[i] = bs_plane_value(src, g, zbeg - 1, y0, x0, i);
        ring[BS_ZPLANE + i] = bs_plane_value(src, g, zbeg, y0, x0, i);
    }
    bs_u32 acc[6] = {0u, 0u, 0u, 0u, 0u, 0u};
    BsRingNb nb;
    nb.ring = ring;
    nb.base = (threadIdx.y + 1) * BS_ZTX + threadIdx.x + 1;
    for (int z = zbeg; z < zend; ++z) {
        bs_ring_slots(z - zbeg, nb.slot);
        for (int i = tid; i < BS_ZPLANE; i += BS_ZNTHREADS)
            ring[nb.slot[2] + i] = bs_plane_value(src, g, z + 1, y0, x0, i);
        __syncthreads();
        bs_u32 c[6];
        bs_apply_voxel(nb, g, s, z, y0 + threadIdx.y, x0 + threadIdx.x, dst, rmap, fmap, map_day, c);
#pragma unroll
        for (int k = 0; k < 6; ++k) acc[k] += c[k];
        __syncthreads();  // everyone is done with plane z-1 before it is overwritten
    }
    bs_flush_counters(acc, bsum, tid, counters);
}
