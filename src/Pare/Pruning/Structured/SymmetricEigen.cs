namespace Pare.Pruning.Structured;

/// <summary>
/// Eigendecomposition of a real symmetric matrix by the cyclic Jacobi method (Golub and Van Loan, Matrix Computations,
/// section 8.5): plane rotations zero the off-diagonal entries one pair at a time, sweep after sweep, until their norm
/// is below 1e-14 of the matrix norm. O(n³) per sweep, usually 6-10 sweeps; accurate to working precision and simple,
/// which is all SliceGPT's PCA (n = the model width, a few hundred) needs.
/// </summary>
public static class SymmetricEigen
{
    /// <summary>
    /// Decomposes A = V diag(λ) Vᵀ. <paramref name="a"/> is n x n row-major and symmetric (only its upper triangle is
    /// read; it is not modified). Returns the eigenvalues in descending order and V (n x n row-major) whose column j is
    /// the unit eigenvector of λ_j.
    /// </summary>
    public static (double[] Values, double[] Vectors) Decompose(double[] a, int n, int maxSweeps = 100)
    {
        if (n < 1 || a.Length < (long)n * n) throw new ArgumentException("a must hold an n x n matrix", nameof(a));
        var m = new double[(long)n * n];
        for (int i = 0; i < n; i++)
            for (int j = i; j < n; j++) m[i * n + j] = m[j * n + i] = a[i * n + j];
        var v = new double[(long)n * n];
        for (int i = 0; i < n; i++) v[i * n + i] = 1;
        double total = 0;
        foreach (double x in m) total += x * x;
        double tol = 1e-28 * Math.Max(total, double.Epsilon);
        for (int sweep = 0; sweep < maxSweeps; sweep++)
        {
            double off = 0;
            for (int i = 0; i < n; i++)
                for (int j = i + 1; j < n; j++) off += 2 * m[i * n + j] * m[i * n + j];
            if (off <= tol) break;
            for (int p = 0; p < n - 1; p++)
                for (int q = p + 1; q < n; q++)
                {
                    double apq = m[p * n + q];
                    if (apq == 0) continue;
                    // The rotation (c, s) that zeroes m[p, q] (the smaller of the two angles).
                    double theta = (m[q * n + q] - m[p * n + p]) / (2 * apq);
                    double t = Math.Sign(theta == 0 ? 1 : theta) / (Math.Abs(theta) + Math.Sqrt(theta * theta + 1));
                    double c = 1 / Math.Sqrt(t * t + 1), s = t * c;
                    // M <- Jᵀ M J: columns p and q, then rows p and q.
                    for (int k = 0; k < n; k++)
                    {
                        double mkp = m[k * n + p], mkq = m[k * n + q];
                        m[k * n + p] = c * mkp - s * mkq;
                        m[k * n + q] = s * mkp + c * mkq;
                    }
                    for (int k = 0; k < n; k++)
                    {
                        double mpk = m[p * n + k], mqk = m[q * n + k];
                        m[p * n + k] = c * mpk - s * mqk;
                        m[q * n + k] = s * mpk + c * mqk;
                    }
                    // V <- V J.
                    for (int k = 0; k < n; k++)
                    {
                        double vkp = v[k * n + p], vkq = v[k * n + q];
                        v[k * n + p] = c * vkp - s * vkq;
                        v[k * n + q] = s * vkp + c * vkq;
                    }
                }
        }
        int[] order = [.. Enumerable.Range(0, n).OrderByDescending(i => m[i * n + i]).ThenBy(i => i)];
        var values = new double[n];
        var vectors = new double[(long)n * n];
        for (int j = 0; j < n; j++)
        {
            values[j] = m[order[j] * n + order[j]];
            for (int i = 0; i < n; i++) vectors[i * n + j] = v[i * n + order[j]];
        }
        return (values, vectors);
    }
}
