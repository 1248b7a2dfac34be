using Pare.Models.Bert;

namespace Pare.Pruning;

/// <summary>Options of <see cref="BertPruner.Prune"/>.</summary>
public sealed record BertPruneOptions
{
    /// <summary>Default SparseGPT.</summary>
    public PruneMethod Method { get; init; } = PruneMethod.SparseGpt;
    /// <summary>Default 50% unstructured.</summary>
    public SparsityPattern Pattern { get; init; } = SparsityPattern.Unstructured(0.5);
    /// <summary>SparseGPT's column block. Default 128.</summary>
    public int BlockSize { get; init; } = 128;
    /// <summary>SparseGPT's dampening, a fraction of the Hessian's mean diagonal. Default 0.01.</summary>
    public double Damp { get; init; } = 0.01;
    /// <summary>oBERT: weights per Fisher block. Default 50 (the paper's).</summary>
    public int FisherBlockSize { get; init; } = OBert.DefaultBlockSize;
    /// <summary>oBERT: dampening λ as a fraction of the mean Fisher diagonal. Default 1e-5.</summary>
    public double FisherDamp { get; init; } = OBert.DefaultDamp;
    /// <summary>oBERT: calibration sentences per forward/backward pass. Default 16.</summary>
    public int GradientChunk { get; init; } = 16;
    /// <summary>oBERT: seed of the target noise. Default 0.</summary>
    public int Seed { get; init; }
    /// <summary>Kernel and pruning threads. Default all cores.</summary>
    public int Threads { get; init; } = Environment.ProcessorCount;
}

/// <summary>
/// Weight pruning of a BERT encoder with the decoder's methods (<see cref="Magnitude"/>, <see cref="Wanda"/>,
/// <see cref="SparseGpt"/>) and <see cref="OBert"/>, unstructured or N:M, on the six linear layers of every block (embeddings, LayerNorms and
/// biases stay dense). Calibration is sequential, as in SparseGPT's reference code: block l's input statistics come from
/// the calibration sentences run through blocks 0..l-1 already pruned; q, k and v share their input's statistics.
/// </summary>
public static class BertPruner
{
    static readonly (string Weight, string Input)[] Linears =
    [
        ("attention.self.query", "attention.self"), ("attention.self.key", "attention.self"), ("attention.self.value", "attention.self"),
        ("attention.output.dense", "attention.output.dense"), ("intermediate.dense", "intermediate.dense"), ("output.dense", "output.dense"),
    ];

    /// <summary>A pruned copy of <paramref name="model"/>'s tensors; <paramref name="calibration"/> are token ids
    /// ([CLS] … [SEP]) for the methods that need inputs.</summary>
    public static BertTensors Prune(BertModel model, IReadOnlyList<int[]> calibration, BertPruneOptions o, IProgress<double>? progress = null, CancellationToken ct = default)
    {
        var c = model.Config;
        var t = new BertTensors();
        foreach (var (name, shape) in BertTensors.Expected(c)) t.Add(name, shape, (float[])model.Tensors.Get(name).Clone());
        foreach (var (w, _) in Linears) o.Pattern.CheckFits(w, (int)t.Shape($"encoder.layer.0.{w}.weight")[1]);
        if (o.Method == PruneMethod.Magnitude)
        {
            for (int l = 0; l < c.Layers; l++)
                foreach (var (w, _) in Linears) PruneOne(t, $"encoder.layer.{l}.{w}.weight", o, null);
            return t;
        }
        if (calibration.Count == 0) throw new PareException($"{o.Method} needs calibration sentences");
        if (o.Method == PruneMethod.OBert) return PruneOBert(model, t, calibration, o, progress, ct);
        var encoder = new BertEncoder(c, new BertWeights(c, t));
        var h = encoder.Embed(calibration);
        for (int l = 0; l < c.Layers; l++)
        {
            ct.ThrowIfCancellationRequested();
            var stats = new Dictionary<string, LayerStats>(StringComparer.Ordinal);
            var input = (float[])h.Hidden.Clone();
            encoder.RunLayer(l, h, o.Threads, (name, x, n) =>
            {
                if (!stats.TryGetValue(name, out var s)) stats[name] = s = new LayerStats(x.Length / n, o.Method == PruneMethod.SparseGpt, 0);
                s.Add(x, n, o.Threads);
            });
            foreach (var (w, inp) in Linears) PruneOne(t, $"encoder.layer.{l}.{w}.weight", o, stats[inp]);
            // The next block's input: this block again, now pruned, on the same input.
            encoder = new BertEncoder(c, new BertWeights(c, t));
            input.CopyTo(h.Hidden, 0);
            encoder.RunLayer(l, h, o.Threads);
            progress?.Report((l + 1.0) / c.Layers);
        }
        return t;
    }

    /// <summary>
    /// oBERT (<see cref="OBert"/>) on the encoder, block by block in order as the other methods. The loss is the distance
    /// of each calibration sentence's vector to the dense model's: L_s = ½‖ê_s(w) − (ê_s,dense + ε_s)‖² (for unit vectors
    /// ½‖ê − ê_dense‖² = 1 − cosine). Its plain per-sample gradient is exactly 0 at the dense weights (every sentence sits
    /// at its minimum), so the target carries a draw ε_s ~ N(0, I / D): the gradient (ê_s − ê_s,dense) − ε_s then has
    /// E[g gᵀ] = JᵀJ / D + JᵀrrᵀJ (J: Jacobian of ê_s, r: the residual left by the blocks already pruned), i.e. the
    /// Gauss-Newton Hessian of the distance plus the empirical Fisher of the residual. Block l's Fisher uses the
    /// gradients of the whole remaining network (blocks l..L-1 and pooling), on the states blocks 0..l-1 produce once
    /// pruned; m = the calibration sentence count, one gradient each (<see cref="Training.BertGradients"/>).
    /// </summary>
    static BertTensors PruneOBert(BertModel model, BertTensors t, IReadOnlyList<int[]> calibration, BertPruneOptions o, IProgress<double>? progress, CancellationToken ct)
    {
        var c = model.Config;
        if (o.GradientChunk < 1) throw new PareException($"gradient chunk {o.GradientChunk} must be at least 1");
        var target = model.EmbedIds(calibration, new EmbedOptions { Threads = o.Threads }, ct);
        var rng = new Random(o.Seed);
        double sigma = 1 / Math.Sqrt(c.Dim);
        var noise = calibration.Select(_ => Enumerable.Range(0, c.Dim).Select(_ => (float)(sigma * Gaussian(rng))).ToArray()).ToArray();
        var grads = new Training.BertGradients(c, t, o.Threads);
        var encoder = new BertEncoder(c, new BertWeights(c, t));
        var h = encoder.Embed(calibration);
        int chunk = Math.Min(o.GradientChunk, calibration.Count), mats = Training.BertGradients.Matrices.Length;
        for (int l = 0; l < c.Layers; l++)
        {
            var names = Training.BertGradients.Matrices.Select(m => $"encoder.layer.{l}.{m}.weight").ToArray();
            var shapes = names.Select(n => t.Shape(n)).ToArray();
            var fishers = shapes.Select(sh => new BlockFisher((int)sh[0], (int)sh[1], o.FisherBlockSize)).ToArray();
            var buf = shapes.Select(sh => Enumerable.Range(0, chunk).Select(_ => new float[sh[0] * sh[1]]).ToArray()).ToArray();
            for (int s0 = 0; s0 < calibration.Count; s0 += chunk)
            {
                ct.ThrowIfCancellationRequested();
                int s1 = Math.Min(calibration.Count, s0 + chunk);
                var tape = grads.Forward(Slice(h, s0, s1), l);
                var dEmb = new float[s1 - s0][];
                for (int s = s0; s < s1; s++)
                {
                    var e = tape.Embeddings[s - s0];
                    dEmb[s - s0] = [.. e.Select((v, i) => v - target[s][i] - noise[s][i])];
                }
                grads.Backward(tape, dEmb, l, buf);
                for (int m = 0; m < mats; m++) fishers[m].Add(buf[m], s1 - s0, o.Threads);
                progress?.Report((l + 0.8 * s1 / calibration.Count) / c.Layers);
            }
            buf = null;
            for (int m = 0; m < mats; m++)
            {
                var w = t.Get(names[m]);
                OBert.Prune(w, (int)shapes[m][0], (int)shapes[m][1], fishers[m], o.Pattern, new bool[w.Length], o.FisherDamp, o.Threads, ct);
                fishers[m] = null!;
            }
            grads.Invalidate(l);
            // The next block's input: this block, now pruned, on the same input (h was only read above).
            encoder = new BertEncoder(c, new BertWeights(c, t));
            encoder.RunLayer(l, h, o.Threads);
            progress?.Report((l + 1.0) / c.Layers);
        }
        return t;
    }

    /// <summary>Sentences [s0, s1) of a packed batch, copied.</summary>
    static BertHidden Slice(BertHidden h, int s0, int s1)
    {
        int d = h.Dim, r0 = h.Offsets[s0], r1 = h.Offsets[s1];
        return new BertHidden(h.Hidden.AsSpan(r0 * d, (r1 - r0) * d).ToArray(), [.. h.Offsets[s0..(s1 + 1)].Select(o => o - r0)], d);
    }

    static double Gaussian(Random rng) => Math.Sqrt(-2 * Math.Log(1 - rng.NextDouble())) * Math.Cos(2 * Math.PI * rng.NextDouble());

    static void PruneOne(BertTensors t, string name, BertPruneOptions o, LayerStats? stats)
    {
        var shape = t.Shape(name);
        int rows = (int)shape[0], cols = (int)shape[1];
        var w = t.Get(name);
        var pruned = new bool[w.Length];
        switch (o.Method)
        {
            case PruneMethod.Magnitude: Magnitude.Prune(w, rows, cols, o.Pattern, pruned); break;
            case PruneMethod.Wanda: Wanda.Prune(w, rows, cols, stats!.MeanSq(), o.Pattern, pruned); break;
            case PruneMethod.SparseGpt: SparseGpt.Prune(w, rows, cols, stats!.Hessian(), o.Pattern, pruned, o.BlockSize, o.Damp, o.Threads); break;
            default: throw new PareException($"method {o.Method} is not supported for encoders");
        }
    }

    /// <summary>Fraction of zero weights over the six linear layers of every block.</summary>
    public static double Sparsity(BertConfig c, BertTensors t)
    {
        long zeros = 0, total = 0;
        for (int l = 0; l < c.Layers; l++)
            foreach (var (w, _) in Linears)
            {
                var a = t.Get($"encoder.layer.{l}.{w}.weight");
                total += a.Length;
                foreach (float v in a) if (v == 0) zeros++;
            }
        return (double)zeros / total;
    }
}
