using System.Runtime.Intrinsics;

namespace Pare.Pruning;

/// <summary>
/// The dense double-precision linear algebra SparseGPT needs, written out: Cholesky factorization, the inverse of a
/// lower-triangular matrix, and the upper Cholesky factor of an inverse. Symmetric and triangular n x n matrices are
/// stored packed, one triangle row by row (n (n + 1) / 2 values, half of a full square), and every step works in place:
/// the factor of SparseGPT's widest layer (ffn_down) then takes one packed array instead of several full ones.
/// <list type="bullet">
/// <item>packed lower: row i holds columns 0..i, from <see cref="LowerIndex"/>(i, 0);</item>
/// <item>packed upper: row i holds columns i..n-1, (i, j) at <see cref="UpperIndex"/>(n, i, j).</item>
/// </list>
/// Reversing a packed upper array gives the packed lower array of J A J (J reverses the indices), and back.
/// </summary>
public static class Linalg
{
    const int Panel = 64;

    /// <summary>Values in a packed triangle of an n x n matrix: n (n + 1) / 2.</summary>
    public static long PackedLength(int n) => (long)n * (n + 1) / 2;

    /// <summary>Position of (i, j), j &lt;= i, in a packed lower triangle.</summary>
    public static long LowerIndex(int i, int j) => (long)i * (i + 1) / 2 + j;

    /// <summary>Position of (i, j), j &gt;= i, in a packed upper triangle of an n x n matrix.</summary>
    public static long UpperIndex(int n, int i, int j) => (long)i * n - (long)i * (i + 1) / 2 + j;

    /// <summary>
    /// In-place Cholesky A = L L^T of a symmetric positive-definite matrix given as its packed lower triangle; on return
    /// the array holds L, packed lower. Right-looking and blocked by 64 columns: the trailing update, where almost all
    /// the work is, runs in parallel over rows.
    /// </summary>
    public static void CholeskyInPlace(double[] a, int n, int threads = 0)
    {
        if (a.Length < PackedLength(n)) throw new ArgumentException("array is smaller than a packed n x n triangle", nameof(a));
        var po = Options(threads);
        var pt = new double[(long)Panel * n]; // transposed panel: pt[p * n + j] = L[j, k0 + p]
        for (int k0 = 0; k0 < n; k0 += Panel)
        {
            int k1 = Math.Min(k0 + Panel, n), w = k1 - k0;
            // 1. Diagonal block, unblocked.
            for (int j = k0; j < k1; j++)
            {
                long rj = LowerIndex(j, 0);
                double s = a[rj + j];
                for (int p = k0; p < j; p++) s -= a[rj + p] * a[rj + p];
                if (!(s > 0)) throw new PareException($"matrix is not positive definite (pivot {j} = {s:G4}); increase the damping");
                double d = Math.Sqrt(s);
                a[rj + j] = d;
                for (int i = j + 1; i < k1; i++)
                {
                    long ri = LowerIndex(i, 0);
                    double t = a[ri + j];
                    for (int p = k0; p < j; p++) t -= a[ri + p] * a[rj + p];
                    a[ri + j] = t / d;
                }
            }
            if (k1 == n) break;
            // 2. Panel below the diagonal block: L21 = A21 L11^-T, row by row.
            Parallel.For(k1, n, po, i =>
            {
                long ri = LowerIndex(i, 0);
                for (int j = k0; j < k1; j++)
                {
                    long rj = LowerIndex(j, 0);
                    double t = a[ri + j];
                    for (int p = k0; p < j; p++) t -= a[ri + p] * a[rj + p];
                    a[ri + j] = t / a[rj + j];
                }
            });
            for (int j = k1; j < n; j++)
                for (int p = 0; p < w; p++) pt[(long)p * n + j] = a[LowerIndex(j, k0 + p)];
            // 3. Trailing update A22 -= L21 L21^T (lower triangle): row i, columns k1..i, vectorized over columns.
            Parallel.For(k1, n, po, i => TrailingRow(a, pt, n, i, k0, w, k1));
        }
    }

    static ParallelOptions Options(int threads) => new() { MaxDegreeOfParallelism = threads > 0 ? threads : Environment.ProcessorCount };

    static void TrailingRow(double[] a, double[] pt, int n, int i, int k0, int w, int k1)
    {
        var row = a.AsSpan((int)LowerIndex(i, 0), i + 1);
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

    /// <summary>
    /// Replaces lower-triangular L (packed lower) by L^-1 (lower triangular too). Columns in panels of 16: a panel's
    /// columns of X = L^-1 come from forward substitution with L's columns from the panel's first on, so panels are
    /// solved in parallel in groups, each into its own buffer, and a group is written back over L's columns only once
    /// all its panels are done (later panels never read earlier columns).
    /// </summary>
    public static void InvertLowerInPlace(double[] l, int n, int threads = 0)
    {
        if (l.Length < PackedLength(n)) throw new ArgumentException("array is smaller than a packed n x n triangle", nameof(l));
        var po = Options(threads);
        const int W = 16;
        int panels = (n + W - 1) / W, group = 4 * po.MaxDegreeOfParallelism;
        var bufs = new double[Math.Min(group, panels)][];
        for (int g0 = 0; g0 < panels; g0 += group)
        {
            int g1 = Math.Min(g0 + group, panels);
            Parallel.For(g0, g1, po, pi =>
            {
                int j0 = pi * W;
                var xp = bufs[pi - g0] ??= new double[(long)n * W];
                // Forward substitution L x = e_j for the panel's columns at once; xp[i * W + c] = X[i, j0 + c].
                Array.Clear(xp, j0 * W, (n - j0) * W);
                for (int i = j0; i < n; i++)
                {
                    var dst = xp.AsSpan(i * W, W);
                    if (i - j0 < W) dst[i - j0] = 1.0; // e_j
                    var a0 = Vector512.Create((ReadOnlySpan<double>)dst[..8]); var a1 = Vector512.Create((ReadOnlySpan<double>)dst.Slice(8, 8));
                    long ri = LowerIndex(i, 0);
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
            });
            Parallel.For(g0, g1, po, pi =>
            {
                int j0 = pi * W, w = Math.Min(W, n - j0);
                var xp = bufs[pi - g0];
                for (int i = j0; i < n; i++)
                    for (int c = 0; c < w && j0 + c <= i; c++) l[LowerIndex(i, j0 + c)] = xp[(long)i * W + c];
            });
        }
    }

    /// <summary>
    /// The upper-triangular U with U^T U = H^-1 (what SparseGPT calls Hinv: torch's cholesky(cholesky_inverse(cholesky(H)), upper)),
    /// in place: <paramref name="h"/> holds H packed upper on entry and U packed upper on return. One factorization and one
    /// triangular inverse: if J reverses the indices and J H J = L L^T, then H = U' U'^T with U' = J L J upper, and
    /// U = U'^-1 = J L^-1 J (Cholesky factors are unique). Reversing the packed array applies J on both sides.
    /// </summary>
    public static void UpperCholeskyOfInverse(double[] h, int n, int threads = 0)
    {
        long len = PackedLength(n);
        if (h.Length < len) throw new ArgumentException("array is smaller than a packed n x n triangle", nameof(h));
        Array.Reverse(h, 0, (int)len);
        CholeskyInPlace(h, n, threads);
        InvertLowerInPlace(h, n, threads);
        Array.Reverse(h, 0, (int)len);
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
