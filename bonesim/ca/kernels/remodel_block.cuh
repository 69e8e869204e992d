// bonesim remodeling CA: the block-level logic of the step kernel, shared by
// the CUDA kernel (remodel.cu) and the host block emulation of the CPU tests.
//
// A thread block of BX x BY x BZ threads stages a (BZ+2, BY+2, BX+2) tile of
// packed words (its voxels plus a one-voxel halo; inert outside the global
// volume or the given array), then every thread applies bonesim_rule to its
// voxel. The whole block body of both kernels (bs_tile_block, bs_zm_block:
// staging loops, z-march, barriers) is written here once, against an
// execution policy `Ex`:
//   ex.each(f)   f(tid, regs) runs for this thread (CUDA: the calling thread;
//                host emulation: every thread of the block, deferred)
//   bs_sync(ex)  a block-wide barrier (CUDA: __syncthreads; host: the phase
//                boundary that runs the pending work of every thread)
//   ex.thread3(tid, tz, ty, tx)  the thread's (z, y, x) index in its block, tid = (tz*BY + ty)*BX + tx
//                (CUDA: threadIdx, which costs fewer registers than dividing tid)
// Per-thread state that lives across barriers is in BsThread (registers on the
// GPU, one per thread on the host). Between two barriers the host runs each
// thread's work to the end before the next thread starts (a legal schedule of
// a GPU block), so a missing barrier reads an unstaged (poisoned) tile on the
// CPU too. Only the counter reduction (warp sums, atomics) stays in remodel.cu; the voting barrier
// of the uniform-tile skip is ex.sync_or (CUDA: __syncthreads_or; host: the barrier, then the OR).
// The eighth counter of a slot counts tiles that applied the rule (BS_TILES_COUNTER).
#ifndef BONESIM_REMODEL_BLOCK_CUH
#define BONESIM_REMODEL_BLOCK_CUH

#include "remodel_rules.cuh"

#ifndef BONESIM_NSLOT
#define BONESIM_NSLOT 256
#endif
#define BONESIM_NCOUNT 8

// Step counters a thread accumulates (removed, added, recruited, seeds, surface, perforated, modeled).
#define BS_NACC 7

// Registers of one thread that live across barriers: its contributions to the BS_NACC step counters,
// packed in two words (two registers instead of seven; one addition each per voxel):
//   bone  bone units removed (bits 0-15) | added (bits 16-31): at most 255 each per voxel
//   ev    the sum of the voxels' event words (remodel_rules.cuh, BS_EV_*): five 6-bit fields
// Exact while a thread sums at most BS_MAX_VOXELS voxels between two reductions (the z-march's
// ZCHUNK planes; the tile kernel one voxel): 63 ones fit a 6-bit field, 257 x 255 < 65536.
#define BS_MAX_VOXELS 63
// The other registers that live across barriers (uniform-tile skip, see bs_tile_block):
//   vote   before a voting barrier: nonzero when a cell this thread staged differs from the
//          tile's reference word; after it: nonzero when any thread's was (the block-wide OR)
//   d0 d1  the z-march's per-plane differences of the two planes below the one being staged
//   tiles  thread 0 only: tiles (tile kernel) or column planes (z-march) that applied the rule
//   busy   nonzero when a voxel of this thread is a BMU or a surface voxel, or changed (active tiles)
struct BsThread {
    bs_u32 bone;
    bs_u32 ev;
    bs_u32 vote, d0, d1, tiles, busy;
};

// Counter k (0..BS_NACC-1) of a thread's packed sums.
BONESIM_HD bs_u32 bs_counter(const BsThread& r, int k) {
    if (k == 0) return r.bone & 0xFFFFu;
    if (k == 1) return r.bone >> 16;
    return (r.ev >> ((k - 2) * BS_EV_SHIFT)) & ((1u << BS_EV_SHIFT) - 1u);
}

// Block-wide barrier of the block body. -DBONESIM_NO_BARRIERS=1 removes every barrier (the mutation
// the parity tests must catch, on the CPU emulation and on the device).
template <class Ex>
BONESIM_HD void bs_sync(Ex& ex) {
#if defined(BONESIM_NO_BARRIERS) && BONESIM_NO_BARRIERS
    (void)ex;
#else
    ex.sync();
#endif
}

// Counter slot entry BS_NACC (the eighth) counts the tiles that applied the rule (BsThread::tiles).
#define BS_TILES_COUNTER BS_NACC

// Uniform-tile skip (issue 15, item 3): -DBONESIM_SKIP_UNIFORM=0 builds the kernels without it.
#ifndef BONESIM_SKIP_UNIFORM
#define BONESIM_SKIP_UNIFORM 1
#endif

// Block-wide barrier that also ORs every thread's r.vote (CUDA: __syncthreads_or, one BAR.RED):
// after it each thread's r.vote is nonzero when any thread's was. Removed like bs_sync by the mutation.
template <class Ex>
BONESIM_HD void bs_sync_or(Ex& ex) {
#if defined(BONESIM_NO_BARRIERS) && BONESIM_NO_BARRIERS
    (void)ex;
#else
    ex.sync_or();
#endif
}

// A tile whose cells (halo included) all equal `ref` cannot change this step when ref is full
// quiescent bone (0xFF: the rule's fast path, every neighbour full quiescent bone) or quiescent
// marrow (bone and phase byte 0: returned as it is; with modeling on too, since no face neighbour
// holds quiescent bone to grow on). Every word is then its own new word, no map is written and no
// counter counts (bit-identical). `s` is unused: the test holds for every step.
BONESIM_HD bool bs_uniform_unchanged(bs_u32 ref, const BsStep& s) {
    (void)s;
    return ref == 0xFFu || (ref & 0xFFFFu) == 0u;
}

// The buffers and per-step scalar of a launch (pointers into the caller's arrays).
struct BsIO {
    const bs_u32* src;
    bs_u32* dst;
    bs_i32* rmap;
    bs_i32* fmap;
    const bs_u8* mech;  // mechanical-signal class per interior voxel (read only when the step's mech_on)
    const bs_u32* lut;  // per class: activation weight (8.8), then modeling threshold (step's mod_on)
    int map_day;
    // active tiles (tile kernel): two planes of one flag per block, "quiet"; the launch reads plane
    // tile_mode and writes plane 1 - tile_mode; tile_mode < 0: off (every tile is stepped)
    bs_u8* tile_flags;
    int tile_mode;
};

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
// Passed to the kernel by value; its layout is GEOM_DTYPE of bonesim/ca/kernel_abi.py (64 bytes).
struct BsGeom {
    int nz, ny, nx, halo;
    bs_i64 oz, oy, ox, gz, gy, gx;
};
static_assert(sizeof(BsGeom) == 64, "BsGeom layout: see bonesim/ca/kernel_abi.py");
static_assert(sizeof(BsStep) == 60, "BsStep layout: see bonesim/ca/kernel_abi.py");

// A skipped voxel: its word as it is (voxels beyond the interior, of partial blocks, do nothing).
BONESIM_HD void bs_keep_voxel(const BsGeom& g, int iz, int iy, int ix, const BsIO& io, bs_u32 w) {
    const int iz_n = g.nz - 2 * g.halo, iy_n = g.ny - 2 * g.halo, ix_n = g.nx - 2 * g.halo;
    if (iz >= iz_n || iy >= iy_n || ix >= ix_n) return;
    io.dst[((bs_i64)iz * iy_n + iy) * ix_n + ix] = w;
}

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

// Plain load of a word (read-only cache on the GPU).
BONESIM_HD bs_u32 bs_ldg(const bs_u32* p) {
#if defined(__CUDA_ARCH__)
    return __ldg(p);
#else
    return *p;
#endif
}

// True when the local box [lz0, lz1) x [ly0, ly1) x [lx0, lx1) (ends exclusive) lies inside the
// block's buffer and the global volume, and a z-span of it fits 32-bit offsets: its cells can be
// staged without a bounds check per cell, at 32-bit offsets from one 64-bit base (the interior
// fast path; blocks at a face of the buffer or the volume take bs_load_local, cell by cell).
BONESIM_HD bool bs_box_inside(const BsGeom& g, int lz0, int lz1, int ly0, int ly1, int lx0, int lx1) {
    return lz0 >= 0 && lz1 <= g.nz && ly0 >= 0 && ly1 <= g.ny && lx0 >= 0 && lx1 <= g.nx && g.oz + lz0 >= 0 &&
           g.oz + lz1 <= g.gz && g.oy + ly0 >= 0 && g.oy + ly1 <= g.gy && g.ox + lx0 >= 0 && g.ox + lx1 <= g.gx &&
           (bs_i64)(lz1 - lz0) * g.ny * g.nx < 0x7FFFFFFF;
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
// write the new word and the maps, and add its contributions to the counters
// to r (packed, see BsThread). Voxels beyond the interior (threads of partial blocks) do nothing.
template <class Nb>
BONESIM_HD void bs_apply_voxel(const Nb& nb, const BsGeom& g, const BsStep& s, int iz, int iy, int ix, const BsIO& io,
                               BsThread& r) {
    bs_u32* dst = io.dst;
    bs_i32* rmap = io.rmap;
    bs_i32* fmap = io.fmap;
    const int map_day = io.map_day;
    const int iz_n = g.nz - 2 * g.halo, iy_n = g.ny - 2 * g.halo, ix_n = g.nx - 2 * g.halo;
    if (iz >= iz_n || iy >= iy_n || ix >= ix_n) return;
    const bs_u32 w = nb(13);
    const bs_i64 lin = ((g.oz + iz + g.halo) * g.gy + (g.oy + iy + g.halo)) * g.gx + (g.ox + ix + g.halo);
    const bs_i64 o = ((bs_i64)iz * iy_n + iy) * ix_n + ix;
    bs_u32 ev = 0u;
    const bs_u32 nw = bonesim_rule(nb, s, io.mech, o, io.lut, (bs_u32)((bs_u64)lin >> 32), (bs_u32)lin, &ev);
    dst[o] = nw;
    const bs_u32 ob = w & 0xFFu, nbn = nw & 0xFFu;
    if (nbn < ob) {
        r.bone += ob - nbn;
        if (map_day >= 0 && rmap[o] < 0) rmap[o] = map_day;
    } else if (nbn > ob) {
        r.bone += (nbn - ob) << 16;
        if (map_day >= 0) fmap[o] = map_day;
    }
    r.ev += ev;
    r.busy |= ((w >> 8) & 0xFFu) | (ev & BS_EV_SURFACE) | (nw ^ w);
}

// Thread (tz, ty, tx) of the 3-D tile block at (z0, y0, x0).
BONESIM_HD void bs_block_voxel(const bs_u32* tile, const BsGeom& g, const BsStep& s, int z0, int y0, int x0, int tz,
                               int ty, int tx, const BsIO& io, BsThread& r) {
    BsTileNb nb;
    nb.tile = tile;
    nb.base = ((tz + 1) * BS_TY + ty + 1) * BS_TX + tx + 1;
    bs_apply_voxel(nb, g, s, z0 + tz, y0 + ty, x0 + tx, io, r);
}

// The 3-D tile kernel's block (bz, by, bx): stage the tile, barrier, every thread its voxel.
// Active tiles (issue 15, item 4). A block is "quiet" after a step when none of its voxels was a BMU
// or a surface voxel and none changed. A block whose 27 surrounding blocks (itself included; blocks
// beyond the grid count as quiet) were all quiet in the previous step is skipped without a load or a
// store: nothing in it or its halo changed, so the other state buffer already holds its words, and
// without a BMU or a surface voxel in reach no branch of the rule fires (a marrow voxel that could
// model touches quiescent bone across a face: a surface voxel, in one of the 27 blocks). It stays quiet.
// Flags of plane tile_mode must all be 0 ("not quiet") on the first step after the state was set.
BONESIM_HD int bs_block_lin(int bz, int by, int bx, int ny, int nx) { return (bz * ny + by) * nx + bx; }

template <class Ex>
BONESIM_HD void bs_tile_block(Ex& ex, bs_u32* tile, const BsIO& io, const BsGeom& g, const BsStep& s, int bz,
                              int by, int bx, int nbz, int nby, int nbx) {
    const int blin = bs_block_lin(bz, by, bx, nby, nbx), nblocks = nbz * nby * nbx;
    if (io.tile_mode >= 0) {  // block-uniform
        const bs_u8* qin = io.tile_flags + (bs_i64)io.tile_mode * nblocks;
        ex.each([=](int tid, BsThread& r) {
            r.vote = 0u;  // thread k < 27 looks at neighbour block k
            if (tid < 27) {
                const int qz = bz + bs_dz(tid), qy = by + bs_dy(tid), qx = bx + bs_dx(tid);
                if (qz >= 0 && qz < nbz && qy >= 0 && qy < nby && qx >= 0 && qx < nbx)
                    r.vote = qin[bs_block_lin(qz, qy, qx, nby, nbx)] == 0u;
            }
        });
        bs_sync_or(ex);
        if (!ex.voted()) {  // the block-wide result of the vote (the same in every thread)
            ex.each([=](int tid, BsThread& r) {
                if (tid == 0) io.tile_flags[(bs_i64)(1 - io.tile_mode) * nblocks + blin] = 1u;
            });
            return;
        }
    }
    const int z0 = bz * BONESIM_BZ, y0 = by * BONESIM_BY, x0 = bx * BONESIM_BX;
    const int lz0 = z0 - 1 + g.halo, ly0 = y0 - 1 + g.halo, lx0 = x0 - 1 + g.halo;
    const bool inside = bs_box_inside(g, lz0, lz0 + BS_TZ, ly0, ly0 + BS_TY, lx0, lx0 + BS_TX);
    const bs_u32* base = io.src + ((bs_i64)lz0 * g.ny + ly0) * g.nx + lx0;  // used only when inside
    if (inside) {  // block-uniform branch
        const int plane = g.ny * g.nx, row = g.nx;
        ex.each([=](int tid, BsThread& r) {
            const bs_u32 ref = bs_ldg(base);  // the tile's first cell (the same word for every thread)
            bs_u32 diff = 0u;
            for (int i = tid; i < BS_TILE; i += BS_NTHREADS) {
                const int tx = i % BS_TX, ty = (i / BS_TX) % BS_TY, tz = i / (BS_TX * BS_TY);
                const bs_u32 v = bs_ldg(base + (tz * plane + ty * row + tx));
                tile[i] = v;
                diff |= v ^ ref;
            }
            r.vote = diff;
        });
    } else {
        ex.each([=](int tid, BsThread& r) {
            for (int i = tid; i < BS_TILE; i += BS_NTHREADS) tile[i] = bs_tile_value(io.src, g, z0, y0, x0, i);
            r.vote = 1u;  // a block at a face of the buffer or the volume is always stepped
        });
    }
#if BONESIM_SKIP_UNIFORM
    bs_sync_or(ex);  // the whole tile is staged before any thread reads its neighbours; the vote
#else
    bs_sync(ex);  // the whole tile is staged before any thread reads its neighbours
#endif
    ex.each([=, &ex](int tid, BsThread& r) {
        int tz, ty, tx;
        ex.thread3(tid, tz, ty, tx);
#if BONESIM_SKIP_UNIFORM
        // block-uniform: every cell equals the first one, and such a tile cannot change
        if (r.vote == 0u) {
            const bs_u32 ref = tile[0];
            if (bs_uniform_unchanged(ref, s)) {
                bs_keep_voxel(g, z0 + tz, y0 + ty, x0 + tx, io, ref);
                return;
            }
        }
#endif
        if (tid == 0) r.tiles += 1u;
        bs_block_voxel(tile, g, s, z0, y0, x0, tz, ty, tx, io, r);
    });
    if (io.tile_mode >= 0) {  // this block's flag for the next step
        ex.each([=](int tid, BsThread& r) { r.vote = r.busy; });
        bs_sync_or(ex);
        ex.each([=](int tid, BsThread& r) {
            if (tid == 0) io.tile_flags[(bs_i64)(1 - io.tile_mode) * nblocks + blin] = r.vote == 0u;
        });
    }
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
static_assert(BONESIM_ZCHUNK <= BS_MAX_VOXELS, "a z-march thread sums ZCHUNK voxels in its packed counters");

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

// The z-marching kernel's block (bz, by, bx): the column y0.., x0.. from plane bz * ZCHUNK on.
template <class Ex>
BONESIM_HD void bs_zm_block(Ex& ex, bs_u32* ring, const BsIO& io, const BsGeom& g, const BsStep& s, int bz, int by,
                            int bx) {
    const int iz_n = g.nz - 2 * g.halo;
    const int y0 = by * BONESIM_ZBY, x0 = bx * BONESIM_ZBX;
    const int zbeg = bz * BONESIM_ZCHUNK;
    const int zend = zbeg + BONESIM_ZCHUNK < iz_n ? zbeg + BONESIM_ZCHUNK : iz_n;
    // interior fast path: every plane the column stages (zbeg-1 .. zend) is inside buffer and volume
    const int lz0 = zbeg - 1 + g.halo, ly0 = y0 - 1 + g.halo, lx0 = x0 - 1 + g.halo;
    const bool inside = bs_box_inside(g, lz0, zend + 1 + g.halo, ly0, ly0 + BS_ZTY, lx0, lx0 + BS_ZTX);
    const bs_u32* base = io.src + ((bs_i64)lz0 * g.ny + ly0) * g.nx + lx0;  // used only when inside
    const int plane = g.ny * g.nx, row = g.nx;
    // uniform-plane skip: r.d0, r.d1 = the cells this thread staged of the two lower planes of the
    // window, XOR the column's reference word (its first cell), ORed; nonzero off the fast path
    ex.each([=](int tid, BsThread& r) {
        const bs_u32 ref = inside ? bs_ldg(base) : 0u;
        bs_u32 d0 = inside ? 0u : 1u, d1 = 0u;
        for (int i = tid; i < BS_ZPLANE; i += BS_ZNTHREADS) {
            if (inside) {
                const int off = (i / BS_ZTX) * row + i % BS_ZTX;
                const bs_u32 a = bs_ldg(base + off), b = bs_ldg(base + (plane + off));
                ring[i] = a;
                ring[BS_ZPLANE + i] = b;
                d0 |= a ^ ref;
                d1 |= b ^ ref;
            } else {
                ring[i] = bs_plane_value(io.src, g, zbeg - 1, y0, x0, i);
                ring[BS_ZPLANE + i] = bs_plane_value(io.src, g, zbeg, y0, x0, i);
            }
        }
        r.d0 = d0;
        r.d1 = d1;
    });
    for (int z = zbeg; z < zend; ++z) {
        ex.each([=](int tid, BsThread& r) {
            int slot[3];
            bs_ring_slots(z - zbeg, slot);
            const int pz = (z + 1 - zbeg + 1) * plane;  // plane z+1, from the column's first staged plane
            const bs_u32 ref = inside ? bs_ldg(base) : 0u;
            bs_u32 d2 = inside ? 0u : 1u;
            for (int i = tid; i < BS_ZPLANE; i += BS_ZNTHREADS) {
                const bs_u32 v = inside ? bs_ldg(base + (pz + (i / BS_ZTX) * row + i % BS_ZTX))
                                        : bs_plane_value(io.src, g, z + 1, y0, x0, i);
                ring[slot[2] + i] = v;
                d2 |= v ^ ref;
            }
            r.vote = r.d0 | r.d1 | d2;  // planes z-1, z, z+1
            r.d0 = r.d1;
            r.d1 = d2;
        });
#if BONESIM_SKIP_UNIFORM
        bs_sync_or(ex);  // planes z-1, z, z+1 are staged; the vote
#else
        bs_sync(ex);  // planes z-1, z, z+1 are staged
#endif
        ex.each([=, &ex](int tid, BsThread& r) {
            int tz, ty, tx;
            ex.thread3(tid, tz, ty, tx);
            BsRingNb nb;
            nb.ring = ring;
            bs_ring_slots(z - zbeg, nb.slot);
            nb.base = (ty + 1) * BS_ZTX + tx + 1;
#if BONESIM_SKIP_UNIFORM
            // block-uniform: every cell of the three planes equals the column's first one
            if (r.vote == 0u) {
                const bs_u32 ref = nb(13);
                if (bs_uniform_unchanged(ref, s)) {
                    bs_keep_voxel(g, z, y0 + ty, x0 + tx, io, ref);
                    return;
                }
            }
#endif
            if (tid == 0) r.tiles += 1u;
            bs_apply_voxel(nb, g, s, z, y0 + ty, x0 + tx, io, r);
        });
        bs_sync(ex);  // everyone is done with plane z-1 before it is overwritten
    }
}

#endif  // BONESIM_REMODEL_BLOCK_CUH
