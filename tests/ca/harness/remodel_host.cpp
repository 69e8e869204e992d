// Host harness for the CPU parity tests. bonesim_host_step applies bonesim_rule
// from kernels/remodel_rules.cuh -- the very code the CUDA kernel runs -- to
// every voxel, with the kernel's neighbour staging (inert outside the global
// volume) and counters. bonesim_host_step_blocks emulates the kernel's thread
// blocks with the shared block logic of kernels/remodel_block.cuh: per block,
// stage the tile, then run every thread's voxel. Built by the tests with g++.
#include "remodel_block.cuh"

struct HostNb {
    const bs_u32* pad;
    bs_i64 base, sz, sy;
    bs_u32 operator()(int k) const { return pad[base + bs_dz(k) * sz + bs_dy(k) * sy + bs_dx(k)]; }
};

extern "C" void bonesim_host_step(const bs_u32* src, bs_u32* pad, bs_u32* dst, bs_i32* rmap, bs_i32* fmap,
                                  bs_u64* counters, int nz, int ny, int nx, int halo, bs_i64 oz, bs_i64 oy,
                                  bs_i64 ox, bs_i64 gz, bs_i64 gy, bs_i64 gx, int map_day, const bs_u32* p) {
    const int iz_n = nz - 2 * halo, iy_n = ny - 2 * halo, ix_n = nx - 2 * halo;
    const int PZ = iz_n + 2, PY = iy_n + 2, PX = ix_n + 2;
    for (int tz = 0; tz < PZ; ++tz)
        for (int ty = 0; ty < PY; ++ty)
            for (int tx = 0; tx < PX; ++tx) {
                const int lz = tz - 1 + halo, ly = ty - 1 + halo, lx = tx - 1 + halo;
                const bs_i64 qz = oz + lz, qy = oy + ly, qx = ox + lx;
                bs_u32 v = BONESIM_INERT;
                if (lz >= 0 && lz < nz && ly >= 0 && ly < ny && lx >= 0 && lx < nx && qz >= 0 && qz < gz &&
                    qy >= 0 && qy < gy && qx >= 0 && qx < gx)
                    v = src[((bs_i64)lz * ny + ly) * nx + lx];
                pad[((bs_i64)tz * PY + ty) * PX + tx] = v;
            }
    BsStep s;
    s.act_thr = p[0]; s.erode = p[1]; s.depth = p[2]; s.form = p[3]; s.rev_steps = p[4];
    s.f_q16 = p[5]; s.lat0 = p[6]; s.cost1 = p[7]; s.cost2 = p[8]; s.cost3 = p[9]; s.key = p[10];
    for (int c = 0; c < 6; ++c) counters[c] = 0;
    for (int iz = 0; iz < iz_n; ++iz)
        for (int iy = 0; iy < iy_n; ++iy)
            for (int ix = 0; ix < ix_n; ++ix) {
                HostNb nb;
                nb.pad = pad;
                nb.sz = (bs_i64)PY * PX;
                nb.sy = PX;
                nb.base = ((bs_i64)(iz + 1) * PY + iy + 1) * PX + ix + 1;
                const bs_u32 w = nb(13);
                const bs_i64 lin = ((oz + iz + halo) * gy + (oy + iy + halo)) * gx + (ox + ix + halo);
                bs_u32 ev = 0;
                const bs_u32 nw = bonesim_rule(nb, s, (bs_u32)((bs_u64)lin >> 32), (bs_u32)lin, &ev);
                const bs_i64 o = ((bs_i64)iz * iy_n + iy) * ix_n + ix;
                dst[o] = nw;
                const bs_u32 ob = w & 0xFFu, nbn = nw & 0xFFu;
                if (nbn < ob) {
                    counters[0] += ob - nbn;
                    if (map_day >= 0 && rmap[o] < 0) rmap[o] = map_day;
                } else if (nbn > ob) {
                    counters[1] += nbn - ob;
                    if (map_day >= 0) fmap[o] = map_day;
                }
                counters[2] += (ev & BS_EV_RECRUIT) ? 1 : 0;
                counters[3] += (ev & BS_EV_SEED) ? 1 : 0;
                counters[4] += (ev & BS_EV_SURFACE) ? 1 : 0;
                counters[5] += (ev & BS_EV_PERF) ? 1 : 0;
            }
}

extern "C" void bonesim_host_step_blocks(const bs_u32* src, bs_u32* dst, bs_i32* rmap, bs_i32* fmap,
                                         bs_u64* counters, int nz, int ny, int nx, int halo, bs_i64 oz, bs_i64 oy,
                                         bs_i64 ox, bs_i64 gz, bs_i64 gy, bs_i64 gx, int map_day, const bs_u32* p) {
    BsGeom g;
    g.nz = nz; g.ny = ny; g.nx = nx; g.halo = halo;
    g.oz = oz; g.oy = oy; g.ox = ox; g.gz = gz; g.gy = gy; g.gx = gx;
    BsStep s;
    s.act_thr = p[0]; s.erode = p[1]; s.depth = p[2]; s.form = p[3]; s.rev_steps = p[4];
    s.f_q16 = p[5]; s.lat0 = p[6]; s.cost1 = p[7]; s.cost2 = p[8]; s.cost3 = p[9]; s.key = p[10];
    const int iz_n = nz - 2 * halo, iy_n = ny - 2 * halo, ix_n = nx - 2 * halo;
    static bs_u32 tile[BS_TILE];
    for (int c = 0; c < 6; ++c) counters[c] = 0;
    for (int z0 = 0; z0 < iz_n; z0 += BONESIM_BZ)
        for (int y0 = 0; y0 < iy_n; y0 += BONESIM_BY)
            for (int x0 = 0; x0 < ix_n; x0 += BONESIM_BX) {
                for (int i = 0; i < BS_TILE; ++i) tile[i] = bs_tile_value(src, g, z0, y0, x0, i);
                for (int tz = 0; tz < BONESIM_BZ; ++tz)
                    for (int ty = 0; ty < BONESIM_BY; ++ty)
                        for (int tx = 0; tx < BONESIM_BX; ++tx) {
                            bs_u32 c[6];
                            bs_block_voxel(tile, g, s, z0, y0, x0, tz, ty, tx, dst, rmap, fmap, map_day, c);
                            for (int k = 0; k < 6; ++k) counters[k] += c[k];
                        }
            }
}

// Emulation of the z-marching kernel: per column block, the three-plane ring
// is filled and advanced exactly as on the GPU, then every thread's voxel runs.
extern "C" void bonesim_host_step_zm(const bs_u32* src, bs_u32* dst, bs_i32* rmap, bs_i32* fmap, bs_u64* counters,
                                     int nz, int ny, int nx, int halo, bs_i64 oz, bs_i64 oy, bs_i64 ox, bs_i64 gz,
                                     bs_i64 gy, bs_i64 gx, int map_day, const bs_u32* p) {
    BsGeom g;
    g.nz = nz; g.ny = ny; g.nx = nx; g.halo = halo;
    g.oz = oz; g.oy = oy; g.ox = ox; g.gz = gz; g.gy = gy; g.gx = gx;
    BsStep s;
    s.act_thr = p[0]; s.erode = p[1]; s.depth = p[2]; s.form = p[3]; s.rev_steps = p[4];
    s.f_q16 = p[5]; s.lat0 = p[6]; s.cost1 = p[7]; s.cost2 = p[8]; s.cost3 = p[9]; s.key = p[10];
    const int iz_n = nz - 2 * halo, iy_n = ny - 2 * halo, ix_n = nx - 2 * halo;
    static bs_u32 ring[3 * BS_ZPLANE];
    for (int c = 0; c < 6; ++c) counters[c] = 0;
    for (int zbeg = 0; zbeg < iz_n; zbeg += BONESIM_ZCHUNK)
        for (int y0 = 0; y0 < iy_n; y0 += BONESIM_ZBY)
            for (int x0 = 0; x0 < ix_n; x0 += BONESIM_ZBX) {
                const int zend = zbeg + BONESIM_ZCHUNK < iz_n ? zbeg + BONESIM_ZCHUNK : iz_n;
                for (int i = 0; i < BS_ZPLANE; ++i) {
                    ring[i] = bs_plane_value(src, g, zbeg - 1, y0, x0, i);
                    ring[BS_ZPLANE + i] = bs_plane_value(src, g, zbeg, y0, x0, i);
                }
                for (int z = zbeg; z < zend; ++z) {
                    BsRingNb nb;
                    nb.ring = ring;
                    bs_ring_slots(z - zbeg, nb.slot);
                    for (int i = 0; i < BS_ZPLANE; ++i) ring[nb.slot[2] + i] = bs_plane_value(src, g, z + 1, y0, x0, i);
                    for (int ty = 0; ty < BONESIM_ZBY; ++ty)
                        for (int tx = 0; tx < BONESIM_ZBX; ++tx) {
                            nb.base = (ty + 1) * BS_ZTX + tx + 1;
                            bs_u32 c[6];
                            bs_apply_voxel(nb, g, s, z, y0 + ty, x0 + tx, dst, rmap, fmap, map_day, c);
                            for (int k = 0; k < 6; ++k) counters[k] += c[k];
                        }
                }
            }
}
