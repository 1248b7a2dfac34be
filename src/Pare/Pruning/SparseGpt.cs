using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;

namespace Pare.Pruning;

/// <summary>
/// SparseGPT: "Massive Language Models Can Be Accurately Pruned in One-Shot" (Frantar, Alistarh 2023,
/// https://arxiv.org/abs/2301.00774; reference code github.com/IST-DASLab/sparsegpt).
/// Layer-wise optimal brain surgeon: minimize ||W X - W' X||^2 over the calibration inputs X of the layer.
/// <list type="number">
/// <item>H = (2/n) sum x x^T over the calibration tokens (n = sequences); dead inputs (H_jj = 0) get H_jj = 1 and a
/// zero weight column; 1% of mean(diag H) is added to the diagonal.</item>
/// <item>Hinv = the upper Cholesky factor U of H^-1 (<see cref="Linalg.UpperCholeskyOfInverse"/>), computed in double
/// precision in the Hessian's own packed array, then narrowed to float in place: the pruning loop reads U in float from
/// the first half of that array, so a layer needs no memory beyond its Hessian (ffn^2 / 2 doubles for ffn_down).</item>
/// <item>Columns in blocks of 128. Unstructured: the block's mask is chosen up front over all its rows and columns by
/// w^2 / U_jj^2 (so per-row sparsity varies). N:M: every M columns, each row picks its mask among those M columns from the
/// already-updated weights by the same score.</item>
/// <item>Column j: q = w_j masked, err = (w_j - q) / U_jj, and the block's later columns absorb the error:
/// W[:, j+1:end] -= err U[j, j+1:end]. After the block, all later columns get the block's errors at once
/// ("lazy batch" update): W[:, end:] -= Err U[block, end:].</item>
/// </list>
/// Every step only mixes columns within a row, so rows run in parallel; only the unstructured mask looks across rows.
/// </summary>
public static class SparseGpt
{
    /// <summary>
    /// Prunes <paramref name="w"/> (rows x cols) in place. <paramref name="hessian"/> is sum x x^T (cols x cols, any
    /// positive scale) as its packed upper triangle (<see cref="Linalg.UpperIndex"/>, what <see cref="LayerStats.Hessian"/>
    /// gives); it is overwritten. <paramref name="pruned"/> receives the mask.
    /// </summary>
    public static void Prune(float[] w, int rows, int cols, double[] hessian, SparsityPattern pattern, bool[] pruned,
        int blockSize = 128, double damp = 0.01, int threads = 0, CancellationToken ct = default)
    {
        int n = cols;
        long packed = Linalg.PackedLength(n);
        if (hessian.Length < packed) throw new ArgumentException("Hessian is smaller than a packed cols x cols triangle", nameof(hessian));
        if (w.Length < (long)rows * cols || pruned.Length < (long)rows * cols) throw new ArgumentException("weights or mask smaller than rows x cols");
        // Dead inputs: no signal, so the weight cannot matter; zero it (counted as pruned).
        double meanDiag = 0;
        for (int j = 0; j < n; j++)
        {
            long jj = Linalg.UpperIndex(n, j, j);
            if (hessian[jj] == 0)
            {
                hessian[jj] = 1;
                for (int r = 0; r < rows; r++) { w[r * cols + j] = 0; pruned[r * cols + j] = true; }
            }
            meanDiag += hessian[jj];
        }
        meanDiag /= n;
        for (int j = 0; j < n; j++) hessian[Linalg.UpperIndex(n, j, j)] += damp * meanDiag;
        Linalg.UpperCholeskyOfInverse(hessian, n, threads);
        // Narrow U to float in place: float k overlaps double k / 2, which was already read.
        var narrow = MemoryMarshal.Cast<double, float>(hessian.AsSpan());
        for (int k = 0; k < packed; k++) narrow[k] = (float)hessian[k];

        var po = new ParallelOptions { MaxDegreeOfParallelism = threads > 0 ? threads : Environment.ProcessorCount };
        float[] scores = pattern.IsNM ? [] : new float[rows * Math.Min(blockSize, n)];
        bool[] blockMasks = pattern.IsNM ? [] : new bool[scores.Length];
        float[] selection = pattern.IsNM ? [] : new float[scores.Length];
        for (int i1 = 0; i1 < n; i1 += blockSize)
        {
            ct.ThrowIfCancellationRequested(); // a big matrix takes tens of seconds: Ctrl+C between column blocks
            int i2 = Math.Min(i1 + blockSize, n), count = i2 - i1;
            if (!pattern.IsNM)
            {
                var u = U(hessian);
                // Exact count overall: this block prunes round(s * end) - round(s * start) weights.
                int k = Masks.Count(pattern.Ratio, (long)rows * i2) - Masks.Count(pattern.Ratio, (long)rows * i1);
                var score = scores.AsSpan(0, rows * count);
                for (int r = 0; r < rows; r++)
                    for (int c = 0; c < count; c++)
                    {
                        float d = u[(int)Linalg.UpperIndex(n, i1 + c, i1 + c)], x = w[(long)r * cols + i1 + c];
                        score[r * count + c] = x * x / (d * d);
                    }
                var blockMask = blockMasks.AsSpan(0, rows * count);
                blockMask.Clear();
                Masks.PruneSmallest(score, k, blockMask, selection);
                for (int r = 0; r < rows; r++)
                    for (int c = 0; c < count; c++)
                        if (blockMask[r * count + c]) pruned[(long)r * cols + i1 + c] = true;
            }
            Parallel.For(0, rows, po, () => new float[count + 64], (r, _, err) =>
            {
                RowBlock(w.AsSpan(r * cols, cols), pruned.AsSpan(r * cols, cols), U(hessian), n, i1, i2, pattern, err);
                return err;
            }, _ => { });
        }
    }

    /// <summary>U in float: the first half of the Hessian's array once narrowed, packed upper.</summary>
    static ReadOnlySpan<float> U(double[] store) => MemoryMarshal.Cast<double, float>(store.AsSpan());

    /// <summary>One row through one column block: masked quantization column by column, in-block and lazy updates.</summary>
    static void RowBlock(Span<float> row, Span<bool> mask, ReadOnlySpan<float> u, int n, int i1, int i2, SparsityPattern pattern, float[] err)
    {
        int count = i2 - i1;
        Span<float> group = stackalloc float[pattern.IsNM ? pattern.M : 1];
        Span<int> scratch = stackalloc int[pattern.IsNM ? pattern.M : 1];
        for (int i = i1; i < i2; i++)
        {
            if (pattern.IsNM && (i - i1) % pattern.M == 0 && i + pattern.M <= i2)
            {
                for (int c = 0; c < pattern.M; c++)
                {
                    float d = u[(int)Linalg.UpperIndex(n, i + c, i + c)];
                    group[c] = row[i + c] * row[i + c] / (d * d);
                }
                Masks.PruneGroup(group, pattern.N, mask.Slice(i, pattern.M), scratch);
            }
            int ii = (int)Linalg.UpperIndex(n, i, i);
            float wv = row[i], q = mask[i] ? 0f : wv;
            float e = (wv - q) / u[ii];
            err[i - i1] = e;
            row[i] = q;
            if (e != 0) Axpy(row.Slice(i + 1, i2 - i - 1), -e, u.Slice(ii + 1, i2 - i - 1));
        }
        if (i2 < n) LazyUpdate(row.Slice(i2), err.AsSpan(0, count), u, n, i1, i2);
    }

    /// <summary>dst[j] -= sum_k err[k] * U[i1 + k, i2 + j]: the block's accumulated error applied to all later columns.</summary>
    static void LazyUpdate(Span<float> dst, ReadOnlySpan<float> err, ReadOnlySpan<float> u, int n, int i1, int i2)
    {
        ref float pu = ref MemoryMarshal.GetReference(u);
        ref float pd = ref MemoryMarshal.GetReference(dst);
        int len = dst.Length, j = 0;
        for (; j + 64 <= len; j += 64)
        {
            var a0 = Vector512.LoadUnsafe(ref pd, (nuint)j); var a1 = Vector512.LoadUnsafe(ref pd, (nuint)(j + 16));
            var a2 = Vector512.LoadUnsafe(ref pd, (nuint)(j + 32)); var a3 = Vector512.LoadUnsafe(ref pd, (nuint)(j + 48));
            for (int k = 0; k < err.Length; k++)
            {
                if (err[k] == 0) continue;
                var e = Vector512.Create(err[k]);
                nuint b = (nuint)Linalg.UpperIndex(n, i1 + k, i2 + j);
                a0 -= e * Vector512.LoadUnsafe(ref pu, b); a1 -= e * Vector512.LoadUnsafe(ref pu, b + 16);
                a2 -= e * Vector512.LoadUnsafe(ref pu, b + 32); a3 -= e * Vector512.LoadUnsafe(ref pu, b + 48);
            }
            a0.StoreUnsafe(ref pd, (nuint)j); a1.StoreUnsafe(ref pd, (nuint)(j + 16));
            a2.StoreUnsafe(ref pd, (nuint)(j + 32)); a3.StoreUnsafe(ref pd, (nuint)(j + 48));
        }
        for (; j < len; j++)
        {
            float s = dst[j];
            for (int k = 0; k < err.Length; k++) s -= err[k] * u[(int)Linalg.UpperIndex(n, i1 + k, i2 + j)];
            dst[j] = s;
        }
    }

    static void Axpy(Span<float> y, float a, ReadOnlySpan<float> x)
    {
        int i = 0;
        if (Vector512.IsHardwareAccelerated)
        {
            var va = Vector512.Create(a);
            for (; i + 16 <= y.Length; i += 16)
                (Vector512.Create(x.Slice(i, 16)) * va + Vector512.Create((ReadOnlySpan<float>)y.Slice(i, 16))).CopyTo(y.Slice(i, 16));
        }
        for (; i < y.Length; i++) y[i] += a * x[i];
    }
}
