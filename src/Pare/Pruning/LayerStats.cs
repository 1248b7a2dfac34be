using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;

namespace Pare.Pruning;

/// <summary>
/// What the methods need to know about the calibration inputs x of one linear-layer input (shared by the layers that
/// read it): per-column sum of x_j^2 (Wanda), optionally sum x x^T (SparseGPT's Hessian, before scaling), and a small
/// sample of raw inputs to measure the reconstruction error.
/// </summary>
public sealed class LayerStats
{
    readonly int _errorTokens;
    readonly List<float> _sample = [];

    public LayerStats(int cols, bool hessian, int errorTokens)
    {
        Cols = cols;
        SqSum = new double[cols];
        _xtx = hessian ? new double[Linalg.PackedLength(cols)] : null;
        _errorTokens = errorTokens;
    }

    public int Cols { get; }
    /// <summary>Calibration tokens seen.</summary>
    public long Tokens { get; private set; }
    /// <summary>Calibration sequences seen (SparseGPT's n).</summary>
    public int Sequences { get; private set; }
    /// <summary>sum over tokens of x_j^2.</summary>
    public double[] SqSum { get; }
    /// <summary>sum over tokens of x x^T (cols x cols, symmetric: its upper triangle packed, <see cref="Linalg.UpperIndex"/>), or null when not collected.</summary>
    public double[]? XtX => _handedOver ? null : _xtx;
    /// <summary>Up to ErrorTokens raw inputs (tokens x cols), the first seen.</summary>
    public float[] Sample => [.. _sample];
    public int SampleTokens => _sample.Count / Cols;

    /// <summary>Adds one sequence's inputs (n x cols, row-major).</summary>
    public void Add(ReadOnlySpan<float> x, int n, int threads)
    {
        if (_handedOver) throw new InvalidOperationException("the Hessian was handed over: Reset before adding inputs");
        for (int t = 0; t < n; t++)
        {
            var row = x.Slice(t * Cols, Cols);
            for (int j = 0; j < Cols; j++) SqSum[j] += (double)row[j] * row[j];
        }
        if (XtX != null) AddOuter(XtX, x, n, Cols, threads);
        int keep = Math.Min(n, _errorTokens - SampleTokens);
        for (int i = 0; i < keep * Cols; i++) _sample.Add(x[i]);
        Tokens += n;
        Sequences++;
    }

    readonly double[]? _xtx;
    bool _handedOver;

    /// <summary>
    /// SparseGPT's H = (2 / sequences) sum x x^T, packed upper (<see cref="Linalg.UpperIndex"/>). With <paramref name="last"/>
    /// the statistics' own array is scaled and handed over (no copy: the down projection's Hessian alone is ffn^2 / 2
    /// doubles) for the caller to overwrite, until <see cref="Reset"/> takes it back; otherwise a fresh copy.
    /// </summary>
    public double[] Hessian(bool last = false)
    {
        if (_xtx == null || _handedOver) throw new InvalidOperationException("Hessian was not collected (or already handed over)");
        var h = last ? _xtx : (double[])_xtx.Clone();
        _handedOver = last;
        double s = 2.0 / Math.Max(1, Sequences);
        for (long i = 0; i < h.LongLength; i++) h[i] *= s;
        return h;
    }

    /// <summary>
    /// Empties the statistics for the next block, keeping their arrays (a handed-over Hessian array is taken back and
    /// cleared): the pruner reuses them block after block instead of allocating ffn^2 / 2 doubles each time.
    /// </summary>
    public void Reset()
    {
        Array.Clear(SqSum);
        if (_xtx != null) Array.Clear(_xtx);
        _handedOver = false;
        _sample.Clear();
        Tokens = 0;
        Sequences = 0;
    }

    /// <summary>Wanda's mean x_j^2 over tokens.</summary>
    public double[] MeanSq()
    {
        var m = new double[Cols];
        for (int j = 0; j < Cols; j++) m[j] = SqSum[j] / Math.Max(1, Tokens);
        return m;
    }

    /// <summary>
    /// h += X^T X for X (n x cols): X is transposed once so each entry is a dot product of two contiguous columns,
    /// computed in F32 over the window (4 x 4 tiles), then added to the F64 sum. <paramref name="h"/> is packed upper
    /// (<see cref="Linalg.UpperIndex"/>): entry (i, j), i &gt;= j, goes to (j, i).
    /// </summary>
    internal static void AddOuter(double[] h, ReadOnlySpan<float> x, int n, int cols, int threads)
    {
        int np = (n + 15) & ~15;
        var xt = new float[(long)cols * np];
        for (int t = 0; t < n; t++)
            for (int j = 0; j < cols; j++) xt[(long)j * np + t] = x[t * cols + j];
        int tiles = (cols + 3) / 4;
        var po = new ParallelOptions { MaxDegreeOfParallelism = threads > 0 ? threads : Environment.ProcessorCount };
        Parallel.For(0, tiles, po, ti =>
        {
            // Spread the triangle evenly: tile ti pairs with its mirror.
            int i0 = ti * 4;
            Span<float> res = stackalloc float[16];
            for (int j0 = 0; j0 <= i0; j0 += 4)
            {
                Tile(xt, np, cols, i0, j0, res);
                for (int a = 0; a < 4 && i0 + a < cols; a++)
                    for (int b = 0; b < 4 && j0 + b <= i0 + a; b++)
                    {
                        long idx = Linalg.UpperIndex(cols, j0 + b, i0 + a);
                        h[idx] += res[a * 4 + b];
                    }
            }
        });
    }

    static void Tile(float[] xt, int np, int cols, int i0, int j0, Span<float> res)
    {
        ref float p = ref MemoryMarshal.GetArrayDataReference(xt);
        nuint Ri(int r) => (nuint)((long)Math.Min(r, cols - 1) * np);
        nuint a0 = Ri(i0), a1 = Ri(i0 + 1), a2 = Ri(i0 + 2), a3 = Ri(i0 + 3);
        nuint b0 = Ri(j0), b1 = Ri(j0 + 1), b2 = Ri(j0 + 2), b3 = Ri(j0 + 3);
        Vector512<float> c00 = default, c01 = default, c02 = default, c03 = default, c10 = default, c11 = default, c12 = default, c13 = default;
        Vector512<float> c20 = default, c21 = default, c22 = default, c23 = default, c30 = default, c31 = default, c32 = default, c33 = default;
        for (nuint t = 0; t < (nuint)np; t += 16)
        {
            var x0 = Vector512.LoadUnsafe(ref p, a0 + t); var x1 = Vector512.LoadUnsafe(ref p, a1 + t);
            var x2 = Vector512.LoadUnsafe(ref p, a2 + t); var x3 = Vector512.LoadUnsafe(ref p, a3 + t);
            var y = Vector512.LoadUnsafe(ref p, b0 + t);
            c00 = Vector512.FusedMultiplyAdd(x0, y, c00); c10 = Vector512.FusedMultiplyAdd(x1, y, c10); c20 = Vector512.FusedMultiplyAdd(x2, y, c20); c30 = Vector512.FusedMultiplyAdd(x3, y, c30);
            y = Vector512.LoadUnsafe(ref p, b1 + t);
            c01 = Vector512.FusedMultiplyAdd(x0, y, c01); c11 = Vector512.FusedMultiplyAdd(x1, y, c11); c21 = Vector512.FusedMultiplyAdd(x2, y, c21); c31 = Vector512.FusedMultiplyAdd(x3, y, c31);
            y = Vector512.LoadUnsafe(ref p, b2 + t);
            c02 = Vector512.FusedMultiplyAdd(x0, y, c02); c12 = Vector512.FusedMultiplyAdd(x1, y, c12); c22 = Vector512.FusedMultiplyAdd(x2, y, c22); c32 = Vector512.FusedMultiplyAdd(x3, y, c32);
            y = Vector512.LoadUnsafe(ref p, b3 + t);
            c03 = Vector512.FusedMultiplyAdd(x0, y, c03); c13 = Vector512.FusedMultiplyAdd(x1, y, c13); c23 = Vector512.FusedMultiplyAdd(x2, y, c23); c33 = Vector512.FusedMultiplyAdd(x3, y, c33);
        }
        res[0] = Vector512.Sum(c00); res[1] = Vector512.Sum(c01); res[2] = Vector512.Sum(c02); res[3] = Vector512.Sum(c03);
        res[4] = Vector512.Sum(c10); res[5] = Vector512.Sum(c11); res[6] = Vector512.Sum(c12); res[7] = Vector512.Sum(c13);
        res[8] = Vector512.Sum(c20); res[9] = Vector512.Sum(c21); res[10] = Vector512.Sum(c22); res[11] = Vector512.Sum(c23);
        res[12] = Vector512.Sum(c30); res[13] = Vector512.Sum(c31); res[14] = Vector512.Sum(c32); res[15] = Vector512.Sum(c33);
    }

    /// <summary>Writes row <c>r</c> of a matrix into <c>dst</c>.</summary>
    public delegate void RowSource(int r, Span<float> dst);

    /// <summary>||W X - W' X||^2 / ||W X||^2 over the sample (X: tokens x cols; W, W': rows x cols).</summary>
    public static double RelativeError(float[] before, ReadOnlySpan<float> after, int rows, int cols, ReadOnlySpan<float> sample) =>
        RelativeError((r, dst) => before.AsSpan(r * cols, cols).CopyTo(dst), after, rows, cols, sample);

    /// <summary>
    /// <see cref="RelativeError(float[], ReadOnlySpan{float}, int, int, ReadOnlySpan{float})"/> with W given row by row, so
    /// that W need not be held next to W' (the pruner decodes it again from the file).
    /// </summary>
    public static double RelativeError(RowSource before, ReadOnlySpan<float> after, int rows, int cols, ReadOnlySpan<float> sample)
    {
        int tokens = sample.Length / cols;
        if (tokens == 0) return double.NaN;
        var wb = new float[cols];
        var diff = new float[cols];
        double num = 0, den = 0;
        for (int r = 0; r < rows; r++)
        {
            before(r, wb);
            var wa = after.Slice(r * cols, cols);
            for (int j = 0; j < cols; j++) diff[j] = wb[j] - wa[j];
            for (int t = 0; t < tokens; t++)
            {
                var x = sample.Slice(t * cols, cols);
                double y = Kernels.Ops.Dot(wb, x), e = Kernels.Ops.Dot(diff, x);
                num += e * e; den += y * y;
            }
        }
        return den > 0 ? num / den : 0;
    }
}
