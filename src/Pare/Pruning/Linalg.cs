using System.Runtime.Intrinsics;

namespace Pare.Pruning;

/// <summary>
/// The dense double-precision linear algebra SparseGPT needs, written out: Cholesky factorization, the inverse of a
/// lower-triangular matrix, and the upper Cholesky factor of an inverse. Matrices are row-major n x n arrays.
/// </summary>
public static class Linalg
{
    const int Panel = 64;

    /// <summary>
    /// In-place Cholesky A = L L^T of a symmetric positive-definite matrix (only the lower triangle is read); on return
    /// the lower triangle holds L and the strict upper triangle is zero. Right-looking and blocked by 64 columns: the
    /// trailing update, where almost all the work is, runs in parallel over rows.
    /// </summary>
    public static void CholeskyInPlace(double[] a, int n, int threads = 0)
    {
        if (a.Length < (long)n * n) throw new ArgumentException("matrix is smaller than n x n", nameof(a));
        var po = new ParallelOptions { MaxDegreeOfParallelism = threads > 0 ? threads : Environment.ProcessorCount };
        var pt = new double[Panel * n]; // transposed panel: pt[p * n + j] = L[j, k0 + p]
        for (int k0 = 0; k0 < n; k0 += Panel)
        {
            int k1 = Math.Min(k0 + Panel, n), w = k1 - k0;
            // 1. Diagonal block, unblocked.
            for (int j = k0; j < k1; j++)
            {
                double s = a[(long)j * n + j];
                for (int p = k0; p < j; p++) s -= a[(long)j * n + p] * a[(long)j * n + p];
                if (!(s > 0)) throw new PareException($"matrix is not positive definite (pivot {j} = {s:G4}); increase the damping");
                double d = Math.Sqrt(s);
                a[(long)j * n + j] = d;
                for (int i = j + 1; i < k1; i++)
                {
                    double t = a[(long)i * n + j];
                    for (int p = k0; p < j; p++) t -= a[(long)i * n + p] * a[(long)j * n + p];
                    a[(long)i * n + j] = t / d;
                }
            }
            if (k1 == n) break;
            // 2. Panel below the diagonal block: L21 = A21 L11^-T, row by row.
            Parallel.For(k1, n, po, i =>
            {
                long ri = (long)i * n;
                for (int j = k0; j < k1; j++)
                {
                    double t = a[ri + j];
                    for (int p = k0; p < j; p++) t -= a[ri + p] * a[(long)j * n + p];
                    a[ri + j] = t / a[(long)j * n + j];
                }
            });
            for (int j = k1; j < n; j++)
                for (int p = 0; p < w; p++) pt[(long)p * n + j] = a[(long)j * n + k0 + p];
            // 3. Trailing update A22 -= L21 L21^T (lower triangle): row i, columns k1..i, vectorized over columns.
            Parallel.For(k1, n, po, i => TrailingRow(a, pt, n, i, k0, w, k1));
        }
        for (int i = 0; i < n; i++) Array.Clear(a, i * n + i + 1, n - i - 1);
    }

    static void TrailingRow(double[] a, double[] pt, int n, int i, int k0, int w, int k1)
    {
        var row = a.AsSpan(i * n, n);
        var li = row.Slice(k0, w).ToArray();
        int j = k1, end = i + 1;
        for (; j + 8 <= end; j += 8)
        {
            var acc = Vector512.Create((ReadOnlySpan<double>)row.Slice(j, 8));
            for (int p = 0; p < w; p++)
                acc -= Vector512.Create(li[p]) * Vector512.Create((ReadOnlySpan<double>)pt.AsSpan(p * n + j, 8));
            acc.CopyTo(row.Slice(j, 8));
        }
        for (; j < end; j++)
        {
            double s = row[j];
            for (int p = 0; p < w; p++) s -= li[p] * pt[(long)p * n + j];
            row[j] = s;
        }
    }

    /// <summary>X = L^-1 for lower-triangular L (lower triangular too). Columns in panels of 16, panels in parallel.</summary>
    public static double[] InvertLower(double[] l, int n, int threads = 0)
    {
        var x = new double[(long)n * n];
        var po = new ParallelOptions { MaxDegreeOfParallelism = threads > 0 ? threads : Environment.ProcessorCount };
        const int W = 16;
        int panels = (n + W - 1) / W;
        Parallel.For(0, panels, po, () => new double[(long)n * W], (pi, _, xp) =>
        {
            int j0 = pi * W, w = Math.Min(W, n - j0);
            // Forward substitution L x = e_j for the panel's columns at once; xp[i * W + c] = X[i, j0 + c] (one buffer per worker).
            Array.Clear(xp, j0 * W, (n - j0) * W);
            for (int i = j0; i < n; i++)
            {
                var dst = xp.AsSpan(i * W, W);
                var a0 = Vector512<double>.Zero; var a1 = Vector512<double>.Zero;
                if (i - j0 < W) dst[i - j0] = 1.0; // e_j
                a0 = Vector512.Create((ReadOnlySpan<double>)dst[..8]); a1 = Vector512.Create((ReadOnlySpan<double>)dst.Slice(8, 8));
                long ri = (long)i * n;
                for (int p = j0; p < i; p++)
                {
                    var lp = Vector512.Create(l[ri + p]);
                    var src = xp.AsSpan(p * W, W);
                    a0 -= lp * Vector512.Create((ReadOnlySpan<double>)src[..8]);
                    a1 -= lp * Vector512.Create((ReadOnlySpan<double>)src.Slice(8, 8));
                }
                var inv = Vector512.Create(1.0 / l[ri + i]);
                (a0 * inv).CopyTo(dst[..8]);
                (a1 * inv).CopyTo(dst.Slice(8, 8));
            }
            for (int i = j0; i < n; i++)
                for (int c = 0; c < w; c++) x[(long)i * n + j0 + c] = xp[(long)i * W + c];
            return xp;
        }, _ => { });
        return x;
    }

    /// <summary>
    /// The upper-triangular U with U^T U = H^-1 (what SparseGPT calls Hinv: torch's cholesky(cholesky_inverse(cholesky(H)), upper)).
    /// Computed with one factorization and one triangular inverse: if J reverses the indices and J H J = L L^T, then
    /// H = U' U'^T with U' = J L J upper, and U = U'^-1 = J L^-1 J (Cholesky factors are unique). Reversing both indices
    /// of a row-major n x n array is reversing the array. With <paramref name="overwrite"/>, H's storage is reused.
    /// </summary>
    public static double[] UpperCholeskyOfInverse(double[] h, int n, int threads = 0, bool overwrite = false)
    {
        // J H J, in place when allowed: swapping (i, j) with (n-1-i, n-1-j) is an involution.
        var a = overwrite ? h : (double[])h.Clone();
        long nn = (long)n * n;
        for (long p = 0; p < nn / 2; p++) (a[p], a[nn - 1 - p]) = (a[nn - 1 - p], a[p]);
        CholeskyInPlace(a, n, threads);
        var x = InvertLower(a, n, threads);
        for (long p = 0; p < nn / 2; p++) (x[p], x[nn - 1 - p]) = (x[nn - 1 - p], x[p]);
        return x;
    }

    /// <summary>Slow reference: Gauss-Jordan inverse with partial pivoting (tests only).</summary>
    public static double[] NaiveInverse(double[] m, int n)
    {
        var a = (double[])m.Clone();
        var inv = new double[(long)n * n];
        for (int i = 0; i < n; i++) inv[(long)i * n + i] = 1;
        for (int c = 0; c < n; c++)
        {
            int piv = c;
            for (int r = c + 1; r < n; r++) if (Math.Abs(a[(long)r * n + c]) > Math.Abs(a[(long)piv * n + c])) piv = r;
            if (a[(long)piv * n + c] == 0) throw new ArgumentException("singular matrix");
            if (piv != c)
                for (int k = 0; k < n; k++)
                {
                    (a[(long)c * n + k], a[(long)piv * n + k]) = (a[(long)piv * n + k], a[(long)c * n + k]);
                    (inv[(long)c * n + k], inv[(long)piv * n + k]) = (inv[(long)piv * n + k], inv[(long)c * n + k]);
                }
            double d = a[(long)c * n + c];
            for (int k = 0; k < n; k++) { a[(long)c * n + k] /= d; inv[(long)c * n + k] /= d; }
            for (int r = 0; r < n; r++)
            {
                if (r == c) continue;
                double f = a[(long)r * n + c];
                if (f == 0) continue;
                for (int k = 0; k < n; k++) { a[(long)r * n + k] -= f * a[(long)c * n + k]; inv[(long)r * n + k] -= f * inv[(long)c * n + k]; }
            }
        }
        return inv;
    }
}
