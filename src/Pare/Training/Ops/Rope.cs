namespace Pare.Training.Ops;

/// <summary>
/// Rotary position embedding (Su et al. 2021), llama.cpp's "normal" layout: each adjacent pair (x[2i], x[2i+1]) of a head
/// is rotated by angle pos · base^(−2i/ropeDim). The backward pass rotates the gradient by the opposite angle.
/// </summary>
public sealed class Rope
{
    readonly float[] _cos, _sin; // (positions, ropeDim / 2)
    readonly int _half;

    /// <summary>Precomputes the angles of positions [0, positions), in double as <see cref="Pare.Kernels.Ops.Rope"/> does.</summary>
    public Rope(int positions, int ropeDim, float theta)
    {
        _half = ropeDim / 2;
        _cos = new float[positions * _half];
        _sin = new float[positions * _half];
        for (int p = 0; p < positions; p++)
            for (int i = 0; i < _half; i++)
            {
                double angle = p * Math.Pow(theta, -2.0 * i / ropeDim);
                _cos[p * _half + i] = (float)Math.Cos(angle);
                _sin[p * _half + i] = (float)Math.Sin(angle);
            }
    }

    /// <summary>Rotates, in place, the heads of rows (n, heads · headDim); row t sits at position t mod <paramref name="seqLen"/>.</summary>
    public void Forward(Span<float> v, int n, int seqLen, int heads, int headDim) => Apply(v, n, seqLen, heads, headDim, 1f);

    /// <summary>Turns dy into dx in place (the transpose of a rotation is the inverse rotation).</summary>
    public void Backward(Span<float> dv, int n, int seqLen, int heads, int headDim) => Apply(dv, n, seqLen, heads, headDim, -1f);

    void Apply(Span<float> v, int n, int seqLen, int heads, int headDim, float sign)
    {
        int width = heads * headDim;
        for (int t = 0; t < n; t++)
        {
            int p = t % seqLen;
            var cos = _cos.AsSpan(p * _half, _half);
            var sin = _sin.AsSpan(p * _half, _half);
            for (int h = 0; h < heads; h++)
            {
                var head = v.Slice(t * width + h * headDim, headDim);
                for (int i = 0; i < _half; i++)
                {
                    float x0 = head[2 * i], x1 = head[2 * i + 1], s = sign * sin[i];
                    head[2 * i] = x0 * cos[i] - x1 * s;
                    head[2 * i + 1] = x0 * s + x1 * cos[i];
                }
            }
        }
    }
}
