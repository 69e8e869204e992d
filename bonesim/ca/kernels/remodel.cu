// bonesim remodeling CA: one fused step over a block of the volume.
//
// Each thread block stages a (BZ+2, BY+2, BX+2) tile of packed 32-bit state
// words (bone | phase << 8 | timer << 16) in shared memory, once, with a
// one-voxel halo; neighbours outside the global volume read as the inert
// word. Each thread then applies bonesim_rule (remodel_rules.cuh) to its voxel
// and writes the new word to the other buffer (ping-pong, never copied).
// Marrow voxels (the majority) return after reading only themselves (with
// modeling on, and their class's modeling threshold: the 6 face neighbours
// are read only when it is nonzero), full bone amid full quiescent bone after
// an AND/OR over its neighbours.
// Per-step counters (bone removed/added, recruited, seeds, surface voxels,
// perforations, modeling seeds) are summed per thread in two packed registers, reduced per warp
// (skipped by a warp without events) and per block and added to one of NSLOT slots to keep atomics
// uncontended; remodeling maps are written only
// where bone changed. The block bodies (tile staging, z-march, barriers) live
// in remodel_block.cuh, which the CPU tests run through a host execution
// policy (tests/ca/harness/remodel_host.cpp); only this shell (thread indices,
// warp shuffles, atomics) is GPU-only. Arguments: the five buffers, then
// BsGeom and BsStep by value, then map_day (bonesim/ca/kernel_abi.py KERNEL_ARGS).
//
// Compile-check standalone: nvcc -std=c++17 -arch=sm_90 -ptx kernels/remodel.cu
#include "remodel_block.cuh"

// resident blocks per SM the register allocation must allow (4 x 512 threads = full occupancy)
#ifndef BONESIM_MIN_BLOCKS
#define BONESIM_MIN_BLOCKS 2
#endif

// Execution policy of the block bodies on the GPU: each thread runs its own part; barriers are real.
struct BsDeviceExec {
    int tid;
    BsThread r;
    template <class F>
    __device__ __forceinline__ void each(F f) { f(tid, r); }
    __device__ __forceinline__ void sync() { __syncthreads(); }
    __device__ __forceinline__ void sync_or() { r.vote = __syncthreads_or(r.vote != 0u); }
    __device__ __forceinline__ bool voted() const { return r.vote != 0u; }
    // (z, y, x) index of this thread in a 3-D block
    __device__ __forceinline__ void thread3(int, int& tz, int& ty, int& tx) const {
        tz = threadIdx.z; ty = threadIdx.y; tx = threadIdx.x;
    }
};

// Sum of v over the warp, in every lane: one REDUX instruction on sm_80 and later, five shuffles before.
__device__ __forceinline__ bs_u32 bs_warp_sum(bs_u32 v) {
#if __CUDA_ARCH__ >= 800
    return __reduce_add_sync(0xFFFFFFFFu, v);
#else
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xFFFFFFFFu, v, o);
    return v;
#endif
}

// Add a thread's BS_NACC step counters (packed in ex.r, see BsThread) to the run's counters: a warp
// whose threads saw no event and changed no bone skips everything (one vote); the others unpack and sum
// each counter over the warp, and lane k adds counter k with one shared atomic (the seven lanes in one
// instruction); then one global atomic per block and
// counter, into one of NSLOT slots (uncontended). Integer sums: any order gives the same counts.
// Every thread of the block must call it (it holds a barrier).
__device__ __forceinline__ void bs_flush_counters(BsDeviceExec& ex, bs_u32* bsum, bs_u64* counters) {
    const int lane = ex.tid & 31;
    if (__any_sync(0xFFFFFFFFu, (ex.r.bone | ex.r.ev) != 0u)) {  // warp-uniform
        bs_u32 mine = 0u;
#pragma unroll
        for (int k = 0; k < BS_NACC; ++k) {
            const bs_u32 v = bs_warp_sum(bs_counter(ex.r, k));
            if (lane == k) mine = v;
        }
        if (lane < BS_NACC && mine) atomicAdd(&bsum[lane], mine);
    }
    bs_sync(ex);
    const int blin = (blockIdx.z * gridDim.y + blockIdx.y) * gridDim.x + blockIdx.x;
    if (ex.tid < BS_NACC && bsum[ex.tid])
        atomicAdd(counters + (blin % BONESIM_NSLOT) * BONESIM_NCOUNT + ex.tid, (bs_u64)bsum[ex.tid]);
    if (ex.tid == 0 && ex.r.tiles)
        atomicAdd(counters + (blin % BONESIM_NSLOT) * BONESIM_NCOUNT + BS_TILES_COUNTER, (bs_u64)ex.r.tiles);
}

__device__ __forceinline__ void bs_exec_init(BsDeviceExec& ex, int tid, bs_u32* bsum) {
    ex.tid = tid;
    ex.r.bone = ex.r.ev = ex.r.vote = ex.r.d0 = ex.r.d1 = ex.r.tiles = ex.r.busy = 0u;
    if (tid < BONESIM_NCOUNT) bsum[tid] = 0u;  // ordered before the atomics by the block body's barrier
}

extern "C" __global__ void __launch_bounds__(BS_NTHREADS, BONESIM_MIN_BLOCKS)
BONESIM_CAT(bonesim_remodel_step_n, BONESIM_NEIGH)(
    const bs_u32* __restrict__ src, bs_u32* __restrict__ dst,
    bs_i32* __restrict__ rmap, bs_i32* __restrict__ fmap,
    bs_u64* __restrict__ counters, const bs_u8* __restrict__ mech, const bs_u32* __restrict__ lut,
    const BsGeom g, const BsStep s, int map_day, bs_u8* __restrict__ tile_flags, int tile_mode)
{
    __shared__ bs_u32 tile[BS_TILE];
    __shared__ bs_u32 bsum[BONESIM_NCOUNT];
    BsDeviceExec ex;
    bs_exec_init(ex, (threadIdx.z * BONESIM_BY + threadIdx.y) * BONESIM_BX + threadIdx.x, bsum);
    const BsIO io = {src, dst, rmap, fmap, mech, lut, map_day, tile_flags, tile_mode};
    bs_tile_block(ex, tile, io, g, s, blockIdx.z, blockIdx.y, blockIdx.x, gridDim.z, gridDim.y, gridDim.x);
    bs_flush_counters(ex, bsum, counters);
}

// z-marching variant (see remodel_block.cuh): grid (ceil(X/ZBX), ceil(Y/ZBY), ceil(Z/ZCHUNK)).
extern "C" __global__ void __launch_bounds__(BS_ZNTHREADS)
BONESIM_CAT(bonesim_remodel_step_zm_n, BONESIM_NEIGH)(
    const bs_u32* __restrict__ src, bs_u32* __restrict__ dst,
    bs_i32* __restrict__ rmap, bs_i32* __restrict__ fmap,
    bs_u64* __restrict__ counters, const bs_u8* __restrict__ mech, const bs_u32* __restrict__ lut,
    const BsGeom g, const BsStep s, int map_day, bs_u8* __restrict__ tile_flags, int tile_mode)
{
    __shared__ bs_u32 ring[3 * BS_ZPLANE];
    __shared__ bs_u32 bsum[BONESIM_NCOUNT];
    BsDeviceExec ex;
    bs_exec_init(ex, threadIdx.y * BONESIM_ZBX + threadIdx.x, bsum);
    const BsIO io = {src, dst, rmap, fmap, mech, lut, map_day, tile_flags, -1};  // no active tiles (yet)
    bs_zm_block(ex, ring, io, g, s, blockIdx.z, blockIdx.y, blockIdx.x);
    bs_flush_counters(ex, bsum, counters);
}
