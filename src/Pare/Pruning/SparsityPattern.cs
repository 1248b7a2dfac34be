using System.Globalization;

namespace Pare.Pruning;

/// <summary>
/// Which weights of a matrix may be removed: an unstructured fraction (<see cref="Ratio"/> of zeros, any position),
/// or N:M semi-structured (<see cref="N"/> kept in every <see cref="M"/> consecutive input weights of a row).
/// </summary>
public readonly record struct SparsityPattern
{
    SparsityPattern(double ratio, int n, int m) { Ratio = ratio; N = n; M = m; }

    /// <summary>Fraction of weights set to zero, in [0, 1). For N:M it is 1 - N/M.</summary>
    public double Ratio { get; }
    /// <summary>Weights kept per group (N:M only; 0 when unstructured).</summary>
    public int N { get; }
    /// <summary>Group length along the input dimension (N:M only; 0 when unstructured).</summary>
    public int M { get; }
    public bool IsNM => M > 0;

    /// <summary>Any fraction of zeros in [0, 1).</summary>
    public static SparsityPattern Unstructured(double ratio)
    {
        if (!(ratio >= 0 && ratio < 1)) throw new PareException($"sparsity must be in [0, 1) (got {ratio.ToString(CultureInfo.InvariantCulture)})");
        return new(ratio, 0, 0);
    }

    /// <summary>N kept of every M consecutive input weights (2:4, 4:8, ...).</summary>
    public static SparsityPattern NM(int n, int m)
    {
        if (m < 2 || m > 64) throw new PareException($"N:M pattern needs 2 <= M <= 64 (got {n}:{m})");
        if (n < 1 || n >= m) throw new PareException($"N:M pattern needs 1 <= N < M (got {n}:{m})");
        return new(1.0 - (double)n / m, n, m);
    }

    /// <summary>"unstructured" (or null/empty) with <paramref name="sparsity"/>, or "N:M" such as "2:4".</summary>
    public static SparsityPattern Parse(string? pattern, double sparsity)
    {
        if (string.IsNullOrWhiteSpace(pattern) || pattern.Equals("unstructured", StringComparison.OrdinalIgnoreCase))
            return Unstructured(sparsity);
        var parts = pattern.Split(':');
        if (parts.Length == 2 && int.TryParse(parts[0], NumberStyles.None, CultureInfo.InvariantCulture, out int n)
            && int.TryParse(parts[1], NumberStyles.None, CultureInfo.InvariantCulture, out int m))
            return NM(n, m);
        throw new PareException($"unknown sparsity pattern '{pattern}' (expected 'unstructured' or N:M such as 2:4)");
    }

    /// <summary>Checks that a matrix with <paramref name="cols"/> inputs can take this pattern.</summary>
    public void CheckFits(string tensor, int cols)
    {
        if (IsNM && cols % M != 0) throw new PareException($"tensor '{tensor}' has {cols} inputs, not a multiple of M = {M} of the {this} pattern");
    }

    public override string ToString() => IsNM
        ? $"{N}:{M}"
        : $"{Ratio.ToString("0.###", CultureInfo.InvariantCulture)} unstructured";
}
