using Pare.Models;
using Pare.Training.Ops;

namespace Pare.Training;

/// <summary>
/// The Llama decoder written as explicit forward and backward passes over a batch of sequences, reading F32 weights from a
/// <see cref="ParameterStore"/> and adding gradients into it. The forward pass keeps the activations the backward pass needs.
/// </summary>
/// <remarks>
/// Per block (pre-norm, as in Llama): x2 = x + Wo · attn(rope(Wq·n1), rope(Wk·n1), Wv·n1) with n1 = rmsnorm(x);
/// x' = x2 + Down · (silu(Gate·n2) ⊙ Up·n2) with n2 = rmsnorm(x2). Logits = Head · rmsnorm(x_L); loss = mean cross-entropy.
/// Per-layer shapes (a structured <c>deci</c> model) give each block its own heads, KV heads and FFN width (the scratch
/// buffers have the largest layer's). A SliceGPT model (<see cref="LlamaConfig.Sliced"/>) carries the residual through each
/// block's shortcuts, x2 = S_attn·x + Wo·attn(...), x' = S_ffn·x2 + Down·(...), and every norm divides by the original
/// width D (<see cref="LlamaConfig.NormWidth"/>); the shortcuts are trained like the other matrices.
/// </remarks>
public sealed class TrainingModel
{
    readonly ParameterStore _p;
    readonly LlamaConfig _c;
    readonly Rope _rope;
    readonly int _threads;
    readonly int _maxRows;

    // Saved activations, per layer, for up to _maxRows rows (= sequences · seqLen).
    sealed class LayerActs(int rows, LlamaConfig c)
    {
        public readonly float[] XIn = new float[rows * c.Dim];     // (rows, dim) residual stream entering the block
        public readonly float[] RstdA = new float[rows];            // (rows)
        public readonly float[] Xa = new float[rows * c.Dim];      // (rows, dim) attn_norm output
        public readonly float[] Q = new float[rows * c.QDim];      // (rows, heads · head_dim) after RoPE
        public readonly float[] K = new float[rows * c.KvDim];     // (rows, kv_heads · head_dim) after RoPE
        public readonly float[] V = new float[rows * c.KvDim];     // (rows, kv_heads · head_dim)
        public readonly float[] Att = new float[rows * c.QDim];    // (rows, heads · head_dim) attention output
        public readonly float[] X2 = new float[rows * c.Dim];      // (rows, dim) residual after attention
        public readonly float[] RstdF = new float[rows];            // (rows)
        public readonly float[] Xf = new float[rows * c.Dim];      // (rows, dim) ffn_norm output
        public readonly float[] G = new float[rows * c.FfnDim];    // (rows, ffn) gate pre-activation
        public readonly float[] U = new float[rows * c.FfnDim];    // (rows, ffn) up projection
        public readonly float[] H = new float[rows * c.FfnDim];    // (rows, ffn) silu(G) ⊙ U
    }

    readonly LayerActs[] _acts;
    // Every matrix transposed, (in, out), same offsets as the parameter store: refreshed at the start of each forward pass.
    readonly float[] _wT;
    readonly float[] _x, _xFinal, _rstdO, _xo, _logits;        // (rows, dim) ×3, (rows), (rows, vocab)
    // Gradient scratch.
    readonly float[] _dx, _dn, _dq, _dk, _dv, _datt, _dh, _dg, _du; // (rows, dim|dim|qd|kvd|kvd|qd|ffn|ffn|ffn)
    readonly float[] _ds;                                          // (rows, dim): SliceGPT's shortcut path (empty otherwise)
    readonly int _normWidth;                                       // 0 = dim; SliceGPT: the original width D

    public TrainingModel(ParameterStore p, int maxSequences, int seqLen, int threads)
    {
        _p = p;
        _c = p.Config;
        _threads = Math.Max(1, threads);
        SeqLen = seqLen;
        _maxRows = maxSequences * seqLen;
        _rope = new Rope(seqLen, _c.RopeDim, _c.RopeBase);
        int r = _maxRows;
        _acts = [.. Enumerable.Range(0, _c.Layers).Select(_ => new LayerActs(r, _c))];
        _wT = new float[p.Values.Length];
        _x = new float[r * _c.Dim]; _xFinal = new float[r * _c.Dim]; _rstdO = new float[r]; _xo = new float[r * _c.Dim];
        _logits = new float[(long)r * _c.VocabSize];
        _dx = new float[r * _c.Dim]; _dn = new float[r * _c.Dim];
        _dq = new float[r * _c.QDim]; _datt = new float[r * _c.QDim];
        _dk = new float[r * _c.KvDim]; _dv = new float[r * _c.KvDim];
        _dh = new float[r * _c.FfnDim]; _dg = new float[r * _c.FfnDim]; _du = new float[r * _c.FfnDim];
        _ds = _c.Sliced ? new float[r * _c.Dim] : [];
        _normWidth = _c.NormWidth ?? 0;
    }

    public int SeqLen { get; }

    /// <summary>
    /// Frozen per-layer output biases of attn_output and ffn_down (FLAP's bias compensation), (dim) each, null = none.
    /// They are added in the forward pass and not trained; a constant term leaves every other gradient's formula unchanged.
    /// </summary>
    public float[]?[]? OutputBias { get; set; }
    /// <inheritdoc cref="OutputBias"/>
    public float[]?[]? DownBias { get; set; }

    static void AddBias(Span<float> y, float[]? b, int n, int dim)
    {
        if (b == null) return;
        for (int r = 0; r < n; r++)
        {
            var row = y.Slice(r * dim, dim);
            for (int j = 0; j < dim; j++) row[j] += b[j];
        }
    }

    /// <summary>The logits of the last <see cref="Forward"/>, (rows, vocab); overwritten by the loss gradient in <see cref="Step"/>.</summary>
    public ReadOnlySpan<float> Logits(int rows) => _logits.AsSpan(0, rows * _c.VocabSize);

    /// <summary>
    /// Forward pass over <paramref name="inputs"/> (sequences · seqLen tokens) and, when <paramref name="gradScale"/> ≠ 0,
    /// the backward pass of gradScale · Σ loss, adding into the parameter gradients. Returns Σ_t loss_t (nats); with
    /// <paramref name="weights"/> (one per target), Σ_t w_t · loss_t and its gradient.
    /// </summary>
    public double Step(ReadOnlySpan<int> inputs, ReadOnlySpan<int> targets, float gradScale, ReadOnlySpan<float> weights = default)
    {
        int rows = inputs.Length;
        Forward(inputs);
        double loss = CrossEntropy.ForwardBackward(_logits.AsSpan(0, rows * _c.VocabSize), targets, _c.VocabSize, gradScale, _threads, weights);
        if (gradScale != 0) Backward(inputs);
        return loss;
    }

    /// <summary>Computes the logits of every position (rows = inputs.Length, a multiple of <see cref="SeqLen"/>).</summary>
    public void Forward(ReadOnlySpan<int> inputs)
    {
        int n = inputs.Length;
        if (n % SeqLen != 0 || n > _maxRows) throw new ArgumentException($"{n} tokens is not a whole number of sequences of {SeqLen} up to {_maxRows}");
        int dim = _c.Dim;
        var x = _x.AsSpan(0, n * dim);
        var matrices = _p.All.Where(q => q.Rows > 1).ToArray();
        FixedParallel.For(matrices.Length, _threads, (i0, i1) =>
        {
            for (int i = i0; i < i1; i++) Linear.Transpose(_p.Value(matrices[i]), matrices[i].Rows, matrices[i].Cols, WT(matrices[i]));
        });
        Embedding.Forward(inputs, _p.Value(_p.TokenEmbedding), dim, x);
        for (int l = 0; l < _c.Layers; l++)
        {
            var a = _acts[l];
            var w = _p.Layers[l];
            int qd = _c.QDimAt(l), kvd = _c.KvDimAt(l), ffn = _c.FfnAt(l);
            x.CopyTo(a.XIn);
            RmsNorm.Forward(x, _p.Value(w.AttnNorm), _c.RmsEps, n, dim, a.Xa, a.RstdA, _normWidth);
            Forward(a.Xa, w.Wq, n, a.Q);
            Forward(a.Xa, w.Wk, n, a.K);
            Forward(a.Xa, w.Wv, n, a.V);
            _rope.Forward(a.Q.AsSpan(0, n * qd), n, SeqLen, _c.HeadsAt(l), _c.HeadDim);
            _rope.Forward(a.K.AsSpan(0, n * kvd), n, SeqLen, _c.KvHeadsAt(l), _c.HeadDim);
            Attention.Forward(a.Q.AsSpan(0, n * qd), a.K.AsSpan(0, n * kvd), a.V.AsSpan(0, n * kvd), a.Att.AsSpan(0, n * qd), Shape(n, l), _threads);
            var o = _dn.AsSpan(0, n * dim); // scratch: nothing needs it during the forward pass
            Forward(a.Att, w.Wo, n, o);
            AddBias(o, OutputBias?[l], n, dim);
            if (w.AttnShortcut != null) Shortcut(x, w.AttnShortcut, n);
            for (int i = 0; i < x.Length; i++) x[i] += o[i];
            x.CopyTo(a.X2);
            RmsNorm.Forward(x, _p.Value(w.FfnNorm), _c.RmsEps, n, dim, a.Xf, a.RstdF, _normWidth);
            Forward(a.Xf, w.Gate, n, a.G);
            Forward(a.Xf, w.Up, n, a.U);
            SwiGlu.Forward(a.G.AsSpan(0, n * ffn), a.U.AsSpan(0, n * ffn), a.H.AsSpan(0, n * ffn));
            Forward(a.H, w.Down, n, o);
            AddBias(o, DownBias?[l], n, dim);
            if (w.FfnShortcut != null) Shortcut(x, w.FfnShortcut, n);
            for (int i = 0; i < x.Length; i++) x[i] += o[i];
        }
        x.CopyTo(_xFinal);
        RmsNorm.Forward(x, _p.Value(_p.OutputNorm), _c.RmsEps, n, dim, _xo, _rstdO, _normWidth);
        Forward(_xo, _p.Head, n, _logits);
    }

    /// <summary>SliceGPT's skip path: x (n, d') ← x · Sᵀ, through the shortcut scratch.</summary>
    void Shortcut(Span<float> x, ParamInfo s, int n)
    {
        var t = _ds.AsSpan(0, n * _c.Dim);
        Forward(x, s, n, t);
        t.CopyTo(x);
    }

    /// <summary>Backward of x_out = S·x_in + (block branch): dS += dxᵀ·x_in and dx ← dx·S (the residual path's gradient
    /// at x_in, before the branch's norm adds its share).</summary>
    void ShortcutBackward(Span<float> dx, ReadOnlySpan<float> xIn, ParamInfo s, int n)
    {
        int dim = _c.Dim;
        var t = _ds.AsSpan(0, n * dim);
        Linear.Backward(dx, xIn[..(n * dim)], _p.Value(s), n, dim, dim, _p.Grad(s), t, false, _threads);
        t.CopyTo(dx);
    }

    /// <summary>Backward pass from the logit gradients left in the logits buffer by the loss.</summary>
    void Backward(ReadOnlySpan<int> inputs)
    {
        int n = inputs.Length;
        int dim = _c.Dim;
        var dx = _dx.AsSpan(0, n * dim);   // gradient of the loss with respect to the residual stream
        var dn = _dn.AsSpan(0, n * dim);   // gradient with respect to a norm's output

        // Head and final norm.
        Linear.Backward(_logits.AsSpan(0, n * _c.VocabSize), _xo, _p.Value(_p.Head), n, _c.VocabSize, dim, _p.Grad(_p.Head), dn, false, _threads);
        dx.Clear();
        RmsNorm.Backward(dn, _xFinal, _p.Value(_p.OutputNorm), _rstdO, n, dim, dx, _p.Grad(_p.OutputNorm), _normWidth);

        for (int l = _c.Layers - 1; l >= 0; l--)
        {
            var a = _acts[l];
            var w = _p.Layers[l];
            int qd = _c.QDimAt(l), kvd = _c.KvDimAt(l), ffn = _c.FfnAt(l);
            // Feed-forward: x' = x2 + Down · h (SliceGPT: S_ffn · x2 + Down · h).
            var dh = _dh.AsSpan(0, n * ffn);
            Linear.Backward(dx, a.H, _p.Value(w.Down), n, dim, ffn, _p.Grad(w.Down), dh, false, _threads);
            SwiGlu.Backward(a.G.AsSpan(0, n * ffn), a.U.AsSpan(0, n * ffn), dh, _dg.AsSpan(0, n * ffn), _du.AsSpan(0, n * ffn));
            Linear.Backward(_dg, a.Xf, _p.Value(w.Gate), n, ffn, dim, _p.Grad(w.Gate), dn, false, _threads);
            Linear.Backward(_du, a.Xf, _p.Value(w.Up), n, ffn, dim, _p.Grad(w.Up), dn, true, _threads);
            if (w.FfnShortcut != null) ShortcutBackward(dx, a.X2, w.FfnShortcut, n);
            RmsNorm.Backward(dn, a.X2, _p.Value(w.FfnNorm), a.RstdF, n, dim, dx, _p.Grad(w.FfnNorm), _normWidth);

            // Attention: x2 = x + Wo · att.
            var datt = _datt.AsSpan(0, n * qd);
            Linear.Backward(dx, a.Att, _p.Value(w.Wo), n, dim, qd, _p.Grad(w.Wo), datt, false, _threads);
            var dq = _dq.AsSpan(0, n * qd);
            var dk = _dk.AsSpan(0, n * kvd);
            var dv = _dv.AsSpan(0, n * kvd);
            Attention.Backward(a.Q.AsSpan(0, n * qd), a.K.AsSpan(0, n * kvd), a.V.AsSpan(0, n * kvd), datt, dq, dk, dv, Shape(n, l), _threads);
            _rope.Backward(dq, n, SeqLen, _c.HeadsAt(l), _c.HeadDim);
            _rope.Backward(dk, n, SeqLen, _c.KvHeadsAt(l), _c.HeadDim);
            Linear.Backward(dq, a.Xa, _p.Value(w.Wq), n, qd, dim, _p.Grad(w.Wq), dn, false, _threads);
            Linear.Backward(dk, a.Xa, _p.Value(w.Wk), n, kvd, dim, _p.Grad(w.Wk), dn, true, _threads);
            Linear.Backward(dv, a.Xa, _p.Value(w.Wv), n, kvd, dim, _p.Grad(w.Wv), dn, true, _threads);
            if (w.AttnShortcut != null) ShortcutBackward(dx, a.XIn, w.AttnShortcut, n);
            RmsNorm.Backward(dn, a.XIn, _p.Value(w.AttnNorm), a.RstdA, n, dim, dx, _p.Grad(w.AttnNorm), _normWidth);
        }
        Embedding.Backward(inputs, dx, dim, _p.Grad(_p.TokenEmbedding));
    }

    Span<float> WT(ParamInfo p) => _wT.AsSpan((int)p.Offset, (int)p.Length);

    /// <summary>y (n, p.Rows) = x (n, p.Cols) · pᵀ.</summary>
    void Forward(ReadOnlySpan<float> x, ParamInfo p, int n, Span<float> y) =>
        Linear.Forward(x[..(n * p.Cols)], WT(p), n, p.Cols, p.Rows, y[..(n * p.Rows)], _threads);

    AttentionShape Shape(int rows, int layer) => new(rows / SeqLen, SeqLen, _c.HeadsAt(layer), _c.KvHeadsAt(layer), _c.HeadDim);

    /// <summary>Matrix-product FLOPs of one training step over <paramref name="tokens"/> tokens (forward + backward ≈ 3 × forward),
    /// counting attention's QK and PV products with their causal half.</summary>
    public static double TrainFlops(LlamaConfig c, int seqLen, long tokens)
    {
        double perToken = 2.0 * (c.Dim * (double)c.QDim * 2 + 2.0 * c.Dim * c.KvDim + 3.0 * c.Dim * c.FfnDim) * c.Layers
            + 2.0 * c.Dim * c.VocabSize
            + 2.0 * 2 * c.QDim * (seqLen + 1) / 2.0 * c.Layers;
        return 3 * perToken * tokens;
    }
}
