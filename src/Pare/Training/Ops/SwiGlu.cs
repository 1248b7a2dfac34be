namespace Pare.Training.Ops;

/// <summary>
/// SwiGLU (Shazeer 2020): h = silu(g) ⊙ u with silu(g) = g · σ(g).
/// Backward: du = dh ⊙ silu(g);  dg = dh ⊙ u ⊙ σ(g) · (1 + g · (1 − σ(g))).
/// </summary>
public static class SwiGlu
{
    /// <param name="g">gate pre-activation (n · ffn)</param><param name="u">up projection (n · ffn)</param><param name="h">output (n · ffn)</param>
    public static void Forward(ReadOnlySpan<float> g, ReadOnlySpan<float> u, Span<float> h)
    {
        for (int i = 0; i < h.Length; i++)
        {
            float gi = g[i];
            h[i] = gi / (1f + MathF.Exp(-gi)) * u[i];
        }
    }

    public static void Backward(ReadOnlySpan<float> g, ReadOnlySpan<float> u, ReadOnlySpan<float> dh, Span<float> dg, Span<float> du)
    {
        for (int i = 0; i < dh.Length; i++)
        {
            float gi = g[i];
            float sig = 1f / (1f + MathF.Exp(-gi));
            du[i] = dh[i] * gi * sig;
            dg[i] = dh[i] * u[i] * sig * (1f + gi * (1f - sig));
        }
    }
}
