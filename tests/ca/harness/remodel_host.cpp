// Host harness for the CPU parity tests, built by tests/ca/test_ca_parity.py with g++.
//
// bonesim_host_launch runs a kernel launch on the CPU: for every block of the
// grid it calls the very block body the CUDA kernel calls (bs_tile_block /
// bs_zm_block of kernels/remodel_block.cuh) through HostExec, an execution
// policy that emulates the block's threads. Work between two barriers is
// queued and, at the barrier, run thread after thread (thread t finishes all
// of it before thread t+1 starts: a schedule a GPU may pick), so a missing or
// misplaced barrier makes a thread read an unstaged, poisoned tile cell. The
// thread order inside a phase is a parameter (ascending, descending,
// interleaved): with correct barriers every order gives the same bits.
// Counters are added per block into slot blin % NSLOT like the kernel's
// atomics. The arguments after the launch configuration are the kernel's own
// (bonesim/ca/kernel_abi.py KERNEL_ARGS), the structs by pointer.
//
// bonesim_host_step is the plain reference loop (no tiles, no threads): a
// whole-volume padded copy and bs_apply_voxel on every voxel.
#include <cstddef>
#include <cstring>
#include <functional>
#include <vector>

#include "remodel_block.cuh"

namespace {

const bs_u32 POISON = 0xA5A5A5A5u;  // shared memory is uninitialised on the GPU

struct HostExec {
    int nthreads;
    int order;    // 0 ascending, 1 descending, 2 interleaved (odd threads first)
    int variant;  // 0 tile, 1 z-march
    std::vector<BsThread> regs;
    std::vector<std::function<void(int, BsThread&)>> pending;
    int phases = 0;

    HostExec(int n, int ord, int var) : nthreads(n), order(ord), variant(var), regs(n) {
        for (auto& r : regs) r.bone = r.ev = r.vote = r.d0 = r.d1 = r.tiles = r.busy = 0u;
    }
    template <class F>
    void each(F f) {
        pending.emplace_back(f);
    }
    void sync() { flush(); }
    // __syncthreads_or: the barrier, then every thread sees whether any thread's vote was nonzero
    void sync_or() {
        flush();
        bs_u32 any = 0u;
        for (const auto& r : regs) any |= r.vote != 0u;
        for (auto& r : regs) r.vote = any;
    }
    bool voted() const { return regs[0].vote != 0u; }  // after sync_or: the same in every thread
    // the kernel's thread index: tid = (tz * BY + ty) * BX + tx (the z-march block is 2-D, tz = 0)
    void thread3(int tid, int& tz, int& ty, int& tx) const {
        const int bx = variant == 0 ? BONESIM_BX : BONESIM_ZBX, by = variant == 0 ? BONESIM_BY : BONESIM_ZBY;
        tx = tid % bx;
        ty = (tid / bx) % by;
        tz = tid / (bx * by);
    }
    int thread_at(int i) const {
        if (order == 1) return nthreads - 1 - i;
        if (order == 2) {
            const int odd = nthreads / 2;
            return i < odd ? 2 * i + 1 : 2 * (i - odd);
        }
        return i;
    }
    void flush() {
        for (int i = 0; i < nthreads; ++i) {
            const int t = thread_at(i);
            for (auto& f : pending) f(t, regs[t]);
        }
        if (!pending.empty()) ++phases;
        pending.clear();
    }
};

void add_block_counters(const HostExec& ex, int blin, bs_u64* counters) {
    for (int k = 0; k < BS_NACC; ++k) {
        bs_u64 v = 0;
        for (const auto& r : ex.regs) v += bs_counter(r, k);
        counters[(blin % BONESIM_NSLOT) * BONESIM_NCOUNT + k] += v;
    }
    counters[(blin % BONESIM_NSLOT) * BONESIM_NCOUNT + BS_TILES_COUNTER] += ex.regs[0].tiles;
}

struct HostNb {
    const bs_u32* pad;
    bs_i64 base, sz, sy;
    bs_u32 operator()(int k) const { return pad[base + bs_dz(k) * sz + bs_dy(k) * sy + bs_dx(k)]; }
};

}  // namespace

// sizeof and offsetof of the kernel's structs, for the layout test against kernel_abi.py.
extern "C" void bonesim_host_abi(bs_u64* out) {
    out[0] = sizeof(BsGeom);
    const bs_u64 g[10] = {offsetof(BsGeom, nz), offsetof(BsGeom, ny), offsetof(BsGeom, nx), offsetof(BsGeom, halo),
                          offsetof(BsGeom, oz), offsetof(BsGeom, oy), offsetof(BsGeom, ox), offsetof(BsGeom, gz),
                          offsetof(BsGeom, gy), offsetof(BsGeom, gx)};
    std::memcpy(out + 1, g, sizeof g);
    out[11] = sizeof(BsStep);
    const bs_u64 s[15] = {offsetof(BsStep, act_thr), offsetof(BsStep, erode), offsetof(BsStep, depth),
                          offsetof(BsStep, form), offsetof(BsStep, rev_steps), offsetof(BsStep, f_q16),
                          offsetof(BsStep, lat0), offsetof(BsStep, cost1), offsetof(BsStep, cost2),
                          offsetof(BsStep, cost3), offsetof(BsStep, seed_lo),
                          offsetof(BsStep, seed_hi), offsetof(BsStep, step), offsetof(BsStep, mech_on),
                          offsetof(BsStep, mod_on)};
    std::memcpy(out + 12, s, sizeof s);
    out[27] = BONESIM_NSLOT;
    out[28] = BONESIM_NCOUNT;
    out[29] = BS_NACC;
}

// One launch of kernel `variant` (0 tile, 1 z-march) with grid (gx, gy, gz) and block (bx, by, bz).
// Returns 0, or -1 when the block shape is not the one the body was compiled for (the launcher's bug).
extern "C" int bonesim_host_launch(int variant, int gx, int gy, int gz, int bx, int by, int bz, int order,
                                   const bs_u32* src, bs_u32* dst, bs_i32* rmap, bs_i32* fmap, bs_u64* counters,
                                   const bs_u8* mech, const bs_u32* lut, const BsGeom* g, const BsStep* s,
                                   int map_day, bs_u8* tile_flags, int tile_mode) {
    const BsIO io = {src, dst, rmap, fmap, mech, lut, map_day, tile_flags, tile_mode};
    if (variant == 0 ? (bx != BONESIM_BX || by != BONESIM_BY || bz != BONESIM_BZ)
                     : (bx != BONESIM_ZBX || by != BONESIM_ZBY || bz != 1))
        return -1;
    std::vector<bs_u32> smem(variant == 0 ? BS_TILE : 3 * BS_ZPLANE);
    for (int kz = 0; kz < gz; ++kz)
        for (int ky = 0; ky < gy; ++ky)
            for (int kx = 0; kx < gx; ++kx) {
                for (auto& v : smem) v = POISON;
                HostExec ex(bx * by * bz, order, variant);
                if (variant == 0)
                    bs_tile_block(ex, smem.data(), io, *g, *s, kz, ky, kx, gz, gy, gx);
                else
                    bs_zm_block(ex, smem.data(), io, *g, *s, kz, ky, kx);
                ex.flush();  // the rest of the block (the kernel's exit)
                add_block_counters(ex, (kz * gy + ky) * gx + kx, counters);
            }
    return 0;
}

// The plain reference loop: pad the interior with its neighbours (inert outside), apply the rule.
extern "C" void bonesim_host_step(const bs_u32* src, bs_u32* pad, bs_u32* dst, bs_i32* rmap, bs_i32* fmap,
                                  bs_u64* counters, const bs_u8* mech, const bs_u32* lut, const BsGeom* gp,
                                  const BsStep* s, int map_day, bs_u8* tile_flags, int tile_mode) {
    const BsGeom& g = *gp;
    (void)tile_flags;
    (void)tile_mode;
    const BsIO io = {src, dst, rmap, fmap, mech, lut, map_day, nullptr, -1};
    const int iz_n = g.nz - 2 * g.halo, iy_n = g.ny - 2 * g.halo, ix_n = g.nx - 2 * g.halo;
    const int PZ = iz_n + 2, PY = iy_n + 2, PX = ix_n + 2;
    for (int tz = 0; tz < PZ; ++tz)
        for (int ty = 0; ty < PY; ++ty)
            for (int tx = 0; tx < PX; ++tx)
                pad[((bs_i64)tz * PY + ty) * PX + tx] = bs_load_local(src, g, tz - 1 + g.halo, ty - 1 + g.halo,
                                                                      tx - 1 + g.halo);
    for (int c = 0; c < BS_NACC; ++c) counters[c] = 0;
    for (int iz = 0; iz < iz_n; ++iz)
        for (int iy = 0; iy < iy_n; ++iy)
            for (int ix = 0; ix < ix_n; ++ix) {
                HostNb nb;
                nb.pad = pad;
                nb.sz = (bs_i64)PY * PX;
                nb.sy = PX;
                nb.base = ((bs_i64)(iz + 1) * PY + iy + 1) * PX + ix + 1;
                BsThread r = {0u, 0u};  // one voxel: its counters
                bs_apply_voxel(nb, g, *s, iz, iy, ix, io, r);
                for (int k = 0; k < BS_NACC; ++k) counters[k] += bs_counter(r, k);
            }
}
