using System.Diagnostics;
using System.Runtime.InteropServices;
using Pare.Formats.Gguf;
using Pare.Kernels;
using Pare.Models;
using Pare.Tensors;

namespace Pare.Pruning.Structured;

/// <summary>Settings of a SliceGPT run (defaults: microsoft/TransformerCompression's run_slicegpt.py where it applies).</summary>
public sealed record SliceGptOptions
{
    /// <summary>Fraction of the embedding dimension deleted, in [0, 1). Default 0.25 (the paper's headline setting).</summary>
    public double Slicing { get; init; } = 0.25;
    /// <summary>The kept width d' is rounded down to a multiple of this (reference --round-interval 8).</summary>
    public int RoundInterval { get; init; } = 8;
    /// <summary>Calibration windows; 128 as the reference (which uses 128 x 2048 tokens of WikiText-2).</summary>
    public int Samples { get; init; } = 128;
    /// <summary>Tokens per calibration window; 128 by default as the other structured methods here (capped at the context).</summary>
    public int SeqLen { get; init; } = 128;
    public int Seed { get; init; }
    public int Threads { get; init; } = Environment.ProcessorCount;

    public void Validate()
    {
        if (!(Slicing >= 0 && Slicing < 1)) throw new PareException($"--slicing must be in [0, 1) (got {Slicing})");
        if (RoundInterval < 1) throw new PareException($"round interval must be at least 1 (got {RoundInterval})");
        if (Samples < 1) throw new PareException($"slicegpt needs calibration samples (--samples >= 1, got {Samples})");
        if (SeqLen < 2) throw new PareException($"--seqlen must be at least 2 (got {SeqLen})");
        if (Threads < 1) throw new PareException($"threads must be at least 1 (got {Threads})");
    }

    /// <summary>The kept width d' of a model of width <paramref name="dim"/>: ⌊(1 − s)·D⌋ rounded down to the interval
    /// (at least one interval); D itself at slicing 0.</summary>
    public int KeptWidth(int dim)
    {
        if (Slicing == 0) return dim;
        int step = Math.Min(RoundInterval, dim);
        return Math.Max(step, (int)Math.Floor((1 - Slicing) * dim) / step * step);
    }
}

/// <summary>What a SliceGPT run did: widths, parameter counts (every tensor of the file, shortcuts included) and sizes.</summary>
public sealed record SliceGptResult
{
    public required string Input { get; init; }
    public required string Output { get; init; }
    public required double Slicing { get; init; }
    public required int Dim { get; init; }
    public required int SlicedDim { get; init; }
    public required int Samples { get; init; }
    public required int SeqLen { get; init; }
    public required int Seed { get; init; }
    public required string Calibration { get; init; }
    public required long ParamsBefore { get; init; }
    public required long ParamsAfter { get; init; }
    /// <summary>Block linear parameters (q, k, v, o, gate, up, down) before, and after plus the two shortcuts per block.</summary>
    public required long BlockParamsBefore { get; init; }
    public required long BlockParamsAfter { get; init; }
    public required double Seconds { get; init; }
    public required long InputBytes { get; init; }
    public required long OutputBytes { get; init; }
    /// <summary>Fraction of all the model's parameters removed (embedding, head, blocks; the shortcuts count as added).</summary>
    public double Removed => 1 - (double)ParamsAfter / ParamsBefore;
    public double BlockRemoved => 1 - (double)BlockParamsAfter / BlockParamsBefore;
}

/// <summary>
/// SliceGPT (Ashkboos et al., ICLR 2024): deletes embedding dimensions. (1) Computational invariance: every RMSNorm's
/// scale γ is folded into the linear layers it feeds (W ← W·diag(γ)), leaving weightless norms, and RMSN(x·Q) =
/// RMSN(x)·Q for orthogonal Q. (2) PCA of the residual stream on the calibration windows: for the embeddings (Q₀), the
/// mid-block residual (after attention, Q_mid) and each block's output (Q_out = the next block's Q_in), Q = the
/// eigenvectors of Σ XᵀX + 1% of its mean diagonal, by descending eigenvalue (<see cref="SymmetricEigen"/>).
/// (3) Rotate and keep the first d' principal directions: E ← E·Q₀, W_qkv ← W·diag(γ)·Q_in, W_o ← Q_midᵀ·W_o,
/// W_gate/up ← W·diag(γ)·Q_mid, W_down ← Q_outᵀ·W_down, head ← W·diag(γ)·Q_L, all to d' columns/rows; the skip path
/// of each block carries S_attn = Q_midᵀQ_in and S_ffn = Q_outᵀQ_mid (d' x d'), and every norm keeps dividing by the
/// original width D. At slicing 0 the model is only rotated and computes the dense model's function.
/// <para>Deviation from the reference: the PCA signals come from one pass through the DENSE model (as the other
/// structured methods here), not from the already sliced preceding blocks; no random final orientation; the embedding
/// rows are not mean-centred (the reference does not bake means in for Llama either).</para>
/// <para>File: <c>general.architecture = slicegpt</c>, the <c>llama.*</c> keys renamed <c>slicegpt.*</c> with
/// <c>slicegpt.embedding_length</c> = d' and <c>slicegpt.rms_norm_width</c> = D, per block
/// <c>blk.N.attn_shortcut.weight</c> and <c>blk.N.ffn_shortcut.weight</c> (F32, d' x d'), norm weights all ones, every
/// rotated matrix F32. llama.cpp has no such architecture and refuses the file (it cannot express the shortcut
/// rotations nor the width-D RMS denominator).</para>
/// </summary>
public static class SliceGpt
{
    public const string Architecture = "slicegpt";

    public static SliceGptResult Run(string modelPath, string outputPath, SliceGptOptions options, CalibrationSource? calibration,
        IProgress<PruneProgress>? progress = null, CancellationToken cancel = default)
    {
        options.Validate();
        Pare.Formats.OutputPath.Check(modelPath, outputPath);
        if (!File.Exists(modelPath)) throw new PareException($"model file not found: {modelPath}");
        var sw = Stopwatch.StartNew();

        // SliceGPT's invariance needs RMSNorm; the Llama family has it, other GGUF architectures (LayerNorm: bert, gpt2...) do not.
        using (var g = GgufFile.Open(modelPath))
        {
            string arch = g.GetString("general.architecture") ?? "?";
            if (arch is not ("llama" or "mistral" or "qwen2"))
                throw new PareException(arch == Architecture
                    ? $"{modelPath} is already a SliceGPT model; slice the dense model"
                    : $"{modelPath}: slicegpt needs a model with RMSNorm (llama, mistral, qwen2); this one is '{arch}'");
        }
        using var model = LlamaModel.Load(modelPath);
        var f = model.Gguf ?? throw new PareException($"{modelPath}: slicegpt reads GGUF files only");
        if (CompactFormat.IsCompact(f)) throw new PareException(CompactFormat.Explain(modelPath));
        var c = model.Config;
        var w = model.Weights;
        if (!c.IsUniform || w.Layers.Any(lw => lw.Bo != null || lw.BDown != null))
            throw new PareException($"{modelPath} is already structurally pruned (per-layer shapes or output biases); slice the dense model");
        int D = c.Dim, dp = options.KeptWidth(D), seqLen = Math.Min(options.SeqLen, c.ContextLength);
        double hiddenBytes = (double)options.Samples * seqLen * D * sizeof(float);
        long available = GC.GetGCMemoryInfo().TotalAvailableMemoryBytes;
        if (hiddenBytes > available / 2.0)
            throw new PareException($"{options.Samples} calibration windows of {seqLen} tokens need {hiddenBytes / (1 << 30):F1} GiB of activations; use fewer --samples or a shorter --seqlen");
        var (windows, calibDesc) = Calibration.Load(model, calibration, options.Samples, seqLen, options.Seed, "slicegpt");
        seqLen = windows[0].Length;

        // 1. PCA bases of the residual stream of the dense model: basis[0] = embeddings, basis[2l+1] = block l's
        //    mid-block residual, basis[2l+2] = block l's output (block l+1's input).
        var cov = new double[2 * c.Layers + 1][];
        for (int i = 0; i < cov.Length; i++) cov[i] = new double[(long)D * D];
        {
            var hidden = windows.Select(win => { var x = new float[(long)seqLen * D]; BlockRunner.Embed(w, D, win, x); return x; }).ToArray();
            foreach (var x in hidden) AddGram(cov[0], x, seqLen, D, options.Threads);
            var runner = new BlockRunner(c, options.Threads);
            DenseBlock? block = null;
            for (int l = 0; l < c.Layers; l++)
            {
                cancel.ThrowIfCancellationRequested();
                progress?.Report(new(l, c.Layers, "calibrating", 0.5 * l / c.Layers));
                block = DenseBlock.Load(c, w.Layers[l], l, reuse: block);
                foreach (var x in hidden)
                {
                    // At the FFN input the runner has already added the attention output to x: x holds the mid-block residual.
                    runner.Forward(block, x, seqLen, (input, _, n) => { if (input == LinearInput.Ffn) AddGram(cov[2 * l + 1], x, n, D, options.Threads); });
                    AddGram(cov[2 * l + 2], x, seqLen, D, options.Threads);
                }
            }
        }
        var q = new double[cov.Length][];
        for (int i = 0; i < cov.Length; i++)
        {
            cancel.ThrowIfCancellationRequested();
            progress?.Report(new(i / 2, c.Layers, "PCA", 0.5 + 0.4 * i / cov.Length));
            q[i] = PcaBasis(cov[i], D);
            cov[i] = [];
        }

        // 2. The output file: rotated, sliced F32 matrices.
        progress?.Report(new(c.Layers, c.Layers, "writing", 0.9));
        var writer = new GgufWriter { Alignment = f.Alignment };
        string prefix = c.Architecture + ".";
        foreach (var (k, v) in f.MetadataList)
        {
            if (k == "general.architecture") writer.Set(k, Architecture);
            else if (k.StartsWith(prefix, StringComparison.Ordinal)) writer.Set(Architecture + "." + k[prefix.Length..], v);
            else writer.Set(k, v);
        }
        string a = Architecture + ".";
        writer.Set(a + "embedding_length", (uint)dp);
        writer.Set(a + "rms_norm_width", (uint)D);
        writer.Set(a + "attention.key_length", (uint)c.HeadDim);
        writer.Set(a + "attention.value_length", (uint)c.HeadDim);
        writer.Set(a + "rope.dimension_count", (uint)c.RopeDim);
        writer.Set("pare.prune.method", "slicegpt");
        writer.Set("pare.prune.ratio", (float)options.Slicing);
        writer.Set("pare.prune.samples", (uint)windows.Length);
        writer.Set("pare.prune.seqlen", (uint)seqLen);
        writer.Set("pare.prune.seed", (uint)options.Seed);
        writer.Set("pare.prune.calibration", calibDesc);

        long after = 0;
        void Add(string name, int rows, int cols, Func<float[]> make)
        {
            after += (long)rows * cols;
            writer.AddTensor(name, GgmlType.F32, cols == 1 ? [rows] : [cols, rows], s => s.Write(MemoryMarshal.AsBytes(make().AsSpan())));
        }
        float[] Ones() => [.. Enumerable.Repeat(1f, dp)];
        var handled = new HashSet<string>(StringComparer.Ordinal);
        int vocab = c.VocabSize, th = options.Threads;
        Add("token_embd.weight", vocab, dp, () => RotateIn(Dense(w.TokenEmbedding), vocab, D, null, q[0], dp, th));
        Add("output_norm.weight", dp, 1, Ones);
        Add("output.weight", vocab, dp, () => RotateIn(Dense(w.Output), vocab, D, w.OutputNorm, q[^1], dp, th));
        handled.UnionWith(["token_embd.weight", "output_norm.weight", "output.weight"]);
        long blockAfter = 0;
        for (int l = 0; l < c.Layers; l++)
        {
            var lw = w.Layers[l];
            double[] qIn = q[2 * l], qMid = q[2 * l + 1], qOut = q[2 * l + 2];
            string p = $"blk.{l}.";
            int qd = c.QDimAt(l), kvd = c.KvDimAt(l), ffn = c.FfnAt(l);
            Add(p + "attn_norm.weight", dp, 1, Ones);
            Add(p + "attn_q.weight", qd, dp, () => RotateIn(Dense(lw.Wq), qd, D, lw.AttnNorm, qIn, dp, th));
            Add(p + "attn_k.weight", kvd, dp, () => RotateIn(Dense(lw.Wk), kvd, D, lw.AttnNorm, qIn, dp, th));
            Add(p + "attn_v.weight", kvd, dp, () => RotateIn(Dense(lw.Wv), kvd, D, lw.AttnNorm, qIn, dp, th));
            Add(p + "attn_output.weight", dp, qd, () => RotateOut(qMid, D, dp, Dense(lw.Wo), qd, th));
            Add(p + "attn_shortcut.weight", dp, dp, () => ShortcutMatrix(qIn, qMid, D, dp));
            Add(p + "ffn_norm.weight", dp, 1, Ones);
            Add(p + "ffn_gate.weight", ffn, dp, () => RotateIn(Dense(lw.Gate), ffn, D, lw.FfnNorm, qMid, dp, th));
            Add(p + "ffn_up.weight", ffn, dp, () => RotateIn(Dense(lw.Up), ffn, D, lw.FfnNorm, qMid, dp, th));
            Add(p + "ffn_down.weight", dp, ffn, () => RotateOut(qOut, D, dp, Dense(lw.Down), ffn, th));
            Add(p + "ffn_shortcut.weight", dp, dp, () => ShortcutMatrix(qMid, qOut, D, dp));
            blockAfter += (long)(2 * qd + 2 * kvd + 3 * ffn) * dp + 2L * dp * dp;
            handled.UnionWith(new[] { "attn_norm", "attn_q", "attn_k", "attn_v", "attn_output", "ffn_norm", "ffn_gate", "ffn_up", "ffn_down" }.Select(s => p + s + ".weight"));
        }
        // Anything else (qwen2's q/k/v biases: added after the product, unaffected by the rotation) is copied as it is.
        using var src = File.OpenHandle(modelPath, FileMode.Open, FileAccess.Read, FileShare.Read);
        foreach (var t in f.Tensors.Where(t => !handled.Contains(t.Name)))
        {
            var info = t;
            after += t.ElementCount;
            writer.AddTensor(t.Name, t.Type, t.Dims, o =>
            {
                var buf = new byte[info.ByteSize];
                RandomAccess.Read(src, buf, f.DataOffset + info.Offset);
                o.Write(buf);
            });
        }
        long before = f.Tensors.Sum(t => t.ElementCount);
        long blockBefore = Enumerable.Range(0, c.Layers).Sum(l => (long)(2 * c.QDimAt(l) + 2 * c.KvDimAt(l) + 3 * c.FfnAt(l)) * D);
        cancel.ThrowIfCancellationRequested();
        writer.Write(outputPath);
        progress?.Report(new(c.Layers, c.Layers, "writing", 1));
        return new SliceGptResult
        {
            Input = modelPath, Output = outputPath, Slicing = options.Slicing, Dim = D, SlicedDim = dp,
            Samples = windows.Length, SeqLen = seqLen, Seed = options.Seed, Calibration = calibDesc,
            ParamsBefore = before, ParamsAfter = after, BlockParamsBefore = blockBefore, BlockParamsAfter = blockAfter,
            Seconds = sw.Elapsed.TotalSeconds, InputBytes = new FileInfo(modelPath).Length, OutputBytes = new FileInfo(outputPath).Length,
        };
    }

    /// <summary>Eigenvectors (D x D row-major, columns by descending eigenvalue) of H + 1% of its mean diagonal (the
    /// reference's damping); H = Σ XᵀX given as its upper triangle.</summary>
    public static double[] PcaBasis(double[] gram, int d)
    {
        double damp = 0;
        for (int i = 0; i < d; i++) damp += gram[(long)i * d + i];
        damp = 0.01 * damp / d;
        var h = (double[])gram.Clone();
        for (int i = 0; i < d; i++) h[(long)i * d + i] += damp;
        return SymmetricEigen.Decompose(h, d).Vectors;
    }

    /// <summary>Adds XᵀX of the n x d rows of <paramref name="x"/> to the upper triangle of <paramref name="gram"/> (d x d).</summary>
    public static void AddGram(double[] gram, ReadOnlySpan<float> x, int n, int d, int threads)
    {
        var xd = new double[(long)n * d];
        for (long i = 0; i < xd.Length; i++) xd[i] = x[(int)i];
        Parallel.For(0, d, new ParallelOptions { MaxDegreeOfParallelism = threads }, i =>
        {
            var row = gram.AsSpan(i * d + i, d - i);
            for (int t = 0; t < n; t++)
            {
                double xi = xd[(long)t * d + i];
                if (xi == 0) continue;
                var xt = xd.AsSpan((int)((long)t * d + i), d - i);
                int j = 0;
                if (System.Numerics.Vector.IsHardwareAccelerated)
                {
                    int vw = System.Numerics.Vector<double>.Count;
                    var vx = new System.Numerics.Vector<double>(xi);
                    for (; j + vw <= row.Length; j += vw)
                        (new System.Numerics.Vector<double>(row[j..]) + vx * new System.Numerics.Vector<double>(xt[j..])).CopyTo(row[j..]);
                }
                for (; j < row.Length; j++) row[j] += xi * xt[j];
            }
        });
    }

    /// <summary>W·diag(γ)·Q[:, :d'] of a rows x D matrix W (γ null = ones): rows x d'.</summary>
    public static float[] RotateIn(float[] wt, int rows, int d, float[]? gamma, double[] q, int dp, int threads)
    {
        var y = new float[(long)rows * dp];
        Parallel.For(0, rows, new ParallelOptions { MaxDegreeOfParallelism = threads }, () => new double[dp], (r, _, acc) =>
        {
            Array.Clear(acc);
            for (int i = 0; i < d; i++)
            {
                double v = wt[(long)r * d + i] * (gamma != null ? (double)gamma[i] : 1.0);
                if (v == 0) continue;
                var qi = q.AsSpan(i * d, dp);
                for (int j = 0; j < dp; j++) acc[j] += v * qi[j];
            }
            for (int j = 0; j < dp; j++) y[(long)r * dp + j] = (float)acc[j];
            return acc;
        }, _ => { });
        return y;
    }

    /// <summary>Q[:, :d']ᵀ·W of a D x cols matrix W: d' x cols.</summary>
    public static float[] RotateOut(double[] q, int d, int dp, float[] wt, int cols, int threads)
    {
        var y = new float[(long)dp * cols];
        Parallel.For(0, dp, new ParallelOptions { MaxDegreeOfParallelism = threads }, j =>
        {
            var acc = new double[cols];
            for (int i = 0; i < d; i++)
            {
                double qij = q[(long)i * d + j];
                for (int k = 0; k < cols; k++) acc[k] += qij * wt[(long)i * cols + k];
            }
            for (int k = 0; k < cols; k++) y[(long)j * cols + k] = (float)acc[k];
        });
        return y;
    }

    /// <summary>The skip-path matrix from basis <paramref name="from"/> to basis <paramref name="to"/>, sliced:
    /// S = Q_to[:, :d']ᵀ·Q_from[:, :d'] (d' x d', rows = outputs), so that x_to = S·x_from.</summary>
    public static float[] ShortcutMatrix(double[] from, double[] to, int d, int dp)
    {
        var s = new float[(long)dp * dp];
        for (int j = 0; j < dp; j++)
            for (int k = 0; k < dp; k++)
            {
                double acc = 0;
                for (int i = 0; i < d; i++) acc += to[(long)i * d + j] * from[(long)i * d + k];
                s[(long)j * dp + k] = (float)acc;
            }
        return s;
    }

    static float[] Dense(WeightMatrix m)
    {
        var y = new float[(long)m.Rows * m.Cols];
        for (int r = 0; r < m.Rows; r++) Dequant.Row(m.Type, m.Row(r), y.AsSpan((int)((long)r * m.Cols), m.Cols));
        return y;
    }
}
