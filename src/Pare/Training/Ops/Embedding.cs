namespace Pare.Training.Ops;

/// <summary>Token embedding lookup: x[t] = E[token[t]].</summary>
public static class Embedding
{
    /// <param name="table">(vocab, dim)</param>
    /// <param name="x">(n, dim) output</param>
    public static void Forward(ReadOnlySpan<int> tokens, ReadOnlySpan<float> table, int dim, Span<float> x)
    {
        for (int t = 0; t < tokens.Length; t++) table.Slice(tokens[t] * dim, dim).CopyTo(x.Slice(t * dim, dim));
    }

    /// <summary>dE[token[t]] += dx[t], in token order (a token that repeats sums its rows in a fixed order).</summary>
    public static void Backward(ReadOnlySpan<int> tokens, ReadOnlySpan<float> dx, int dim, Span<float> dTable)
    {
        for (int t = 0; t < tokens.Length; t++)
        {
            var src = dx.Slice(t * dim, dim);
            var dst = dTable.Slice(tokens[t] * dim, dim);
            for (int i = 0; i < dim; i++) dst[i] += src[i];
        }
    }
}
