// Matrix-free stiffness product y = F K x of the voxel hexahedron mesh, node by node.
//
// Layout (all dense, C order, float64):
//   x, y   : [3][nz+1][ny+1][nx+1]  nodal displacement / force, component-major (z, y, x)
//   s      : [nz][ny][nx]           per-voxel scale E_e * h (N/mm); 0 = marrow (no element)
//   freem  : [3][nz+1][ny+1][nx+1]  1 for a free degree of freedom, 0 for a fixed one
//   ke     : constant memory, the 24 x 24 unit-cube matrix (dof 3*a + c, a = 4 dz + 2 dy + dx)
// One thread per node gathers from its (up to) 8 elements: no atomics, deterministic.
// The host emulation of this algorithm is bonesim/mechanics/cupy_backend.py::emulate_matvec.

extern "C" {

__constant__ double KE[576];

__global__ void hex8_matvec(const double* __restrict__ x, const double* __restrict__ s,
                            const double* __restrict__ freem, double* __restrict__ y,
                            const int nz, const int ny, const int nx) {
    const long long NX = nx + 1, NY = ny + 1, NZ = nz + 1;
    const long long nn = NX * NY * NZ;
    const long long n = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (n >= nn) return;
    const int ix = (int)(n % NX);
    const int iy = (int)((n / NX) % NY);
    const int iz = (int)(n / (NX * NY));
    double f0 = 0.0, f1 = 0.0, f2 = 0.0;
    for (int o = 0; o < 8; ++o) {
        const int oz = o >> 2 & 1, oy = o >> 1 & 1, ox = o & 1;
        const int ez = iz - 1 + oz, ey = iy - 1 + oy, ex = ix - 1 + ox;
        if (ez < 0 || ey < 0 || ex < 0 || ez >= nz || ey >= ny || ex >= nx) continue;
        const double se = s[((long long)ez * ny + ey) * nx + ex];
        if (se == 0.0) continue;
        const int b = 4 * (1 - oz) + 2 * (1 - oy) + (1 - ox);  // this node's corner in the element
        const double* kb = KE + 3 * b * 24;
        double g0 = 0.0, g1 = 0.0, g2 = 0.0;
        for (int a = 0; a < 8; ++a) {
            const long long m = ((long long)(ez + (a >> 2 & 1)) * NY + (ey + (a >> 1 & 1))) * NX +
                                (ex + (a & 1));
            const double u0 = x[m], u1 = x[nn + m], u2 = x[2 * nn + m];
            const int c = 3 * a;
            g0 += kb[c] * u0 + kb[c + 1] * u1 + kb[c + 2] * u2;
            g1 += kb[24 + c] * u0 + kb[24 + c + 1] * u1 + kb[24 + c + 2] * u2;
            g2 += kb[48 + c] * u0 + kb[48 + c + 1] * u1 + kb[48 + c + 2] * u2;
        }
        f0 += se * g0;
        f1 += se * g1;
        f2 += se * g2;
    }
    y[n] = freem[n] * f0;
    y[nn + n] = freem[nn + n] * f1;
    y[2 * nn + n] = freem[2 * nn + n] * f2;
}

}  // extern "C"
