namespace Pare.Kernels;

/// <summary>
/// What a weight format provides to the generic matrix drivers in <see cref="MatMul"/>. Implemented by one struct per
/// format so the drivers are specialized (and the calls inlined) per format by the JIT. All fast members may use
/// AVX-512; the drivers only call them when <see cref="MatMul.Avx512"/> holds.
/// </summary>
internal unsafe interface IRowKernel
{
    /// <summary>Floats of per-call activation data <see cref="Prepare"/> writes (0 if none).</summary>
    static abstract int PrepFloats(int cols);

    /// <summary>Precomputes what every row's dot product needs from x (block sums, a rescaled copy, ...).</summary>
    static abstract void Prepare(float* x, int cols, float* prep);

    /// <summary>y[k] = dot(row k, x) for the four rows r0..r3 (the drivers repeat a row to pad a group).</summary>
    static abstract void Dot4(byte* r0, byte* r1, byte* r2, byte* r3, float* x, float* prep, int cols, float* y);

    /// <summary>Fast dequantization of one row to F32 (cols values); must agree with the reference to rounding.</summary>
    static abstract void DequantRow(byte* src, float* dst, int cols);
}
