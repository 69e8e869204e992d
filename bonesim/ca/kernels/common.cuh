// bonesim kernels: shared types, the counter-based RNG (Philox-4x32-10) and neighbour offsets.
//
// Everything here is integer-only and compiles as CUDA (nvcc / NVRTC through
// CuPy) and as plain C++ (g++ host harness used by the CPU parity test), so the
// GPU kernel and the CPU reference apply literally the same code.
#ifndef BONESIM_COMMON_CUH
#define BONESIM_COMMON_CUH

#if defined(__CUDACC__) || defined(__CUDACC_RTC__)
#define BONESIM_HD __host__ __device__ __forceinline__
#else
#define BONESIM_HD inline
#endif

typedef unsigned char bs_u8;
typedef unsigned short bs_u16;
typedef unsigned int bs_u32;
typedef int bs_i32;
typedef long long bs_i64;
typedef unsigned long long bs_u64;

// Philox-4x32-10 (Salmon, Moraes, Dror & Shaw, SC'11): a counter-based RNG; one call maps a
// 128-bit counter and a 64-bit key to 128 random bits, with no state carried between calls.
BONESIM_HD void bs_mulhilo(bs_u32 a, bs_u32 b, bs_u32* hi, bs_u32* lo) {
#if defined(__CUDA_ARCH__)
    *hi = __umulhi(a, b);
    *lo = a * b;
#else
    const bs_u64 p = (bs_u64)a * (bs_u64)b;
    *hi = (bs_u32)(p >> 32);
    *lo = (bs_u32)p;
#endif
}

BONESIM_HD void bs_philox4x32_10(bs_u32 c[4], bs_u32 k0, bs_u32 k1) {
    for (int r = 0; r < 10; ++r) {
        bs_u32 hi0, lo0, hi1, lo1;
        bs_mulhilo(0xD2511F53u, c[0], &hi0, &lo0);
        bs_mulhilo(0xCD9E8D57u, c[2], &hi1, &lo1);
        const bs_u32 n0 = hi1 ^ c[1] ^ k0, n2 = hi0 ^ c[3] ^ k1;
        c[0] = n0;
        c[1] = lo1;
        c[2] = n2;
        c[3] = lo0;
        k0 += 0x9E3779B9u;
        k1 += 0xBB67AE85u;
    }
}

// Random word of one voxel at one step of one stream: Philox-4x32-10 with key = the run's 64-bit
// seed and counter = (global voxel index lo, hi, step, stream); the first output word.
// bonesim/ca/rng.py computes the same words with NumPy.
BONESIM_HD bs_u32 bs_voxel_random(bs_u32 seed_lo, bs_u32 seed_hi, bs_u32 step, bs_u32 stream, bs_u32 idx_hi,
                                  bs_u32 idx_lo) {
    bs_u32 c[4] = {idx_lo, idx_hi, step, stream};
    bs_philox4x32_10(c, seed_lo, seed_hi);
    return c[0];
}

// Streams of random words (the fourth counter word).
#define BS_STREAM_ACTIVATION 0u
#define BS_STREAM_MODELING 1u  // modeling-based formation on a loaded marrow voxel (bonesim/ca/rng.py)

BONESIM_HD bs_u32 bs_min(bs_u32 a, bs_u32 b) { return a < b ? a : b; }

// Neighbour k in 0..26 sits at offset (k/9-1, (k/3)%3-1, k%3-1) in (z, y, x);
// k = 13 is the voxel itself. A direction code uses the same numbering.
BONESIM_HD int bs_dz(int k) { return k / 9 - 1; }
BONESIM_HD int bs_dy(int k) { return (k / 3) % 3 - 1; }
BONESIM_HD int bs_dx(int k) { return k % 3 - 1; }
BONESIM_HD int bs_dot(int a, int b) {
    return bs_dz(a) * bs_dz(b) + bs_dy(a) * bs_dy(b) + bs_dx(a) * bs_dx(b);
}
BONESIM_HD int bs_norm1(int k) {  // 1 face, 2 edge, 3 corner neighbour
    return (bs_dz(k) != 0) + (bs_dy(k) != 0) + (bs_dx(k) != 0);
}

#define BONESIM_CAT_(a, b) a##b
#define BONESIM_CAT(a, b) BONESIM_CAT_(a, b)

#endif  // BONESIM_COMMON_CUH
