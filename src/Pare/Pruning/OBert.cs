using System.Numerics;

namespace Pare.Pruning;

/// <summary>
/// The Optimal BERT Surgeon (oBERT): "The Optimal BERT Surgeon: Scalable and Accurate Second-Order Pruning for Large
/// Language Models" (Kurtic, Campos, Nguyen, Frantar, Kurtz, Fineran, Goin, Alistarh, EMNLP 2022,
/// https://arxiv.org/abs/2203.07259; reference code in Neural Magic's sparseml, <c>OBSPruningModifier</c>).
/// <list type="number">
/// <item>The Hessian of the loss is approximated by the empirical Fisher F = (1/m) Σ g gᵀ of m per-sample gradients,
/// block-diagonal: a matrix's weights, flattened row-major, are cut into blocks of <see cref="DefaultBlockSize"/> = 50
/// consecutive weights (the paper's block), each with its own B × B Fisher (a short last block keeps its length). The
/// diagonal is dampened by λ = <see cref="DefaultDamp"/> (1e-5) × the mean of the matrix's Fisher diagonal (relative, so
/// the scale of the loss does not matter; no gradient signal at all gives F = λI, i.e. magnitude pruning).</item>
/// <item>Saliency of weight i in its block: ρ_i = w_i² / (2 [F⁻¹]_ii). Unstructured: the matrix's smallest saliencies
/// are pruned (the same sparsity in every matrix, as the other methods here; the paper ranks globally). N:M: in every
/// group of M consecutive inputs of a row the M - N smallest saliencies go.</item>
/// <item>OBS update of every block for its pruned set Q at once (the exact multi-weight form, paper eq. 4): δw =
/// −F⁻¹ e_Q (e_Qᵀ F⁻¹ e_Q)⁻¹ w_Q, computed as the equivalent solve on the kept weights K:
/// F_KK δw_K = F_KQ w_Q, δw_Q = −w_Q (Cholesky, double precision).</item>
/// </list>
/// What the gradients are gradients of is the caller's choice (for BERT sentence encoders, see
/// <see cref="BertPruner"/>).
/// </summary>
public static class OBert
{
    /// <summary>Weights per Fisher block (the paper's 50).</summary>
    public const int DefaultBlockSize = 50;
    /// <summary>Dampening as a fraction of the mean Fisher diagonal.</summary>
    public const double DefaultDamp = 1e-5;

    /// <summary>Prunes <paramref name="w"/> (rows × cols) in place with <paramref name="fisher"/>'s blocks; <paramref name="pruned"/> receives the mask.</summary>
    public static void Prune(float[] w, int rows, int cols, BlockFisher fisher, SparsityPattern pattern, bool[] pruned,
        double damp = DefaultDamp, int threads = 0, CancellationToken ct = default)
    {
        long total = (long)rows * cols;
        if (fisher.Rows != rows || fisher.Cols != cols) throw new ArgumentException($"Fisher is for {fisher.Rows} x {fisher.Cols}, weights are {rows} x {cols}");
        if (w.Length < total || pruned.Length < total) throw new ArgumentException("weights or mask smaller than rows x cols");
        if (!(damp > 0)) throw new PareException($"oBERT dampening must be positive (got {damp})");
        pattern.CheckFits("oBERT", cols);
        double lambda = damp * fisher.MeanDiagonal();
        if (!(lambda > 0)) lambda = 1; // no gradient signal: F = I, saliency = w² / 2
        var po = new ParallelOptions { MaxDegreeOfParallelism = threads > 0 ? threads : Environment.ProcessorCount, CancellationToken = ct };
        int b = fisher.BlockSize;
        // 1. Saliencies from the diagonal of each block's inverse.
        var scores = new float[total];
        var lambdas = new double[fisher.Blocks];
        Parallel.For(0, fisher.Blocks, po, () => new double[b * b], (blk, _, a) =>
        {
            int start = blk * b, len = fisher.Length(blk);
            // λ is raised x10 for a block whose factorization fails (rounding); never seen with double accumulation.
            double lb = lambda;
            for (int attempt = 0; ; attempt++, lb *= 10)
            {
                fisher.Damped(blk, lb, a);
                if (Cholesky(a, len)) break;
                if (attempt == 12) throw new PareException($"oBERT: Fisher block {blk} is not positive definite even at λ = {lb:G3}");
            }
            lambdas[blk] = lb;
            for (int i = 0; i < len; i++)
            {
                double d = InverseDiagonal(a, len, i);
                float x = w[start + i];
                scores[start + i] = (float)(x * (double)x / (2 * d));
            }
            return a;
        }, _ => { });
        // 2. The mask.
        if (pattern.IsNM)
            for (int r = 0; r < rows; r++) Masks.PruneNM(scores.AsSpan(r * cols, cols), pattern.N, pattern.M, pruned.AsSpan(r * cols, cols));
        else Masks.PruneSmallest(scores, Masks.Count(pattern.Ratio, total), pruned);
        // 3. OBS update of each block for its pruned set: F_KK δw_K = F_KQ w_Q.
        Parallel.For(0, fisher.Blocks, po, () => (new double[b * b], new double[b * b], new double[b], new int[b], new int[b]), (blk, _, s) =>
        {
            var (a, kk, rhs, keep, drop) = s;
            int start = blk * b, len = fisher.Length(blk), nk = 0, nq = 0;
            for (int i = 0; i < len; i++) if (pruned[start + i]) drop[nq++] = i; else keep[nk++] = i;
            if (nq == 0) return s;
            if (nk > 0)
            {
                fisher.Damped(blk, lambdas[blk], a);
                for (int i = 0; i < nk; i++)
                {
                    double acc = 0;
                    for (int j = 0; j < nq; j++) acc += a[keep[i] * len + drop[j]] * w[start + drop[j]];
                    rhs[i] = acc;
                    for (int j = 0; j <= i; j++) kk[i * nk + j] = a[keep[i] * len + keep[j]];
                }
                if (!Cholesky(kk, nk)) throw new PareException($"oBERT: kept part of Fisher block {blk} is not positive definite");
                Solve(kk, nk, rhs);
                for (int i = 0; i < nk; i++) w[start + keep[i]] += (float)rhs[i];
            }
            for (int j = 0; j < nq; j++) w[start + drop[j]] = 0;
            return s;
        }, _ => { });
    }

    /// <summary>In place A = L Lᵀ (row-major n × n, lower triangle read and written); false if A is not positive definite.</summary>
    static bool Cholesky(double[] a, int n)
    {
        for (int j = 0; j < n; j++)
        {
            double s = a[j * n + j];
            for (int p = 0; p < j; p++) s -= a[j * n + p] * a[j * n + p];
            if (!(s > 0)) return false;
            double d = Math.Sqrt(s);
            a[j * n + j] = d;
            for (int i = j + 1; i < n; i++)
            {
                double t = a[i * n + j];
                for (int p = 0; p < j; p++) t -= a[i * n + p] * a[j * n + p];
                a[i * n + j] = t / d;
            }
        }
        return true;
    }

    /// <summary>[A⁻¹]_ii = ‖L⁻¹ e_i‖² from the Cholesky factor L (forward substitution from row i on).</summary>
    static double InverseDiagonal(double[] l, int n, int i)
    {
        Span<double> y = stackalloc double[n];
        double sum = 0;
        for (int k = i; k < n; k++)
        {
            double t = k == i ? 1 : 0;
            for (int p = i; p < k; p++) t -= l[k * n + p] * y[p];
            y[k] = t / l[k * n + k];
            sum += y[k] * y[k];
        }
        return sum;
    }

    /// <summary>x = A⁻¹ x from A's Cholesky factor L: L y = x, Lᵀ x = y.</summary>
    static void Solve(double[] l, int n, double[] x)
    {
        for (int i = 0; i < n; i++)
        {
            double t = x[i];
            for (int p = 0; p < i; p++) t -= l[i * n + p] * x[p];
            x[i] = t / l[i * n + i];
        }
        for (int i = n - 1; i >= 0; i--)
        {
            double t = x[i];
            for (int p = i + 1; p < n; p++) t -= l[p * n + i] * x[p];
            x[i] = t / l[i * n + i];
        }
    }
}

/// <summary>
/// The block-diagonal empirical Fisher Σ g gᵀ of one weight matrix (rows × cols, flattened row-major, blocks of
/// <see cref="BlockSize"/> consecutive weights), accumulated from per-sample gradients in double (in float, rounding
/// left blocks with m &lt; B slightly indefinite at λ = 1e-5 × mean diagonal). Storage: per block B rows of a stride
/// rounded up to the vector width (B = 50: 0.9 GB for the six matrices of a MiniLM block).
/// </summary>
public sealed class BlockFisher
{
    readonly double[] _f;
    readonly int _stride;

    public BlockFisher(int rows, int cols, int blockSize = OBert.DefaultBlockSize)
    {
        if (blockSize < 1) throw new PareException($"Fisher block size must be at least 1 (got {blockSize})");
        Rows = rows; Cols = cols; BlockSize = blockSize;
        long total = (long)rows * cols;
        Blocks = (int)((total + blockSize - 1) / blockSize);
        int v = Vector<double>.Count;
        _stride = (blockSize + v - 1) / v * v;
        _f = new double[(long)Blocks * blockSize * _stride];
    }

    public int Rows { get; }
    public int Cols { get; }
    public int BlockSize { get; }
    public int Blocks { get; }
    /// <summary>Gradients added so far (m).</summary>
    public int Samples { get; private set; }

    /// <summary>Weights in block <paramref name="blk"/> (the last one may be short).</summary>
    public int Length(int blk) => (int)Math.Min(BlockSize, (long)Rows * Cols - (long)blk * BlockSize);

    /// <summary>Adds g gᵀ of each of the first <paramref name="count"/> gradients (each rows × cols, row-major).</summary>
    public void Add(IReadOnlyList<float[]> grads, int count, int threads = 0)
    {
        if (count > grads.Count) throw new ArgumentException("count exceeds the gradients given");
        for (int s = 0; s < count; s++) if (grads[s].Length < (long)Rows * Cols) throw new ArgumentException("gradient smaller than rows x cols");
        int b = BlockSize, stride = _stride, v = Vector<double>.Count;
        var po = new ParallelOptions { MaxDegreeOfParallelism = threads > 0 ? threads : Environment.ProcessorCount };
        Parallel.For(0, Blocks, po, () => new double[count * stride], (blk, _, g) =>
        {
            int start = blk * b, len = Length(blk);
            for (int s = 0; s < count; s++)
            {
                var src = grads[s].AsSpan(start, len);
                for (int i = 0; i < len; i++) g[s * stride + i] = src[i];                     // padding stays 0
            }
            var f = _f.AsSpan((int)((long)blk * b * stride), b * stride);
            for (int i = 0; i < len; i++)
            {
                var row = f.Slice(i * stride, stride);
                for (int c = 0; c < stride; c += v)
                {
                    var acc = new Vector<double>(row[c..]);
                    for (int s = 0; s < count; s++) acc += new Vector<double>(g[s * stride + i]) * new Vector<double>(g, s * stride + c);
                    acc.CopyTo(row[c..]);
                }
            }
            return g;
        }, _ => { });
        Samples += count;
    }

    /// <summary>(1/m) Fisher of block <paramref name="blk"/> + λ I into <paramref name="a"/> (len × len, row-major, double).</summary>
    public void Damped(int blk, double lambda, double[] a)
    {
        int len = Length(blk);
        double inv = Samples > 0 ? 1.0 / Samples : 0;
        long at = (long)blk * BlockSize * _stride;
        for (int i = 0; i < len; i++)
            for (int j = 0; j < len; j++) a[i * len + j] = _f[at + i * _stride + j] * inv + (i == j ? lambda : 0);
    }

    /// <summary>Mean of the diagonal of (1/m) Σ g gᵀ over all weights of the matrix.</summary>
    public double MeanDiagonal()
    {
        if (Samples == 0) return 0;
        double sum = 0;
        for (int blk = 0; blk < Blocks; blk++)
        {
            long at = (long)blk * BlockSize * _stride;
            for (int i = 0, len = Length(blk); i < len; i++) sum += _f[at + i * _stride + i];
        }
        return sum / Samples / ((double)Rows * Cols);
    }
}
