using System.Numerics;
using Pare.Kernels;
using Pare.Tensors;

namespace Pare.Models.Bert;

/// <summary>Token states of a batch after the encoder: sentence s owns rows Offsets[s] .. Offsets[s+1] of Hidden.</summary>
public sealed record BertHidden(float[] Hidden, int[] Offsets, int Dim)
{
    /// <summary>Input tokens each row stands for after token merging (null: all 1, no reduction happened).
    /// Attention adds log(size) to the keys' scores (proportional attention) and mean pooling weighs rows by it.</summary>
    public float[]? Sizes { get; init; }
    public int Sentences => Offsets.Length - 1;
    public int Length(int s) => Offsets[s + 1] - Offsets[s];
    public ReadOnlySpan<float> Row(int s, int t) => Hidden.AsSpan((Offsets[s] + t) * Dim, Dim);
}

/// <summary>
/// The BERT forward pass on the decoder engine's kernels. A batch is packed without padding: the sentences' tokens are
/// stacked into one (N, D) matrix for every linear layer, and attention runs per sentence over its own tokens only,
/// which is exactly what a padded batch with an attention mask computes, minus the work on pad tokens.
/// </summary>
public sealed class BertEncoder(BertConfig config, BertWeights weights)
{
    public BertConfig Config { get; } = config;
    public BertWeights Weights { get; } = weights;

    /// <summary>Runs the encoder on token ids ([CLS] … [SEP], token type 0, positions 0..T-1).</summary>
    /// <summary>Runs the encoder on token ids ([CLS] … [SEP], token type 0, positions 0..T-1); <paramref name="reducer"/>,
    /// when given, prunes or merges tokens at its blocks and <paramref name="trace"/> records the rows of each block.</summary>
    public BertHidden Forward(IReadOnlyList<int[]> batch, int threads, ITokenReducer? reducer, TokenTrace? trace = null, CancellationToken ct = default)
    {
        var h = Embed(batch);
        var original = h.Offsets;
        var ws = Interlocked.Exchange(ref _spare, null) ?? new Workspace();
        for (int l = 0; l < Config.Layers; l++)
        {
            ct.ThrowIfCancellationRequested();
            var r = reducer != null && reducer.ReducesAt(l) ? reducer : null;
            h = Weights.Packed(l) is { } packed ? RunBlockPacked(l, packed, h, threads, r, original, trace, ws) : RunBlock(l, h, threads, null, r, original, trace);
        }
        _spare = ws;
        return h;
    }

    public BertHidden Forward(IReadOnlyList<int[]> batch, int threads, CancellationToken ct = default) => Forward(batch, threads, null, null, ct);

    /// <summary>The embedding layer: word + position + token type 0, then LayerNorm.       Hidden: (N, D)</summary>
    public BertHidden Embed(IReadOnlyList<int[]> batch)
    {
        var c = Config;
        int d = c.Dim;
        var offsets = new int[batch.Count + 1];
        for (int s = 0; s < batch.Count; s++)
        {
            if (batch[s].Length == 0) throw new PareException($"sentence {s} has no tokens");
            if (batch[s].Length > c.MaxPositions) throw new PareException($"sentence {s} has {batch[s].Length} tokens, more than the {c.MaxPositions} positions of the model");
            offsets[s + 1] = offsets[s] + batch[s].Length;
        }
        var x = new float[offsets[^1] * d];
        var tmp = new float[d];
        for (int s = 0; s < batch.Count; s++)
            for (int t = 0; t < batch[s].Length; t++)
            {
                int id = batch[s][t];
                if ((uint)id >= (uint)c.VocabSize) throw new PareException($"token id {id} is outside the vocabulary of {c.VocabSize}");
                var word = Weights.WordEmbeddings.AsSpan(id * d, d);
                var pos = Weights.PositionEmbeddings.AsSpan(t * d, d);
                var type = Weights.TokenTypeEmbeddings.AsSpan(0, d);
                for (int i = 0; i < d; i++) tmp[i] = word[i] + pos[i] + type[i];
                BertOps.LayerNorm(tmp, Weights.EmbNormW, Weights.EmbNormB, c.LayerNormEps, x.AsSpan((offsets[s] + t) * d, d));
            }
        return new BertHidden(x, offsets, d);
    }

    /// <summary>Names under which <see cref="RunLayer"/> reports the inputs of its linear layers (q, k and v share one).</summary>
    public static readonly string[] LinearInputs = ["attention.self", "attention.output.dense", "intermediate.dense", "output.dense"];

    /// <summary>
    /// Block <paramref name="l"/> in place on <paramref name="h"/>. <paramref name="observe"/>, when given, sees the input
    /// of each linear layer (name from <see cref="LinearInputs"/>, (N, in) rows) before it is multiplied: calibration for pruning.
    /// </summary>
    public void RunLayer(int l, BertHidden h, int threads, Action<string, float[], int>? observe = null) => RunBlock(l, h, threads, observe, null, h.Offsets, null);

    /// <summary>Block <paramref name="l"/>; with a reducer, tokens are pruned/merged between attention and feed-forward
    /// and a new <see cref="BertHidden"/> is returned (otherwise <paramref name="h"/>, updated in place).</summary>
    BertHidden RunBlock(int l, BertHidden h, int threads, Action<string, float[], int>? observe, ITokenReducer? reducer, int[] original, TokenTrace? trace)
    {
        var L = Weights.Layers[l];
        int d = Config.Dim, f = Config.FfnDim, n = h.Offsets[^1];
        var x = h.Hidden;
        var qkv = new float[n * 3 * d];
        var ctx = new float[n * d]; var proj = new float[n * d];
        // Self-attention.                                                   qkv: (N, 3D) = x [Wq; Wk; Wv]ᵀ + b
        observe?.Invoke(LinearInputs[0], x, n);
        Linear(L.Wqkv, L.Bqkv, x, n, qkv, threads);
        var probs = reducer == null ? null : new float[h.Sentences * Config.Heads][];
        Attention(qkv, h.Offsets, h.Sizes, ctx, probs, threads);         // ctx: (N, D), heads side by side
        observe?.Invoke(LinearInputs[1], ctx, n);
        Linear(L.Wo, L.Bo, ctx, n, proj, threads);                       // proj: (N, D)
        AddNorm(x, proj, L.AttnNormW, L.AttnNormB, n, threads);                   // x = LN(x + proj)
        long pairs = 0;
        for (int s = 0; s < h.Sentences; s++) pairs += (long)h.Length(s) * h.Length(s);
        int nAttn = n;
        if (reducer != null)
        {
            h = Reduce(l, h, qkv, probs!, original, reducer);              // x: (N', D), N' ≤ N
            x = h.Hidden; n = h.Offsets[^1];
            proj = new float[n * d];
        }
        trace?.Layers.Add((nAttn, n, pairs));
        var up = new float[n * f];
        // Feed-forward.                                                     up: (N, F)
        observe?.Invoke(LinearInputs[2], x, n);
        Linear(L.Up, L.BUp, x, n, up, threads, gelu: true);
        observe?.Invoke(LinearInputs[3], up, n);
        Linear(L.Down, L.BDown, up, n, proj, threads);                   // proj: (N, D)
        AddNorm(x, proj, L.OutNormW, L.OutNormB, n, threads);                     // x = LN(x + proj)
        return h;
    }

    /// <summary>Buffers a forward pass reuses from block to block and from call to call (fresh large arrays cost page
    /// faults: the kernel's page clearing was 13% of a batch-1 profile).</summary>
    sealed class Workspace
    {
        public float[] Qkv = [], Ctx = [], Scratch = [], Up = [], LogSize = [], Probs = [];
        public static float[] Get(ref float[] a, long n) => a.Length >= n ? a : a = GC.AllocateUninitializedArray<float>(checked((int)n));
    }

    Workspace? _spare; // one kept for the next call; a concurrent call makes its own

    /// <summary>Tokens per feed-forward slice: the slice's FFN activations (256 x 1536) stay in cache between up and down.</summary>
    const int FfnSlice = 256;

    /// <summary>
    /// <see cref="RunBlock"/> on the packed-weight GEMM (<see cref="F32Gemm"/>): bias, GELU and the residual
    /// LayerNorms are fused into the products' stores, attention runs on <see cref="EncoderAttention"/> (when no reducer
    /// needs the probabilities), and the feed-forward goes slice by slice. Five pool dispatches per block at batch 1.
    /// </summary>
    BertHidden RunBlockPacked(int l, BertWeights.PackedLayer P, BertHidden h, int threads, ITokenReducer? reducer, int[] original, TokenTrace? trace, Workspace ws)
    {
        var L = Weights.Layers[l];
        int d = Config.Dim, f = Config.FfnDim, n = h.Offsets[^1];
        float eps = Config.LayerNormEps;
        var x = h.Hidden;
        var qkv = Workspace.Get(ref ws.Qkv, (long)n * 3 * d);
        var ctx = Workspace.Get(ref ws.Ctx, (long)n * d);
        F32Gemm.Multiply(P.Qkv, x, n, qkv, threads);                                   // qkv: (N, 3D), bias added
        float[][]? probs = null;
        if (EncoderAttention.Supports(Config.HeadDim))
        {
            ReadOnlySpan<float> logSize = default;
            if (h.Sizes is { } sizes)
            {
                var ls = Workspace.Get(ref ws.LogSize, n);
                for (int i = 0; i < n; i++) ls[i] = MathF.Log(sizes[i]);
                logSize = ls.AsSpan(0, n);
            }
            Span<float> flat = default;
            if (reducer != null) flat = Workspace.Get(ref ws.Probs, EncoderAttention.ProbabilityCount(h.Offsets, Config.Heads));
            EncoderAttention.Run(qkv, h.Offsets, Config.Heads, logSize, ctx, threads, flat);
            if (reducer != null) probs = SplitProbabilities(ws.Probs, h.Offsets, Config.Heads);
        }
        else
        {
            probs = reducer == null ? null : new float[h.Sentences * Config.Heads][];
            Attention(qkv, h.Offsets, h.Sizes, ctx, probs, threads);
        }
        var scratch = Workspace.Get(ref ws.Scratch, (long)Math.Min(n, FfnSlice) * d);
        if (scratch.Length < (long)n * d) scratch = Workspace.Get(ref ws.Scratch, (long)n * d);
        F32Gemm.MultiplyAddNorm(P.O, ctx, n, x, L.AttnNormW, L.AttnNormB, eps, scratch, threads);   // x = LN(x + ctx Woᵀ + bo)
        long pairs = 0;
        for (int s = 0; s < h.Sentences; s++) pairs += (long)h.Length(s) * h.Length(s);
        int nAttn = n;
        if (reducer != null)
        {
            h = Reduce(l, h, qkv, probs!, original, reducer);
            x = h.Hidden; n = h.Offsets[^1];
        }
        trace?.Layers.Add((nAttn, n, pairs));
        var up = Workspace.Get(ref ws.Up, (long)Math.Min(n, FfnSlice) * f);
        for (int t0 = 0; t0 < n; t0 += FfnSlice)                                       // x = LN(x + GELU(x Wupᵀ + b) Wdownᵀ + b)
        {
            int m = Math.Min(FfnSlice, n - t0);
            var rows = x.AsSpan(t0 * d, m * d);
            F32Gemm.Multiply(P.Up, rows, m, up, threads, gelu: true);
            F32Gemm.MultiplyAddNorm(P.Down, up, m, rows, L.OutNormW, L.OutNormB, eps, scratch, threads);
        }
        return h;
    }

    /// <summary>The (sentence, head) blocks of <see cref="EncoderAttention"/>'s flat probabilities as the arrays <see cref="Reduce"/> reads.</summary>
    static float[][] SplitProbabilities(float[] flat, int[] offsets, int heads)
    {
        var probs = new float[(offsets.Length - 1) * heads][];
        long at = 0;
        for (int s = 0; s + 1 < offsets.Length; s++)
        {
            int len = offsets[s + 1] - offsets[s];
            for (int h = 0; h < heads; h++, at += (long)len * len) probs[s * heads + h] = flat.AsSpan((int)at, len * len).ToArray();
        }
        return probs;
    }

    /// <summary>Asks the reducer for each sentence's slots and builds the reduced batch: a slot's row is the
    /// size-weighted mean of its tokens (a lone token is copied as is), its size the sum of theirs.</summary>
    BertHidden Reduce(int l, BertHidden h, float[] qkv, float[][] probs, int[] original, ITokenReducer reducer)
    {
        int d = Config.Dim, heads = Config.Heads;
        var assigns = new int[h.Sentences][];
        var counts = new int[h.Sentences];
        for (int s = 0; s < h.Sentences; s++)
        {
            int len = h.Length(s), start = h.Offsets[s];
            var att = new float[len * len];                               // mean over heads
            for (int hh = 0; hh < heads; hh++)
            {
                var p = probs[s * heads + hh];
                for (int i = 0; i < att.Length; i++) att[i] += p[i] / heads;
            }
            var keys = new float[len * d];
            for (int t = 0; t < len; t++) qkv.AsSpan((start + t) * 3 * d + d, d).CopyTo(keys.AsSpan(t * d, d));
            var sizes = new float[len];
            for (int t = 0; t < len; t++) sizes[t] = h.Sizes?[start + t] ?? 1f;
            var a = reducer.Assign(new SentenceTokens(l, len, original[s + 1] - original[s], att, keys, d, sizes));
            counts[s] = CheckAssignment(a, len);
            assigns[s] = a;
        }
        var offsets = new int[h.Sentences + 1];
        for (int s = 0; s < h.Sentences; s++) offsets[s + 1] = offsets[s] + counts[s];
        var x = new float[offsets[^1] * d];
        var newSizes = new float[offsets[^1]];
        var members = new int[offsets[^1]];
        for (int s = 0; s < h.Sentences; s++)
            for (int t = 0; t < assigns[s].Length; t++)
            {
                int slot = assigns[s][t];
                if (slot < 0) continue;
                int o = offsets[s] + slot, i = h.Offsets[s] + t;
                float size = h.Sizes?[i] ?? 1f;
                var row = h.Hidden.AsSpan(i * d, d);
                var dst = x.AsSpan(o * d, d);
                for (int c = 0; c < d; c++) dst[c] += size * row[c];
                newSizes[o] += size;
                members[o]++;
            }
        for (int s = 0; s < h.Sentences; s++)
            for (int t = 0; t < assigns[s].Length; t++)
            {
                int slot = assigns[s][t];
                if (slot < 0) continue;
                int o = offsets[s] + slot, i = h.Offsets[s] + t;
                if (members[o] == 1) h.Hidden.AsSpan(i * d, d).CopyTo(x.AsSpan(o * d, d));   // exact copy, no rounding
                else if (members[o] > 1) { var dst = x.AsSpan(o * d, d); float inv = 1f / newSizes[o]; for (int c = 0; c < d; c++) dst[c] *= inv; members[o] = -1; }
            }
        bool merged = h.Sizes != null || newSizes.Any(v => v != 1f);
        return new BertHidden(x, offsets, d) { Sizes = merged ? newSizes : null };
    }

    /// <summary>Slots must be 0..count-1 in order of first token, [CLS] alone in 0, [SEP] alone in the last: returns count.</summary>
    static int CheckAssignment(int[] a, int len)
    {
        if (a.Length != len) throw new PareException($"token reducer returned {a.Length} slots for {len} tokens");
        int next = 0;
        var seen = new int[len];
        foreach (int slot in a)
        {
            if (slot < -1 || slot > next) throw new PareException($"token reducer returned slot {slot} out of order");
            if (slot >= 0) { if (slot == next) next++; seen[slot]++; }
        }
        if (len >= 1 && (a[0] != 0 || seen[0] != 1)) throw new PareException("token reducer must keep [CLS] alone in slot 0");
        if (len >= 2 && (a[^1] != next - 1 || seen[next - 1] != 1)) throw new PareException("token reducer must keep [SEP] alone in the last slot");
        return next;
    }

    /// <summary>Tokens per product: a large packed batch is multiplied in slices whose activations stay in cache
    /// (one thread, 32 sentences × 128 tokens: 59 → 47 CPU-ms per sentence).</summary>
    const int TokensPerProduct = 256;

    static void Linear(WeightMatrix w, float[] bias, float[] x, int n, float[] y, int threads, bool gelu = false)
    {
        for (int t0 = 0; t0 < n; t0 += TokensPerProduct)
        {
            int m = Math.Min(TokensPerProduct, n - t0);
            MatMul.MatMulRows(w, x.AsSpan(t0 * w.Cols, m * w.Cols), m, y.AsSpan(t0 * w.Rows, m * w.Rows), threads);
        }
        int cols = w.Rows;
        // Bias (and GELU) row by row, rows split over the threads: on the calling thread alone this epilogue was a
        // serial part of every layer while the products ran on all threads.
        ForRows(n, cols, threads, (t0, t1) =>
        {
            for (int t = t0; t < t1; t++)
            {
                var row = y.AsSpan(t * cols, cols);
                AddInPlace(row, bias);
                if (gelu) BertOps.Gelu(row);
            }
        });
    }

    /// <summary>row += add, vectorized (each element's sum is the same float as the scalar loop's).</summary>
    static void AddInPlace(Span<float> row, ReadOnlySpan<float> add)
    {
        int i = 0;
        if (System.Numerics.Vector.IsHardwareAccelerated)
            for (int k = System.Numerics.Vector<float>.Count; i <= row.Length - k; i += k)
                (new System.Numerics.Vector<float>(row[i..]) + new System.Numerics.Vector<float>(add[i..])).CopyTo(row[i..]);
        for (; i < row.Length; i++) row[i] += add[i];
    }

    /// <summary>Values of row-wise work below which the rows run on the calling thread.</summary>
    const int MinParallelRowValues = 1 << 15;

    /// <summary>body(t0, t1) over [0, n) in contiguous row ranges, one per thread (one range when small).</summary>
    static void ForRows(int n, int cols, int threads, Action<int, int> body)
    {
        int parts = threads > 1 && (long)n * cols >= MinParallelRowValues ? Math.Min(threads, n) : 1;
        if (parts == 1) { body(0, n); return; }
        Parallel.For(0, parts, new ParallelOptions { MaxDegreeOfParallelism = parts },
            p => body((int)((long)n * p / parts), (int)((long)n * (p + 1) / parts)));
    }

    void AddNorm(float[] x, float[] delta, float[] w, float[] b, int n, int threads)
    {
        int d = Config.Dim;
        float eps = Config.LayerNormEps;
        ForRows(n, d, threads, (t0, t1) =>
        {
            var tmp = new float[d];
            for (int t = t0; t < t1; t++)
            {
                var row = x.AsSpan(t * d, d);
                var add = delta.AsSpan(t * d, d);
                for (int i = 0; i < d; i++) tmp[i] = row[i] + add[i];
                BertOps.LayerNorm(tmp, w, b, eps, row);
            }
        });
    }

    /// <summary>Bidirectional attention of each sentence over its own tokens, per head: softmax(q·kᵀ/√d) v.</summary>
    /// With <paramref name="sizes"/>, log(size) of each key is added to its score (ToMe's proportional attention: a merged
    /// token counts as the tokens it stands for); <paramref name="probs"/>, when given, receives each (sentence, head)'s
    /// probabilities, (len, len).
    void Attention(float[] qkv, int[] offsets, float[]? sizes, float[] ctx, float[][]? probs, int threads)
    {
        int heads = Config.Heads, sentences = offsets.Length - 1;
        Parallel.For(0, sentences * heads, new ParallelOptions { MaxDegreeOfParallelism = Math.Max(1, threads) },
            job => AttendHead(qkv, offsets[job / heads], offsets[job / heads + 1] - offsets[job / heads], job % heads, sizes, ctx, probs, job));
    }

    /// <summary>
    /// One head of one sentence. K and V of the head are copied transposed, (hd, len), so the scores of a query are
    /// hd vector multiply-adds over all keys at once and each output feature is one dot product over the keys.
    /// </summary>
    void AttendHead(float[] qkv, int start, int len, int h, float[]? sizes, float[] ctx, float[][]? probs, int job)
    {
        float[]? logSize = null;
        if (sizes != null) { logSize = new float[len]; for (int j = 0; j < len; j++) logSize[j] = MathF.Log(sizes[start + j]); }
        float[]? p = probs == null ? null : probs[job] = new float[len * len];
        int d = Config.Dim, hd = Config.HeadDim, stride = 3 * d;
        float scale = 1f / MathF.Sqrt(hd);
        var kt = new float[hd * len]; var vt = new float[hd * len]; var scores = new float[len];
        for (int j = 0; j < len; j++)
        {
            int row = (start + j) * stride + h * hd;
            for (int c = 0; c < hd; c++) { kt[c * len + j] = qkv[row + d + c] * scale; vt[c * len + j] = qkv[row + 2 * d + c]; }
        }
        int w = Vector<float>.Count;
        for (int i = 0; i < len; i++)
        {
            int qRow = (start + i) * stride + h * hd, outRow = (start + i) * d + h * hd;
            int j = 0;
            for (; j <= len - w; j += w)
            {
                var acc = Vector<float>.Zero;
                for (int c = 0; c < hd; c++) acc += new Vector<float>(qkv[qRow + c]) * new Vector<float>(kt, c * len + j);
                acc.CopyTo(scores, j);
            }
            for (; j < len; j++)
            {
                float acc = 0;
                for (int c = 0; c < hd; c++) acc += qkv[qRow + c] * kt[c * len + j];
                scores[j] = acc;
            }
            if (logSize != null) for (int k = 0; k < len; k++) scores[k] += logSize[k];
            Ops.Softmax(scores);
            if (p != null) scores.AsSpan(0, len).CopyTo(p.AsSpan(i * len, len));
            for (int c = 0; c < hd; c++) ctx[outRow + c] = Ops.Dot(scores, vt.AsSpan(c * len, len));
        }
    }
}
