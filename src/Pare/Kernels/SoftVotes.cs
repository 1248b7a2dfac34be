using System.Runtime.Intrinsics;

namespace Pare.Kernels;

/// <summary>
/// TokenSelect's soft voting: every head's softmax over the candidates, summed over the heads, votes[i] = Σ_h
/// softmax(logits[h, ·])[i]. Heads run in parallel (each row: max, exp in place, 1/sum), then position ranges in parallel
/// (the sum over heads); <see cref="Reference"/> is the scalar definition it is tested against.
/// </summary>
public static unsafe class SoftVotes
{
    const int Chunk = 1024;

    /// <summary>votes[0..n) = Σ_h softmax(logits[h·n .. h·n + n)); <paramref name="logits"/> is overwritten with the
    /// normalized rows. <paramref name="normalized"/>: the rows are softmaxes already (<see cref="KeySketch.Logits"/>
    /// with softmax), only the sum remains; <paramref name="rowScales"/> (with normalized): row h's softmax is the row
    /// times rowScales[h] (KeySketch.Logits's unnormalized rows), folded into the sum. <paramref name="rowStride"/>: row h
    /// starts at h·rowStride (default n; <see cref="KeySketch.Votes"/> sums every fourth row, its units' shares).</summary>
    public static void Compute(Span<float> logits, int heads, int n, Span<float> votes, int threads, bool normalized = false, ReadOnlySpan<float> rowScales = default,
        int rowStride = 0)
    {
        if (rowStride == 0) rowStride = n;
        if (rowStride < n || logits.Length < (long)(heads - 1) * rowStride + n || votes.Length < n || heads < 1 || n < 1) throw new ArgumentException("logits or votes too short");
        if (!rowScales.IsEmpty && (!normalized || rowScales.Length < heads)) throw new ArgumentException("row scales go with normalized rows, one per head");
        fixed (float* pl = logits, pv = votes, ps = rowScales)
        {
            var job = new Job { Logits = pl, Votes = pv, Scales = ps, Heads = heads, N = n, Stride = rowStride };
            int t = (long)heads * n < 1 << 14 ? 1 : threads;
            if (!normalized) KernelThreadPool.Shared.Run(&Normalize, &job, heads, t);
            KernelThreadPool.Shared.Run(&Sum, &job, (n + Chunk - 1) / Chunk, t);
        }
    }

    struct Job
    {
        public float* Logits, Votes, Scales;
        public int Heads, N, Stride;
    }

    static void Normalize(void* ctx, int h)
    {
        var j = (Job*)ctx;
        var row = new Span<float>(j->Logits + (long)h * j->Stride, j->N);
        Ops.Scale(row, 1f / Ops.ExpMinusMax(row));
    }

    static void Sum(void* ctx, int c)
    {
        var j = (Job*)ctx;
        int i0 = c * Chunk, i1 = Math.Min(j->N, i0 + Chunk), i = i0;
        if (Vector512.IsHardwareAccelerated)
            for (; i + 16 <= i1; i += 16)
            {
                var acc = Vector512<float>.Zero;
                if (j->Scales != null)
                    for (int h = 0; h < j->Heads; h++) acc = Vector512.FusedMultiplyAdd(Vector512.Load(j->Logits + (long)h * j->Stride + i), Vector512.Create(j->Scales[h]), acc);
                else
                    for (int h = 0; h < j->Heads; h++) acc += Vector512.Load(j->Logits + (long)h * j->Stride + i);
                acc.Store(j->Votes + i);
            }
        for (; i < i1; i++)
        {
            float s = 0;
            for (int h = 0; h < j->Heads; h++) s += j->Logits[(long)h * j->Stride + i] * (j->Scales != null ? j->Scales[h] : 1f);
            j->Votes[i] = s;
        }
    }

    /// <summary>The scalar reference of <see cref="Compute"/> (double sums; <paramref name="logits"/> unchanged).</summary>
    public static void Reference(ReadOnlySpan<float> logits, int heads, int n, Span<float> votes)
    {
        votes[..n].Clear();
        for (int h = 0; h < heads; h++)
        {
            var row = logits.Slice(h * n, n);
            float max = float.NegativeInfinity;
            foreach (float x in row) max = Math.Max(max, x);
            double sum = 0;
            foreach (float x in row) sum += Math.Exp(x - max);
            for (int i = 0; i < n; i++) votes[i] += (float)(Math.Exp(row[i] - max) / sum);
        }
    }
}
