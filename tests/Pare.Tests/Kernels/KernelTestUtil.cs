using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using Pare.Kernels;
using Pare.Tensors;

namespace Pare.Tests.Kernels;

internal static class KernelTestUtil
{
    /// <summary>Deterministic roughly Gaussian values (sum of uniforms), with a few larger outliers like real weights.</summary>
    public static float[] Random(int n, int seed, float scale = 1f)
    {
        var rng = new Random(seed);
        var v = new float[n];
        for (int i = 0; i < n; i++)
        {
            double g = rng.NextDouble() + rng.NextDouble() + rng.NextDouble() - 1.5;
            if (rng.Next(64) == 0) g *= 6;
            v[i] = (float)(g * scale);
        }
        return v;
    }

    /// <summary>A weight matrix over pinned bytes (the array must stay referenced while the matrix is used).</summary>
    public static unsafe WeightMatrix Matrix(GgmlType type, int rows, int cols, byte[] bytes, out byte[] pinned)
    {
        pinned = GC.AllocateArray<byte>(bytes.Length, pinned: true);
        bytes.CopyTo(pinned, 0);
        nint data = (nint)Unsafe.AsPointer(ref MemoryMarshal.GetArrayDataReference(pinned));
        return new WeightMatrix($"test_{type}", type, rows, cols, data, bytes.Length);
    }

    public static WeightMatrix RandomMatrix(GgmlType type, int rows, int cols, int seed, out byte[] pinned) =>
        Matrix(type, rows, cols, Quantizer.Quantize(type, Random(rows * cols, seed, 0.05f)), out pinned);

    /// <summary>sum((a - b)^2) / sum(b^2), as ggml's test-backend-ops.</summary>
    public static double Nmse(ReadOnlySpan<float> a, ReadOnlySpan<float> b)
    {
        Assert.Equal(b.Length, a.Length);
        double num = 0, den = 0;
        for (int i = 0; i < a.Length; i++)
        {
            Assert.False(float.IsNaN(a[i]), $"NaN at {i}");
            num += ((double)a[i] - b[i]) * ((double)a[i] - b[i]);
            den += (double)b[i] * b[i];
        }
        return den == 0 ? num : num / den;
    }

    public static ushort Half(float f) => BitConverter.HalfToUInt16Bits((Half)f);
}
