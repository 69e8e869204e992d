// bonesim remodeling CA: the block-level logic of the step kernel, shared by
// the CUDA kernel (remodel.cu) and the host block emulation of the CPU tests.
//
// A thread block of BX x BY x BZ threads stages a (BZ+2, BY+2, BX+2) tile of
// packed words (its voxels plus a one-voxel halo; inert outside the global
// volume or the given array), then every thread applies bonesim_rule to its
// voxel. Only the CUDA shell (thread indices, __syncthreads, warp shuffles,
// atomics) stays in remodel.cu.
#ifndef BONESIM_REMODEL_BLOCK_CUH
#define BONESIM_REMODEL_BLOCK_CUH

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
#define BS_TX (BONESIM_BX + 2)
#define BS_TY (BONESIM_BY + 2)
#define BS_TZ (BONESIM_BZ + 2)
#define BS_TILE (BS_TZ * BS_TY * BS_TX)
#define BS_NTHREADS (BONESIM_BX * BONESIM_BY * BONESIM_BZ)

// Where a block works: src is the local array (nz, ny, nx) including `halo`
// voxels on every side; dst and the maps are its interior; (oz, oy, ox) are
// the global coordinates of src[0,0,0]; (gz, gy, gx) the global shape.
struct BsGeom {
    int nz, ny, nx, halo;
    bs_i64 oz, oy, ox, gz, gy, gx;
};

// Word at local (lz, ly, lx) of the block's buffer; outside the buffer or the global volume: inert.
BONESIM_HD bs_u32 bs_load_local(const bs_u32* src, const BsGeom& g, int lz, int ly, int lx) {
    const bs_i64 qz = g.oz + lz, qy = g.oy + ly, qx = g.ox + lx;
    if (lz >= 0 && lz < g.nz && ly >= 0 && ly < g.ny && lx >= 0 && lx < g.nx && qz >= 0 && qz < g.gz && qy >= 0 &&
        qy < g.gy && qx >= 0 && qx < g.gx) {
#if defined(__CUDA_ARCH__)
        return __ldg(src + ((bs_i64)lz * g.ny + ly) * g.nx + lx);
#else
        return src[((bs_i64)lz * g.ny + ly) * g.nx + lx];
#endif
    }
    return BONESIM_INERT;
}

// Tile cell i of the block whose first interior voxel is (z0, y0, x0).
BONESIM_HD bs_u32 bs_tile_value(const bs_u32* src, const BsGeom& g, int z0, int y0, int x0, int i) {
    const int tx = i % BS_TX, ty = (i / BS_TX) % BS_TY, tz = i / (BS_TX * BS_TY);
    const int lz = z0 + tz - 1 + g.halo, ly = y0 + ty - 1 + g.halo, lx = x0 + tx - 1 + g.halo;
    return bs_load_local(src, g, lz, ly, lx);
}

struct BsTileNb {
    const bs_u32* tile;
    int base;
    BONESIM_HD bs_u32 operator()(int k) const {
        return tile[base + bs_dz(k) * (BS_TY * BS_TX) + bs_dy(k) * BS_TX + bs_dx(k)];
    }
};

// Apply the rule to interior voxel (iz, iy, ix), whose neighbours `nb` reads:
// write the new word and the maps, and return its contributions to the
// counters in c[0..5] (removed, added, recruited, seeds, surface, perforated).
// Voxels beyond the interior (threads of partial blocks) do nothing.
template <class Nb>
BONESIM_HD void bs_apply_voxel(const Nb& nb, const BsGeom& g, const BsStep& s, int iz, int iy, int ix, bs_u32* dst,
                               bs_i32* rmap, bs_i32* fmap, int map_day, bs_u32 c[6]) {
    BS_UNROLL
    for (int i = 0; i < 6; ++i) c[i] = 0u;
    const int iz_n = g.nz - 2 * g.halo, iy_n = g.ny - 2 * g.halo, ix_n = g.nx - 2 * g.halo;
    if (iz >= iz_n || iy >= iy_n || ix >= ix_n) return;
    const bs_u32 w = nb(13);
    const bs_i64 lin = ((g.oz + iz + g.halo) * g.gy + (g.oy + iy + g.halo)) * g.gx + (g.ox + ix + g.halo);
    bs_u32 ev = 0u;
    const bs_u32 nw = bonesim_rule(nb, s, (bs_u32)((bs_u64)lin >> 32), (bs_u32)lin, &ev);
    const bs_i64 o = ((bs_i64)iz * iy_n + iy) * ix_n + ix;
    dst[o] = nw;
    const bs_u32 ob = w & 0xFFu, nbn = nw & 0xFFu;
    if (nbn < ob) {
        c[0] = ob - nbn;
        if (map_day >= 0 && rmap[o] < 0) rmap[o] = map_day;
    } else if (nbn > ob) {
        c[1] = nbn - ob;
        if (map_day >= 0) fmap[o] = map_day;
    }
    c[2] = (ev & BS_EV_RECRUIT) ? 1u : 0u;
    c[3] = (ev & BS_EV_SEED) ? 1u : 0u;
    c[4] = (ev & BS_EV_SURFACE) ? 1u : 0u;
    c[5] = (ev & BS_EV_PERF) ? 1u : 0u;
}

// Thread (tz, ty, tx) of the 3-D tile block at (z0, y0, x0).
BONESIM_HD void bs_block_voxel(const bs_u32* tile, const BsGeom& g, const BsStep& s, int z0, int y0, int x0, int tz,
                               int ty, int tx, bs_u32* dst, bs_i32* rmap, bs_i32* fmap, int map_day, bs_u32 c[6]) {
    BsTileNb nb;
    nb.tile = tile;
    nb.base = ((tz + 1) * BS_TY + ty + 1) * BS_TX + tx + 1;
    bs_apply_voxel(nb, g, s, z0 + tz, y0 + ty, x0 + tx, dst, rmap, fmap, map_day, c);
}

// ---------------------------------------------------------------------------
// z-marching variant: a block of ZBX x ZBY threads owns a column of the volume
// ZCHUNK planes deep and streams through it, keeping three (ZBY+2, ZBX+2)
// planes in a ring: each plane is staged once per block instead of the 3-D
// tile's (BZ+2)/BZ, and counters are reduced once per column.
#ifndef BONESIM_ZBX
#define BONESIM_ZBX 32
#endif
#ifndef BONESIM_ZBY
#define BONESIM_ZBY 8
#endif
#ifndef BONESIM_ZCHUNK
#define BONESIM_ZCHUNK 16
#endif
#define BS_ZTX (BONESIM_ZBX + 2)
#define BS_ZTY (BONESIM_ZBY + 2)
#define BS_ZPLANE (BS_ZTY * BS_ZTX)
#define BS_ZNTHREADS (BONESIM_ZBX * BONESIM_ZBY)

// Cell i of the plane at interior z coordinate iz (-1 .. iz_n) of the column at (y0, x0).
BONESIM_HD bs_u32 bs_plane_value(const bs_u32* src, const BsGeom& g, int iz, int y0, int x0, int i) {
    const int tx = i % BS_ZTX, ty = i / BS_ZTX;
    const int lz = iz + g.halo, ly = y0 + ty - 1 + g.halo, lx = x0 + tx - 1 + g.halo;
    return bs_load_local(src, g, lz, ly, lx);
}

struct BsRingNb {
    const bs_u32* ring;
    int slot[3];  // word offsets of the planes z-1, z, z+1 in the ring
    int base;
    BONESIM_HD bs_u32 operator()(int k) const {
        return ring[slot[bs_dz(k) + 1] + base + bs_dy(k) * BS_ZTX + bs_dx(k)];
    }
};

// Ring slot offsets for step j of a column (plane z = zbeg + j).
BONESIM_HD void bs_ring_slots(int j, int slot[3]) {
    slot[0] = (j % 3) * BS_ZPLANE;
    slot[1] = ((j + 1) % 3) * BS_ZPLANE;
    slot[2] = ((j + 2) % 3) * BS_ZPLANE;
}

#endif  // BONESIM_REMODEL_BLOCK_CUH
