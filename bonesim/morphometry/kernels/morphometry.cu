// Local thickness on the GPU (bonesim.morphometry.gpu): distance ridge and ball painting.
// Integer arithmetic only: results equal the CPU path bit for bit.
//
// d2   : int32 [nz*ny*nx] squared EDT (voxels^2), 0 outside the phase
// need : int32 [4*(dmax+1)] need[k*(dmax+1) + D] = smallest squared radius a neighbour at
//        squared offset k (1, 2, 3) needs for its lattice ball to hold the ball {|q|^2 < D}
// keep : uint8 [n] 1 where the voxel is a ridge centre

__device__ __forceinline__ int isqrt_below(int v) {
    // largest r >= 0 with r*r < v (v >= 1)
    int r = (int)sqrtf((float)v);
    while (r * r >= v) --r;
    while ((r + 1) * (r + 1) < v) ++r;
    return r;
}

extern "C" __global__ void bonesim_morph_ridge_n26(const int* __restrict__ d2, const int* __restrict__ need,
                                                   unsigned char* __restrict__ keep, int nz, int ny, int nx,
                                                   int dmax) {
    long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    long long n = (long long)nz * ny * nx;
    if (i >= n) return;
    int d = d2[i];
    if (d == 0) { keep[i] = 0; return; }
    int x = (int)(i % nx);
    int y = (int)((i / nx) % ny);
    int z = (int)(i / ((long long)nx * ny));
    unsigned char ok = 1;
    for (int dz = -1; dz <= 1 && ok; ++dz) {
        int zz = z + dz;
        if (zz < 0 || zz >= nz) continue;
        for (int dy = -1; dy <= 1 && ok; ++dy) {
            int yy = y + dy;
            if (yy < 0 || yy >= ny) continue;
            for (int dx = -1; dx <= 1; ++dx) {
                int xx = x + dx;
                if (xx < 0 || xx >= nx) continue;
                int cls = dz * dz + dy * dy + dx * dx;
                if (cls == 0) continue;
                if (d2[((long long)zz * ny + yy) * nx + xx] >= need[cls * (dmax + 1) + d]) { ok = 0; break; }
            }
        }
    }
    keep[i] = ok;
}

// One warp per ridge centre; its lanes share the rows (dz, dy) of the ball and write
// max(out, D) along each row chord {dx : dz^2 + dy^2 + dx^2 < D}.
extern "C" __global__ void bonesim_morph_paint_balls_warp(const int* __restrict__ cz, const int* __restrict__ cy,
                                                          const int* __restrict__ cx, const int* __restrict__ cd,
                                                          long long ncentres, int* __restrict__ out, int nz,
                                                          int ny, int nx) {
    long long warp = ((long long)blockIdx.x * blockDim.x + threadIdx.x) / 32;
    int lane = threadIdx.x % 32;
    if (warp >= ncentres) return;
    int d = cd[warp];
    int zc = cz[warp], yc = cy[warp], xc = cx[warp];
    int r = isqrt_below(d);
    int side = 2 * r + 1;
    for (int row = lane; row < side * side; row += 32) {
        int dz = row / side - r;
        int dy = row % side - r;
        int rem = d - dz * dz - dy * dy;
        if (rem <= 0) continue;
        int z = zc + dz, y = yc + dy;
        if (z < 0 || z >= nz || y < 0 || y >= ny) continue;
        int rx = isqrt_below(rem);
        int xa = max(0, xc - rx), xb = min(nx - 1, xc + rx);
        int* base = out + ((long long)z * ny + y) * nx;
        for (int x = xa; x <= xb; ++x) {
            if (base[x] < d) atomicMax(base + x, d);
        }
    }
}
