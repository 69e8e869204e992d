// Staging-only micro kernels for scripts/sass_count.py: the tile kernel's staging loop with a bounds check
// per cell (faces of the buffer or volume) and the interior fast path (bs_box_inside), nothing else,
// so their SASS shows what staging one tile costs per thread (= per voxel).
#include "remodel_block.cuh"
extern "C" __global__ void __launch_bounds__(BS_NTHREADS, 2) stage_checked(const bs_u32* src, bs_u32* out, const BsGeom g) {
    __shared__ bs_u32 tile[BS_TILE];
    const int tid = (threadIdx.z * BONESIM_BY + threadIdx.y) * BONESIM_BX + threadIdx.x;
    const int z0 = blockIdx.z * BONESIM_BZ, y0 = blockIdx.y * BONESIM_BY, x0 = blockIdx.x * BONESIM_BX;
    for (int i = tid; i < BS_TILE; i += BS_NTHREADS) tile[i] = bs_tile_value(src, g, z0, y0, x0, i);
    __syncthreads();
    out[blockIdx.x * BS_NTHREADS + tid] = tile[tid];
}
extern "C" __global__ void __launch_bounds__(BS_NTHREADS, 2) stage_interior(const bs_u32* src, bs_u32* out, const BsGeom g) {
    __shared__ bs_u32 tile[BS_TILE];
    const int tid = (threadIdx.z * BONESIM_BY + threadIdx.y) * BONESIM_BX + threadIdx.x;
    const int z0 = blockIdx.z * BONESIM_BZ, y0 = blockIdx.y * BONESIM_BY, x0 = blockIdx.x * BONESIM_BX;
    const int lz0 = z0 - 1 + g.halo, ly0 = y0 - 1 + g.halo, lx0 = x0 - 1 + g.halo;
    const bs_u32* base = src + ((bs_i64)lz0 * g.ny + ly0) * g.nx + lx0;
    const int plane = g.ny * g.nx, row = g.nx;
    for (int i = tid; i < BS_TILE; i += BS_NTHREADS) {
        const int tx = i % BS_TX, ty = (i / BS_TX) % BS_TY, tz = i / (BS_TX * BS_TY);
        tile[i] = bs_ldg(base + (tz * plane + ty * row + tx));
    }
    __syncthreads();
    out[blockIdx.x * BS_NTHREADS + tid] = tile[tid];
}
