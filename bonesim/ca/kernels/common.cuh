// bonesim kernels: shared types, the counter-based hash RNG and neighbour offsets.
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

// murmur3 finaliser: a bijection of 32-bit words with full avalanche.
BONESIM_HD bs_u32 bs_fmix32(bs_u32 h) {
    h ^= h >> 16;
    h *= 0x85EBCA6Bu;
    h ^= h >> 13;
    h *= 0xC2B2AE35u;
    h ^= h >> 16;
    return h;
}

// Random word of one voxel at one step. `key` = fmix32(fmix32(fmix32(seed +
// 0x9E3779B9) ^ step) ^ stream), computed once per step on the host; the
// global voxel index enters as two 32-bit words (volumes above 2^32 voxels).
BONESIM_HD bs_u32 bs_voxel_hash(bs_u32 key, bs_u32 idx_hi, bs_u32 idx_lo) {
    return bs_fmix32(bs_fmix32(key ^ idx_hi) ^ idx_lo);
}

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
