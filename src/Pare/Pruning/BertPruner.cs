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
    /// <summary>Kernel and pruning threads. Default all cores.</summary>
    public int Threads { get; init; } = Environment.ProcessorCount;
}

/// <summary>
/// Weight pruning of a BERT encoder with the decoder's methods (<see cref="Magnitude"/>, <see cref="Wanda"/>,
/// <see cref="SparseGpt"/>), unstructured or N:M, on the six linear layers of every block (embeddings, LayerNorms and
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
