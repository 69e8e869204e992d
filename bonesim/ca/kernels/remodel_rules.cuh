// bonesim remodeling CA: the per-voxel rule of one step (see docs/model.md).
//
// State: one 32-bit word per voxel,
//   bits  0-7   bone   mineralised fraction 0..255
//   bits  8-15  phase byte: bits 0-1 phase (0 quiescent, 1 resorbing,
//               2 reversal, 3 forming); bits 2-7 a payload whose meaning
//               depends on the phase (see below)
//   bits 16-31  timer  16-bit field whose meaning depends on the phase
// Phase byte / timer layouts:
//   Q  quiescent   payload 0, timer 0 (marrow if bone == 0)
//                  a marrow voxel may start modeling-based formation (F, bone 0, timer BS_MODEL_BUDGET)
//   R  resorbing   bit 2 = top (a front recruited on the surface), bits 3-7 =
//                  direction code d of its column (0..26, 13 = none)
//        front     bone > 0: erodes; timer = removed so far (top: lateral
//                  budget << 8 | removed, removed <= 255)
//        handover  bone == 0, timer > 0: emptied, passes the column on to d
//        passive   bone == 0, timer == 0: emptied voxel above the column front
//   V  reversal    bits 2-7 = steps spent in reversal; timer = bone removed by the column
//   F  forming     timer = bone still to lay down (formation budget)
// A neighbour outside the global volume reads as BONESIM_INERT: neither
// marrow nor bone nor part of a BMU (the outer boundary is inert).
//
// The rule reads only the old words of the voxel and its 26 neighbours, so
// the update is order-free (double buffered), chunkable with a 1-voxel halo,
// and identical in CUDA, in this header compiled for the host, and in the
// NumPy backend (bonesim/backends/numpy_backend.py mirrors it line by line).
#ifndef BONESIM_REMODEL_RULES_CUH
#define BONESIM_REMODEL_RULES_CUH

#include "common.cuh"

#ifndef BONESIM_NEIGH
#define BONESIM_NEIGH 26
#endif

#define BS_PH_Q 0u
#define BS_PH_R 1u
#define BS_PH_V 2u
#define BS_PH_F 3u
#define BS_TOP 4u
#define BONESIM_INERT 0x00000400u

#if defined(__CUDACC__) || defined(__CUDACC_RTC__)
#define BS_UNROLL _Pragma("unroll")
#else
#define BS_UNROLL
#endif

// Events of one voxel-step, each a one in its own 6-bit field of the event word, so that a thread
// sums its events over several voxels with one addition (remodel_block.cuh, BsThread): up to 63 voxels
// per thread between two reductions.
#define BS_EV_SHIFT 6
#define BS_EV_RECRUIT (1u << (0 * BS_EV_SHIFT))
#define BS_EV_SEED (1u << (1 * BS_EV_SHIFT))
#define BS_EV_SURFACE (1u << (2 * BS_EV_SHIFT))
#define BS_EV_PERF (1u << (3 * BS_EV_SHIFT))
#define BS_EV_MODEL (1u << (4 * BS_EV_SHIFT))
#define BS_NEV 5

// Mechanoregulation tables in `lut`: entries 0..255 the activation weight of each class (8.8),
// entries 256..511 the modeling-formation threshold of each class (a random word below it starts).
#define BS_N_CLASSES 256
// Formation budget of a modeling seed: one voxel of bone.
#define BS_MODEL_BUDGET 255u

// Host-computed integer inputs of one step (no floats in the rule).
struct BsStep {
    bs_u32 act_thr;    // activation: random word < act_thr
    bs_u32 erode;      // bone units a resorbing front removes this step
    bs_u32 depth;      // bone units one column removes in total (erosion depth E)
    bs_u32 form;       // bone units a forming front lays down this step
    bs_u32 rev_steps;  // reversal duration in steps (<= 62)
    bs_u32 f_q16;      // formation efficiency, 16.16 fixed point
    bs_u32 lat0;       // lateral budget of a new seed (footprint radius L)
    bs_u32 cost1, cost2, cost3;  // lateral cost of a face / edge / corner step
    bs_u32 seed_lo, seed_hi;  // the run's 64-bit seed: the Philox key
    bs_u32 step;       // step number: a Philox counter word
    bs_u32 mech_on;    // 1: the activation threshold of a surface voxel is scaled by lut[mech] (mechanoregulation)
    bs_u32 mod_on;     // 1 (with mech_on): loaded marrow voxels start modeling-based formation, lut[256 + mech]
};

BONESIM_HD bool bs_in_neigh(int k) {
#if BONESIM_NEIGH == 6
    return k == 4 || k == 10 || k == 12 || k == 14 || k == 16 || k == 22;
#else
    return k != 13;
#endif
}

// Bone units a column along direction d removes: E is measured along the
// column, whose voxels are |d| = sqrt(norm1) voxel edges apart, so a diagonal
// column removes depth/sqrt(2) or depth/sqrt(3) (16.16 fixed point). Oblique
// surfaces carry sqrt(2)/sqrt(3) times more surface voxels per area, so the
// volume resorbed per area of surface is E in every orientation.
BONESIM_HD bs_u32 bs_column_depth(bs_u32 depth, int d) {
    const int n = bs_norm1(d);
    const bs_u32 k = n == 3 ? 37837u : (n == 2 ? 46341u : 65536u);
    return (bs_u32)(((bs_u64)depth * (bs_u64)k) >> 16);
}

// Direction code of a resorbing voxel's column. The field has 5 bits (0..31) but only 0..26 are
// neighbours: a corrupted code (27..31) reads as 13, "no direction", so nb(d) never leaves the
// 3x3x3 neighbourhood (the shared tile). The NumPy backend applies the same mapping.
BONESIM_HD bs_u32 bs_column_dir(bs_u32 pb) {
    const bs_u32 d = pb >> 3;
    return d < 27u ? d : 13u;
}

BONESIM_HD bs_u32 bs_word(bs_u32 bone, bs_u32 pbyte, bs_u32 timer) {
    return bone | (pbyte << 8) | (timer << 16);
}

BONESIM_HD int bs_sign(int v) { return (v > 0) - (v < 0); }

// Two column directions meet head-on when they are at least 120 degrees apart
// (cos <= -1/2). A looser test (any obtuse angle) fires where the quantised
// inward normals of a curved surface converge, and perforates spheres.
BONESIM_HD bool bs_head_on(int a, int b) {
    const int d = bs_dot(a, b);
    return d < 0 && 4 * d * d >= bs_norm1(a) * bs_norm1(b);
}

// Activation threshold of a surface voxel under mechanoregulation: act_thr times the weight of its
// mechanical-signal class (8.8 fixed point, computed on the host per FE solve), saturating.
BONESIM_HD bs_u32 bs_mech_threshold(bs_u32 act_thr, bs_u32 weight_q8) {
    const bs_u64 t = ((bs_u64)act_thr * (bs_u64)weight_q8) >> 8;
    return t > 0xFFFFFFFFull ? 0xFFFFFFFFu : (bs_u32)t;
}

// Modeling-based formation (s.mod_on): a marrow voxel whose class has a nonzero threshold
// lut[256 + mech[o]] (its absolute signal is above the modeling threshold) and that touches quiescent
// bone across a face starts forming one voxel of bone when its modeling draw is below the threshold.
// Face neighbours only: the new bone is face-connected to the bone it grows on, so it never joins two
// struts that merely touch at an edge or a corner (no new handles through diagonal contacts).
template <class Nb>
BONESIM_HD bs_u32 bs_modeling(const Nb& nb, const BsStep& s, const bs_u8* mech, bs_i64 o, const bs_u32* lut,
                              bs_u32 idx_hi, bs_u32 idx_lo, bs_u32 w, bs_u32* ev) {
    const bs_u32 thr = lut[BS_N_CLASSES + mech[o]];
    if (thr == 0u) return w;  // below the modeling threshold: marrow stays marrow (no neighbour read)
    const int faces[6] = {4, 10, 12, 14, 16, 22};
    bool sup = false;
    BS_UNROLL
    for (int i = 0; i < 6; ++i) {
        const bs_u32 y = nb(faces[i]);
        if ((y & 0xFF00u) == 0u && (y & 0xFFu) > 0u) sup = true;  // quiescent bone
    }
    if (!sup) return w;
    if (bs_voxel_random(s.seed_lo, s.seed_hi, s.step, BS_STREAM_MODELING, idx_hi, idx_lo) >= thr) return w;
    *ev |= BS_EV_MODEL;
    return bs_word(0u, BS_PH_F, BS_MODEL_BUDGET);
}

// One voxel, one step. `nb(k)` returns the old word of neighbour k (13 = self). mech[o] is the voxel's
// mechanical-signal class and lut the class tables; both are read only when s.mech_on (the modeling
// half of lut only when s.mod_on).
template <class Nb>
BONESIM_HD bs_u32 bonesim_rule(const Nb& nb, const BsStep& s, const bs_u8* mech, bs_i64 o, const bs_u32* lut,
                               bs_u32 idx_hi, bs_u32 idx_lo, bs_u32* ev) {
    const bs_u32 w = nb(13);
    const bs_u32 b = w & 0xFFu;
    const bs_u32 pb = (w >> 8) & 0xFFu;
    const bs_u32 t = w >> 16;
    *ev = 0u;

    if (pb == 0u) {  // ------------------------------------------- quiescent
        if (b == 0u) return s.mod_on ? bs_modeling(nb, s, mech, o, lut, idx_hi, idx_lo, w, ev) : w;  // marrow
        if (b == 255u) {  // fast path: full bone amid full quiescent bone cannot change (no marrow, no BMU)
            bs_u32 all = 0xFFFFFFFFu, any = 0u;
            BS_UNROLL
            for (int k = 0; k < 27; ++k) {
                const bs_u32 y = nb(k);
                all &= y;
                any |= y;
            }
            if (all == 0xFFu && any == 0xFFu) return w;
        }
        // one pass over the neighbours (each read once):
        //  - surface: a marrow neighbour in the neighbourhood; inward normal = -sign(sum of offsets)
        //  - column hand-over: a neighbour whose emptied column front points at this voxel
        int sz = 0, sy = 0, sx = 0;
        bool surf = false;
        int best = -1;
        bs_u32 bt = 0u;
        BS_UNROLL
        for (int k = 0; k < 27; ++k) {
            if (k == 13) continue;
            const bs_u32 y = nb(k);
            if (bs_in_neigh(k) && (y & 0xFFFFu) == 0u) {
                surf = true;
                sz += bs_dz(k);
                sy += bs_dy(k);
                sx += bs_dx(k);
            }
            const bs_u32 ypb = (y >> 8) & 0xFFu;
            if ((ypb & 3u) == BS_PH_R && (y & 0xFFu) == 0u && (y >> 16) > bt && (int)(ypb >> 3) == 26 - k) {
                bt = y >> 16;
                best = k;
            }
        }
        if (surf) *ev |= BS_EV_SURFACE;
        // 1. a column front above emptied and hands its column on to this voxel
        if (best >= 0) return bs_word(b, BS_PH_R | ((bs_u32)(26 - best) << 3), bt);
        if (!surf) return w;
        const int d = (1 - bs_sign(sz)) * 9 + (1 - bs_sign(sy)) * 3 + (1 - bs_sign(sx));
        // 2. lateral recruitment into the footprint of a neighbouring top front on the same side
        int bestc = 0;
        BS_UNROLL
        for (int k = 0; k < 27; ++k) {
            if (!bs_in_neigh(k)) continue;
            const bs_u32 y = nb(k);
            const bs_u32 ypb = (y >> 8) & 0xFFu;
            if ((ypb & 3u) != BS_PH_R || (ypb & BS_TOP) == 0u) continue;
            const int lat = (int)(y >> 24);
            if (lat == 0 || bs_dot((int)(ypb >> 3), d) <= 0) continue;
            const int n1 = bs_norm1(k);
            const int cost = (int)(n1 == 1 ? s.cost1 : (n1 == 2 ? s.cost2 : s.cost3));
            const int c = lat - cost;
            if (c > bestc) bestc = c;
        }
        if (bestc > 0) {
            *ev |= BS_EV_RECRUIT;
            return bs_word(b, BS_PH_R | BS_TOP | ((bs_u32)d << 3), (bs_u32)bestc << 8);
        }
        // 3. activation of a new BMU
        const bs_u32 thr = s.mech_on ? bs_mech_threshold(s.act_thr, lut[mech[o]]) : s.act_thr;
        if (bs_voxel_random(s.seed_lo, s.seed_hi, s.step, BS_STREAM_ACTIVATION, idx_hi, idx_lo) < thr) {
            *ev |= BS_EV_RECRUIT | BS_EV_SEED;
            return bs_word(b, BS_PH_R | BS_TOP | ((bs_u32)d << 3), s.lat0 << 8);
        }
        return w;
    }

    const bs_u32 ph = pb & 3u;
    if (ph == BS_PH_R) {  // ------------------------------------------ resorbing
        const bs_u32 d = bs_column_dir(pb);
        if (b > 0u) {  // front: erode
            const bs_u32 r = (pb & BS_TOP) ? (t & 0xFFu) : t;
            // the opposite surface: this voxel is the last layer of the element along the column when
            // straight ahead is marrow, or a column coming head-on from the other side (the opposite
            // surface under resorption); it becomes the floor uneroded (nb(13) = self holds bone and
            // has no direction: "no direction" goes on). Except where the cavity is as deep as the
            // element: when the bone removed so far plus this last layer is within the column's
            // depth, the front erodes on and cuts the element (a single cavity perforates a plate
            // thinner than the erosion depth; Parfitt's mechanism of trabecular perforation).
            const bs_u32 dep = bs_column_depth(s.depth, (int)d);
            const bs_u32 ya = nb((int)d);
            const bs_u32 yapb = (ya >> 8) & 0xFFu;
            const bool ahead_marrow = (ya & 0xFFFFu) == 0u;
            if ((ahead_marrow && r + b > dep) ||
                ((yapb & 3u) == BS_PH_R && bs_head_on((int)(yapb >> 3), (int)d)))
                return bs_word(b, BS_PH_V, r);
            const bs_u32 room = dep > r ? dep - r : 0u;
            const bs_u32 a = bs_min(b, bs_min(s.erode, room));
            const bs_u32 nbone = b - a;
            const bs_u32 nr = r + a;
            if (nr >= dep) return bs_word(nbone, BS_PH_V, nr);          // floor: depth reached
            if (nbone == 0u) return bs_word(0u, BS_PH_R | (d << 3), nr);  // emptied: hand over
            return bs_word(nbone, pb, nr);                               // keep eroding (lateral budget spent)
        }
        if (t > 0u) {  // handover: the next voxel along the column takes it, or the column ends
            if (d == 13u) {  // no direction: marrow on opposite sides, cut through
                *ev |= BS_EV_PERF;
                return bs_word(0u, BS_PH_F, 0u);
            }
            const bs_u32 y = nb((int)d);
            const bs_u32 ypb = (y >> 8) & 0xFFu;
            const bs_u32 yb = y & 0xFFu;
            if (ypb == 0u) {
                if (yb == 0u) {  // straight ahead is marrow: perforation, not refilled
                    *ev |= BS_EV_PERF;
                    return bs_word(0u, BS_PH_F, 0u);
                }
                return w;  // bone ahead is taking the column over this step
            }
            if ((ypb & 3u) == BS_PH_R) {
                if (yb > 0u && (ypb & BS_TOP) == 0u && (ypb >> 3) == d) return bs_word(0u, BS_PH_R | (d << 3), 0u);
                if (yb == 0u && bs_head_on((int)(ypb >> 3), (int)d)) {  // an emptied column coming head-on: cut
                    *ev |= BS_EV_PERF;
                    return bs_word(0u, BS_PH_F, 0u);
                }
            }
            return bs_word(0u, BS_PH_V, t);  // blocked (a head-on front still holding bone too): the floor
        }
        // passive: wait until the voxel below has refilled, then take over its budget
        const bs_u32 y = nb((int)d);
        const bs_u32 ypb = (y >> 8) & 0xFFu;
        if ((ypb & 3u) == BS_PH_F && ((y & 0xFFu) == 255u || (y >> 16) == 0u)) return bs_word(0u, BS_PH_F, y >> 16);
        if (ypb == 0u) return bs_word(0u, BS_PH_F, 0u);  // column gone (safety)
        return w;
    }

    if (ph == BS_PH_V) {  // ------------------------------------------- reversal
        // formation starts after the reversal delay where there is bone to build on: the
        // floor itself, or any neighbour holding bone (quiescent, or a neighbouring floor)
        bs_u32 c = (pb >> 2) + 1u;
        if (c > 63u) c = 63u;
        if (c >= s.rev_steps) {
            bool sup = b > 0u;
            BS_UNROLL
            for (int k = 0; k < 27; ++k) {
                if (!bs_in_neigh(k)) continue;
                const bs_u32 y = nb(k);
                if ((y & 0xFFu) > 0u) sup = true;  // any mineralised neighbour to build on
            }
            if (sup) {
                bs_u64 budget = ((bs_u64)t * (bs_u64)s.f_q16) >> 16;
                if (budget > 65535ull) budget = 65535ull;
                return bs_word(b, BS_PH_F, (bs_u32)budget);
            }
            if (c >= 63u) return bs_word(b, BS_PH_F, 0u);  // nothing to build on: abandoned
        }
        return bs_word(b, BS_PH_V | (c << 2), t);
    }

    // -------------------------------------------------------------- forming
    if (b == 255u || t == 0u) return b;  // refilled or budget spent: quiescent
    const bs_u32 a = bs_min(s.form, bs_min(255u - b, t));
    return bs_word(b + a, BS_PH_F, t - a);
}

#endif  // BONESIM_REMODEL_RULES_CUH
