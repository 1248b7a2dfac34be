using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using Pare.Kernels;
using Pare.Models;
using Pare.Tensors;

namespace Pare.Pruning;

/// <summary>The four distinct inputs of a block's linear layers.</summary>
public enum LinearInput
{
    /// <summary>attn_norm(x): input of q, k and v (dim).</summary>
    Attention,
    /// <summary>attention output: input of attn_output (heads * head_dim).</summary>
    AttentionOutput,
    /// <summary>ffn_norm(x): input of gate and up (dim).</summary>
    Ffn,
    /// <summary>silu(gate) * up: input of ffn_down (ffn).</summary>
    Down,
}

/// <summary>One linear layer of a block as an editable F32 matrix (pinned, so Pare's kernels can multiply with it).</summary>
public sealed class DenseLinear
{
    public DenseLinear(string name, GgmlType storedType, int rows, int cols, LinearInput input)
        : this(name, storedType, rows, cols, input, GC.AllocateArray<float>(rows * cols, pinned: true)) { }

    DenseLinear(string name, GgmlType storedType, int rows, int cols, LinearInput input, float[] pinnedData)
    {
        Name = name; StoredType = storedType; Rows = rows; Cols = cols; Input = input;
        Data = pinnedData;
    }

    /// <summary>
    /// A matrix of the same shape that takes over <paramref name="previous"/>'s (pinned) storage, contents undefined: a
    /// block's matrices are hundreds of MB, so the next block reuses them instead of allocating anew.
    /// </summary>
    internal static DenseLinear Reusing(DenseLinear? previous, string name, GgmlType storedType, int rows, int cols, LinearInput input) =>
        previous != null && previous.Rows == rows && previous.Cols == cols
            ? new DenseLinear(name, storedType, rows, cols, input, previous.Data)
            : new DenseLinear(name, storedType, rows, cols, input);

    /// <summary>GGUF tensor name (blk.N.attn_q.weight, ...).</summary>
    public string Name { get; }
    /// <summary>Type in the source file; the pruned matrix is written back in it.</summary>
    public GgmlType StoredType { get; }
    public int Rows { get; }
    public int Cols { get; }
    public LinearInput Input { get; }
    /// <summary>rows x cols, row-major.</summary>
    public float[] Data { get; }

    /// <summary>
    /// A kernel view of <see cref="Data"/> (valid while this object lives: the array is pinned). Marked mutable: pruning
    /// changes the data in place, so no kernel may keep a derived copy (and building one per product would cost more
    /// than the product).
    /// </summary>
    public unsafe WeightMatrix View => new(Name, GgmlType.F32, Rows, Cols,
        (nint)Unsafe.AsPointer(ref MemoryMarshal.GetArrayDataReference(Data)), (long)Rows * Cols * 4) { Mutable = true };
}

/// <summary>One decoder block with its matrices in F32, read from a model (the unit of sequential pruning).</summary>
public sealed class DenseBlock
{
    public required int Index { get; init; }
    public required float[] AttnNorm { get; init; }
    public required float[] FfnNorm { get; init; }
    public float[]? Bq { get; init; }
    public float[]? Bk { get; init; }
    public float[]? Bv { get; init; }
    public required DenseLinear Wq { get; init; }
    public required DenseLinear Wk { get; init; }
    public required DenseLinear Wv { get; init; }
    public required DenseLinear Wo { get; init; }
    public required DenseLinear Gate { get; init; }
    public required DenseLinear Up { get; init; }
    public required DenseLinear Down { get; init; }

    public IEnumerable<DenseLinear> Linears => [Wq, Wk, Wv, Wo, Gate, Up, Down];

    /// <summary>
    /// Dequantizes block <paramref name="index"/>'s matrices; <paramref name="readRow"/> gives the stored bytes of a row.
    /// With <paramref name="reuse"/> (a block done with, of the same shapes) its storage is overwritten instead of
    /// allocating a second block: <paramref name="reuse"/> must not be used afterwards.
    /// </summary>
    public static DenseBlock Load(LlamaConfig c, LlamaLayerWeights lw, int index, Func<WeightMatrix, int, byte[]>? readRow = null, DenseBlock? reuse = null)
    {
        DenseLinear L(WeightMatrix m, string suffix, LinearInput input, DenseLinear? previous)
        {
            var d = DenseLinear.Reusing(previous, $"blk.{index}.{suffix}.weight", m.Type, m.Rows, m.Cols, input);
            for (int r = 0; r < m.Rows; r++)
                Dequant.Row(m.Type, readRow != null ? readRow(m, r) : m.Row(r), d.Data.AsSpan(r * m.Cols, m.Cols));
            return d;
        }
        return new DenseBlock
        {
            Index = index,
            AttnNorm = lw.AttnNorm, FfnNorm = lw.FfnNorm, Bq = lw.Bq, Bk = lw.Bk, Bv = lw.Bv,
            Wq = L(lw.Wq, "attn_q", LinearInput.Attention, reuse?.Wq),
            Wk = L(lw.Wk, "attn_k", LinearInput.Attention, reuse?.Wk),
            Wv = L(lw.Wv, "attn_v", LinearInput.Attention, reuse?.Wv),
            Wo = L(lw.Wo, "attn_output", LinearInput.AttentionOutput, reuse?.Wo),
            Gate = L(lw.Gate, "ffn_gate", LinearInput.Ffn, reuse?.Gate),
            Up = L(lw.Up, "ffn_up", LinearInput.Ffn, reuse?.Up),
            Down = L(lw.Down, "ffn_down", LinearInput.Down, reuse?.Down),
        };
    }
}

/// <summary>
/// Runs one decoder block over one calibration window (positions 0..n-1, a fresh sequence), with the same math as
/// <see cref="InferenceSession"/>: x += Wo attn(rope(Wq norm x), rope(Wk norm x), Wv norm x); x += Down (silu(Gate norm x) * Up norm x).
/// Optionally hands the inputs of the linear layers to a callback (the statistics of the pruning methods).
/// </summary>
public sealed class BlockRunner(LlamaConfig config, int threads)
{
    readonly LlamaConfig _c = config;
    int _cap;
    float[] _xb = [], _q = [], _k = [], _v = [], _kBlocks = [], _att = [], _gate = [], _up = [], _o = [];
    // RoPE cos/sin of positions 0.._cap-1: every window starts at position 0, so one table serves all windows and blocks.
    float[] _ropeCos = [], _ropeSin = [];

    /// <summary>Delegate receiving (input kind, n x cols activations, n).</summary>
    public delegate void Capture(LinearInput input, ReadOnlySpan<float> x, int n);

    /// <summary>Updates the hidden states <paramref name="x"/> (n x dim) in place through <paramref name="b"/>.</summary>
    public void Forward(DenseBlock b, Span<float> x, int n, Capture? capture = null)
    {
        Ensure(n);
        int dim = _c.Dim, qd = _c.QDim, kvd = _c.KvDim, ffn = _c.FfnDim;
        var xb = _xb.AsSpan(0, n * dim);
        for (int t = 0; t < n; t++) Ops.RmsNorm(x.Slice(t * dim, dim), b.AttnNorm, _c.RmsEps, xb.Slice(t * dim, dim));
        capture?.Invoke(LinearInput.Attention, xb, n);
        var q = _q.AsSpan(0, n * qd);
        var k = _k.AsSpan(0, n * kvd);
        var v = _v.AsSpan(0, n * kvd);
        MatMul.MatMulRows(b.Wq.View, xb, n, q, threads);
        MatMul.MatMulRows(b.Wk.View, xb, n, k, threads);
        MatMul.MatMulRows(b.Wv.View, xb, n, v, threads);
        int half = _c.RopeDim / 2;
        for (int t = 0; t < n; t++)
        {
            if (b.Bq != null) Add(q.Slice(t * qd, qd), b.Bq);
            if (b.Bk != null) Add(k.Slice(t * kvd, kvd), b.Bk);
            if (b.Bv != null) Add(v.Slice(t * kvd, kvd), b.Bv);
            var cos = _ropeCos.AsSpan(t * half, half);
            var sin = _ropeSin.AsSpan(t * half, half);
            Ops.Rope(q.Slice(t * qd, qd), _c.Heads, _c.HeadDim, cos, sin, _c.RopeLayout);
            Ops.Rope(k.Slice(t * kvd, kvd), _c.KvHeads, _c.HeadDim, cos, sin, _c.RopeLayout);
        }
        Attention(n);
        var att = _att.AsSpan(0, n * qd);
        capture?.Invoke(LinearInput.AttentionOutput, att, n);
        var o = _o.AsSpan(0, n * dim);
        MatMul.MatMulRows(b.Wo.View, att, n, o, threads);
        Add(x[..(n * dim)], o);

        for (int t = 0; t < n; t++) Ops.RmsNorm(x.Slice(t * dim, dim), b.FfnNorm, _c.RmsEps, xb.Slice(t * dim, dim));
        capture?.Invoke(LinearInput.Ffn, xb, n);
        var gate = _gate.AsSpan(0, n * ffn);
        var up = _up.AsSpan(0, n * ffn);
        MatMul.MatMulRows(b.Gate.View, xb, n, gate, threads);
        MatMul.MatMulRows(b.Up.View, xb, n, up, threads);
        Ops.SwiGlu(gate, up);
        capture?.Invoke(LinearInput.Down, gate, n);
        MatMul.MatMulRows(b.Down.View, gate, n, o, threads);
        Add(x[..(n * dim)], o);
    }

    /// <summary>Causal grouped-query attention of the window over itself, written to _att (n x heads * head_dim): the
    /// session's kernel (<see cref="BlockedAttention"/>) over the window's K in its blocked layout.</summary>
    void Attention(int n)
    {
        BlockedAttention.WriteK(_k.AsSpan(0, n * _c.KvDim), n, _c.KvHeads, _c.HeadDim, _kBlocks, _cap, 0);
        BlockedAttention.CausalGqa(_q.AsSpan(0, n * _c.QDim), n, _c.Heads, _c.KvHeads, _c.HeadDim, _kBlocks, _cap,
            _v.AsSpan(0, n * _c.KvDim), 0, _att.AsSpan(0, n * _c.QDim), threads);
    }

    static void Add(Span<float> x, ReadOnlySpan<float> y) => Ops.Axpy(1f, y, x);

    void Ensure(int n)
    {
        if (n <= _cap) return;
        _cap = n;
        int dim = _c.Dim, qd = _c.QDim, kvd = _c.KvDim, ffn = _c.FfnDim;
        _xb = new float[n * dim]; _o = new float[n * dim];
        _q = new float[n * qd]; _att = new float[n * qd];
        _k = new float[n * kvd]; _v = new float[n * kvd];
        _kBlocks = new float[BlockedAttention.CacheFloats(n, _c.KvHeads, _c.HeadDim)];
        _gate = new float[n * ffn]; _up = new float[n * ffn];
        int half = _c.RopeDim / 2;
        _ropeCos = new float[n * half]; _ropeSin = new float[n * half];
        for (int t = 0; t < n; t++) Ops.RopeAngles(t, _c.RopeDim, _c.RopeBase, _ropeCos.AsSpan(t * half, half), _ropeSin.AsSpan(t * half, half));
    }

    /// <summary>Token embeddings of a window: (n x dim).</summary>
    public static void Embed(LlamaWeights w, int dim, ReadOnlySpan<int> tokens, Span<float> x, Func<WeightMatrix, int, byte[]>? readRow = null)
    {
        for (int t = 0; t < tokens.Length; t++)
            Dequant.Row(w.TokenEmbedding.Type, readRow != null ? readRow(w.TokenEmbedding, tokens[t]) : w.TokenEmbedding.Row(tokens[t]), x.Slice(t * dim, dim));
    }

    /// <summary>Final norm and output head: logits (n x vocab) from the last block's hidden states.</summary>
    public static void Head(LlamaConfig c, LlamaWeights w, ReadOnlySpan<float> x, int n, Span<float> logits, int threads)
    {
        var xo = new float[n * c.Dim];
        for (int t = 0; t < n; t++) Ops.RmsNorm(x.Slice(t * c.Dim, c.Dim), w.OutputNorm, c.RmsEps, xo.AsSpan(t * c.Dim, c.Dim));
        MatMul.MatMulRows(w.Output, xo, n, logits, threads);
    }
}
