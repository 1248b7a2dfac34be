using System.Diagnostics;
using Pare.Formats.Gguf;
using Pare.Tensors;
using Pare.Models;
using Pare.Training;

namespace Pare.Pruning.Structured;

/// <summary>Settings of an Adapt-Pruner run (<c>pare prune --method adapt</c>); defaults in docs/structured-pruning.md.</summary>
public sealed record AdaptPrunerOptions
{
    /// <summary>Fraction of the block parameters removed at the end, in [0, 1). Default 0.2.</summary>
    public double Ratio { get; init; } = 0.2;
    /// <summary>Fraction removed per round (the paper's incremental schedule removes ~5% at a time): rounds = ⌈Ratio / Step⌉.</summary>
    public double Step { get; init; } = 0.05;
    /// <summary>Fine-tuning steps after each round (also after the last).</summary>
    public int StepsPerRound { get; init; } = 25;
    /// <summary>Amplitude A of the layer-wise ratios: layer l's sparsity is t − A·Î_l, Î the layers' importance
    /// (1 − cos(block input, block output)) centred and scaled to a range of 2.</summary>
    public double Amplitude { get; init; } = 0.05;
    /// <summary>Calibration windows for the layer importances (from the training split, as the other pruners).</summary>
    public int Samples { get; init; } = 32;
    /// <summary>Tokens per calibration window.</summary>
    public int SeqLen { get; init; } = 128;
    public int Seed { get; init; }
    /// <summary>Peak learning rate of the full fine-tuning between rounds (one warmup + cosine schedule over every round).</summary>
    public float LearningRate { get; init; } = 5e-4f;
    /// <summary>Sequences per fine-tuning step.</summary>
    public int BatchSize { get; init; } = 4;
    /// <summary>Tokens per fine-tuning sequence; null = min(context, 512).</summary>
    public int? TrainSeqLen { get; init; }
    public int Threads { get; init; } = Environment.ProcessorCount;

    public int Rounds => Math.Max(1, (int)Math.Ceiling(Ratio / Step - 1e-9));

    public void Validate()
    {
        if (!(Ratio >= 0 && Ratio < 1)) throw new PareException($"--ratio must be in [0, 1) (got {Ratio})");
        if (!(Step > 0 && Step <= 1)) throw new PareException($"--adapt-step must be in (0, 1] (got {Step})");
        if (StepsPerRound < 0) throw new PareException($"--round-steps must be 0 or more (got {StepsPerRound})");
        if (!(Amplitude >= 0 && Amplitude < 1)) throw new PareException($"amplitude must be in [0, 1) (got {Amplitude})");
        if (Samples < 1) throw new PareException($"adapt needs calibration samples (--samples >= 1, got {Samples})");
        if (SeqLen < 2) throw new PareException($"--seqlen must be at least 2 (got {SeqLen})");
        if (!(LearningRate > 0)) throw new PareException($"--lr must be positive (got {LearningRate})");
        if (BatchSize < 1) throw new PareException($"--batch must be at least 1 (got {BatchSize})");
        if (Threads < 1) throw new PareException($"threads must be at least 1 (got {Threads})");
    }
}

/// <summary>One round of <see cref="AdaptPruner"/>: the target reached, the layers' sparsities, and the training loss after it.</summary>
public sealed record AdaptRound(int Round, double Target, double Removed, double[] LayerSparsity, double[] LayerImportance, double MeanLoss);

/// <summary>What an Adapt-Pruner run did: the structured result (widths, parameters, sizes) plus the training.</summary>
public sealed record AdaptPrunerResult(StructuredResult Pruned, int TrainSteps, long TokensPerStep, IReadOnlyList<AdaptRound> Rounds)
{
    public double Removed => Pruned.Removed;
}

/// <summary>
/// Adapt-Pruner (Pan et al. 2025), the incremental schedule (Adapt-Accel): remove a few % of the block parameters, train a
/// little, repeat until the target; then train once more. Each round:
/// <list type="number">
/// <item>Layer importance I_l = 1 − mean cos(x_in, x_out) of block l's input and output on the calibration windows, through
/// the current (already pruned and trained) model: a block that changes its input little is less important.</item>
/// <item>Layer-wise sparsity s_l = t − A·Î_l, t the round's target (Ratio·k/rounds), Î_l = 2(I_l − mean I)/(max I − min I):
/// important layers are pruned less. Counts per layer as the uniform methods (round((1 − s_l)·groups) head groups, the FFN
/// width making up the layer's parameter budget), never growing back, at least one group and one channel.</item>
/// <item>Inside a layer, the head groups and FFN channels with the smallest first-order Taylor score Σ|w·∂L/∂w| (over their
/// q, k, v rows and o columns / gate and up rows and down column; LLM-Pruner's element score, summed over the training steps
/// since the last round, or a few gradient batches before the first) are removed: their weights are set to zero.</item>
/// <item>Full fine-tuning (<see cref="Finetune"/>) for <see cref="AdaptPrunerOptions.StepsPerRound"/> steps; removed weights
/// are masked (their gradients zero, re-zeroed after every update), so the model stays exactly the pruned one.</item>
/// </list>
/// The pruned model is trained in the dense shape with masked zeros (no reshaping of the optimizer state between rounds); at the end
/// the zero groups and channels are deleted (<see cref="StructuredPruner.WriteKept"/>): a plain llama file if every layer
/// kept the same widths, else deci. No bias compensation.
/// </summary>
public static class AdaptPruner
{
    public static AdaptPrunerResult Run(string modelPath, string outputPath, AdaptPrunerOptions options, int[] trainTokens, CalibrationSource? calibration,
        IProgress<PruneProgress>? progress = null, CancellationToken cancel = default)
    {
        options.Validate();
        Pare.Formats.OutputPath.Check(modelPath, outputPath);
        var sw = Stopwatch.StartNew();
        LlamaConfig c;
        int[][] windows;
        string calibDesc;
        using (var dense = LlamaModel.Load(modelPath))
        {
            var f = dense.Gguf ?? throw new PareException($"{modelPath}: pruning reads GGUF files only");
            StructuredPruner.CheckInput(dense, f, modelPath);
            c = dense.Config;
            (windows, calibDesc) = Calibration.Load(dense, calibration, options.Samples, Math.Min(options.SeqLen, c.ContextLength), options.Seed, "adapt");
        }
        var shape = new BlockShape(c.Dim, c.HeadDim, c.Heads, c.KvHeads, c.FfnDim);
        int rounds = options.Rounds, perRound = options.StepsPerRound;
        var ft = new Finetune(modelPath, trainTokens, new FinetuneOptions
        {
            Steps = rounds * perRound, LearningRate = options.LearningRate, BatchSize = options.BatchSize,
            SeqLen = options.TrainSeqLen ?? Math.Min(c.ContextLength, 512), WarmupSteps = Math.Min(10, Math.Max(1, rounds * perRound / 10)),
            Seed = (ulong)options.Seed + 1, Threads = options.Threads,
        });
        var store = ft.Parameters;
        var groupTaylor = new double[c.Layers][];
        var chanTaylor = new double[c.Layers][];
        for (int l = 0; l < c.Layers; l++) { groupTaylor[l] = new double[c.KvHeads]; chanTaylor[l] = new double[c.FfnDim]; }
        ft.AfterBackward = () => AccumulateTaylor(store, shape, groupTaylor, chanTaylor, options.Threads);
        var keepGroups = Enumerable.Range(0, c.Layers).Select(_ => Enumerable.Repeat(true, c.KvHeads).ToArray()).ToArray();
        var keepChannels = Enumerable.Range(0, c.Layers).Select(_ => Enumerable.Repeat(true, c.FfnDim).ToArray()).ToArray();
        long layerTotal = c.KvHeads * shape.GroupParams + c.FfnDim * shape.ChannelParams;
        long before = c.Layers * layerTotal;
        long Kept() => Enumerable.Range(0, c.Layers).Sum(l => keepGroups[l].Count(k => k) * shape.GroupParams + keepChannels[l].Count(k => k) * shape.ChannelParams);
        var log = new List<AdaptRound>();
        string tmpDir = Directory.CreateTempSubdirectory("pare-adapt-").FullName;
        try
        {
            for (int k = 1; k <= rounds; k++)
            {
                cancel.ThrowIfCancellationRequested();
                double target = options.Ratio * k / rounds;
                progress?.Report(new(k - 1, rounds, $"round {k}/{rounds}: layer importance", (k - 1.0) / rounds));
                string snap = Path.Combine(tmpDir, "round.gguf");
                ft.Export(snap);
                var importance = LayerImportance(snap, windows, options.Threads, cancel);
                // Taylor scores of the first round from a few gradient batches (later rounds: the steps since the last).
                if (k == 1) for (int i = 0; i < 4; i++) { cancel.ThrowIfCancellationRequested(); ft.ComputeGradients(); }
                var sparsity = LayerSparsity(importance, target, options.Amplitude);
                for (int l = 0; l < c.Layers; l++)
                {
                    var (g, ch) = LayerCounts(shape, sparsity[l], keepGroups[l].Count(x => x), keepChannels[l].Count(x => x));
                    Shrink(keepGroups[l], groupTaylor[l], g);
                    Shrink(keepChannels[l], chanTaylor[l], ch);
                    ZeroRemoved(store, shape, l, keepGroups[l], keepChannels[l]);
                    Array.Clear(groupTaylor[l]); Array.Clear(chanTaylor[l]);
                }
                ft.RefreshMask();
                double removed = 1 - (double)Kept() / before;
                progress?.Report(new(k - 1, rounds, $"round {k}/{rounds}: {removed:P1} removed, training {perRound} steps", (k - 0.5) / rounds));
                double lossSum = 0;
                for (int s = 0; s < perRound; s++)
                {
                    cancel.ThrowIfCancellationRequested();
                    lossSum += ft.TrainStep();
                }
                log.Add(new AdaptRound(k, target, removed, sparsity, importance, perRound > 0 ? lossSum / perRound : double.NaN));
            }
            cancel.ThrowIfCancellationRequested();
            progress?.Report(new(rounds, rounds, "writing", 1));
            string final = Path.Combine(tmpDir, "final.gguf");
            ft.Export(final);
            string arch;
            using (var m = LlamaModel.Load(final))
            {
                var f = m.Gguf!;
                using var src = File.OpenHandle(final, FileMode.Open, FileAccess.Read, FileShare.Read);
                arch = StructuredPruner.WriteKept(f, c, m.Weights, src, StructuredPruner.RowReader(f, src), keepGroups, keepChannels, null, null, writer =>
                {
                    writer.Set("pare.prune.method", "adapt");
                    writer.Set("pare.prune.ratio", (float)options.Ratio);
                    writer.Set("pare.prune.rounds", (uint)rounds);
                    writer.Set("pare.prune.round_steps", (uint)perRound);
                    writer.Set("pare.prune.samples", (uint)windows.Length);
                    writer.Set("pare.prune.seqlen", (uint)windows[0].Length);
                    writer.Set("pare.prune.seed", (uint)options.Seed);
                }, outputPath);
            }
            var pruned = new StructuredResult
            {
                Input = modelPath, Output = outputPath, Method = "adapt", Ratio = options.Ratio, Architecture = arch,
                Samples = windows.Length, SeqLen = windows[0].Length, Seed = options.Seed, Calibration = calibDesc,
                Heads = [.. keepGroups.Select(g => g.Count(x => x) * shape.QueryHeadsPerGroup)], KvHeads = [.. keepGroups.Select(g => g.Count(x => x))],
                Ffn = [.. keepChannels.Select(ch => ch.Count(x => x))], BlockParamsBefore = before, BlockParamsAfter = Kept(),
                Seconds = sw.Elapsed.TotalSeconds, InputBytes = new FileInfo(modelPath).Length, OutputBytes = new FileInfo(outputPath).Length,
            };
            return new AdaptPrunerResult(pruned, ft.Step, ft.TokensPerStep, log);
        }
        finally { Directory.Delete(tmpDir, true); }
    }

    /// <summary>1 − mean over the windows' tokens of cos(block input, block output), per block, through the model at <paramref name="path"/>.</summary>
    public static double[] LayerImportance(string path, int[][] windows, int threads, CancellationToken cancel = default)
    {
        using var m = LlamaModel.Load(path);
        var c = m.Config;
        var runner = new BlockRunner(c, threads);
        var imp = new double[c.Layers];
        long tokens = 0;
        var hidden = windows.Select(win => { var x = new float[(long)win.Length * c.Dim]; BlockRunner.Embed(m.Weights, c.Dim, win, x); return x; }).ToArray();
        DenseBlock? block = null;
        for (int l = 0; l < c.Layers; l++)
        {
            block = DenseBlock.Load(c, m.Weights.Layers[l], l, reuse: block);
            for (int i = 0; i < hidden.Length; i++)
            {
                cancel.ThrowIfCancellationRequested();
                var x = hidden[i];
                int n = windows[i].Length;
                var input = (float[])x.Clone();
                runner.Forward(block, x, n);
                imp[l] += n - CosineSum(input, x, n, c.Dim);
                if (l == 0) tokens += n;
            }
        }
        for (int l = 0; l < c.Layers; l++) imp[l] /= tokens;
        return imp;
    }

    static double CosineSum(ReadOnlySpan<float> a, ReadOnlySpan<float> b, int n, int dim)
    {
        double sum = 0;
        for (int t = 0; t < n; t++)
        {
            var x = a.Slice(t * dim, dim);
            var y = b.Slice(t * dim, dim);
            double xy = 0, xx = 0, yy = 0;
            for (int i = 0; i < dim; i++) { xy += (double)x[i] * y[i]; xx += (double)x[i] * x[i]; yy += (double)y[i] * y[i]; }
            sum += xx > 0 && yy > 0 ? xy / Math.Sqrt(xx * yy) : 1;
        }
        return sum;
    }

    /// <summary>s_l = t − A·Î_l with Î = 2(I − mean I)/(max I − min I) (all t when the importances are equal), clamped to [0, 0.99].</summary>
    public static double[] LayerSparsity(double[] importance, double target, double amplitude)
    {
        double mean = importance.Average(), range = importance.Max() - importance.Min();
        return [.. importance.Select(i => Math.Clamp(target - (range > 0 ? amplitude * 2 * (i - mean) / range : 0), 0, 0.99))];
    }

    /// <summary>Head groups and FFN channels a layer keeps at sparsity <paramref name="s"/>: round((1 − s)·groups) groups, the
    /// FFN width closest to the rest of the layer's budget; at least one of each, never more than it has now.</summary>
    public static (int Groups, int Channels) LayerCounts(BlockShape shape, double s, int currentGroups, int currentChannels)
    {
        double total = shape.KvHeads * (double)shape.GroupParams + shape.Ffn * (double)shape.ChannelParams;
        int groups = Math.Clamp((int)Math.Round((1 - s) * shape.KvHeads, MidpointRounding.AwayFromZero), 1, currentGroups);
        int channels = (int)Math.Round(((1 - s) * total - groups * (double)shape.GroupParams) / shape.ChannelParams, MidpointRounding.AwayFromZero);
        return (groups, Math.Clamp(channels, 1, currentChannels));
    }

    /// <summary>Keeps the <paramref name="count"/> best-scored of the kept entries (ties: the lower index).</summary>
    static void Shrink(bool[] keep, double[] score, int count)
    {
        var kept = Enumerable.Range(0, keep.Length).Where(i => keep[i]).OrderByDescending(i => score[i]).ThenBy(i => i).ToArray();
        for (int j = count; j < kept.Length; j++) keep[kept[j]] = false;
    }

    /// <summary>Σ|w·g| of every head group's q/k/v rows and o columns, and of every channel's gate/up rows and down column.</summary>
    static void AccumulateTaylor(ParameterStore store, BlockShape shape, double[][] groups, double[][] channels, int threads)
    {
        var layers = store.Layers;
        FixedParallel.For(layers.Count, threads, (l0, l1) =>
        {
            for (int l = l0; l < l1; l++)
            {
                var lp = layers[l];
                int gw = shape.GroupWidth, hd = shape.HeadDim, dim = shape.Dim;
                double RowSum(ParamInfo p, int r0, int rows)
                {
                    var w = store.Value(p).Slice(r0 * p.Cols, rows * p.Cols);
                    var g = store.Grad(p).Slice(r0 * p.Cols, rows * p.Cols);
                    double s = 0;
                    for (int i = 0; i < w.Length; i++) s += Math.Abs(w[i] * g[i]);
                    return s;
                }
                double ColSum(ParamInfo p, int c0, int cols)
                {
                    var w = store.Value(p); var g = store.Grad(p);
                    double s = 0;
                    for (int r = 0; r < p.Rows; r++)
                        for (int j = c0; j < c0 + cols; j++) s += Math.Abs(w[r * p.Cols + j] * g[r * p.Cols + j]);
                    return s;
                }
                for (int gi = 0; gi < shape.KvHeads; gi++)
                    groups[l][gi] += RowSum(lp.Wq, gi * gw, gw) + RowSum(lp.Wk, gi * hd, hd) + RowSum(lp.Wv, gi * hd, hd) + ColSum(lp.Wo, gi * gw, gw);
                var down = store.Value(lp.Down); var downG = store.Grad(lp.Down);
                for (int j = 0; j < shape.Ffn; j++)
                {
                    double s = RowSum(lp.Gate, j, 1) + RowSum(lp.Up, j, 1);
                    for (int r = 0; r < dim; r++) s += Math.Abs(down[r * shape.Ffn + j] * downG[r * shape.Ffn + j]);
                    channels[l][j] += s;
                }
            }
        });
    }

    /// <summary>Sets the removed groups' q/k/v rows and o columns, and the removed channels' gate/up rows and down column, to zero.</summary>
    static void ZeroRemoved(ParameterStore store, BlockShape shape, int l, bool[] keepGroups, bool[] keepChannels)
    {
        var lp = store.Layers[l];
        int gw = shape.GroupWidth, hd = shape.HeadDim;
        void Rows(ParamInfo p, int r0, int rows) => store.Value(p).Slice(r0 * p.Cols, rows * p.Cols).Clear();
        void Cols(ParamInfo p, int c0, int cols)
        {
            var w = store.Value(p);
            for (int r = 0; r < p.Rows; r++) w.Slice(r * p.Cols + c0, cols).Clear();
        }
        for (int g = 0; g < keepGroups.Length; g++)
            if (!keepGroups[g]) { Rows(lp.Wq, g * gw, gw); Rows(lp.Wk, g * hd, hd); Rows(lp.Wv, g * hd, hd); Cols(lp.Wo, g * gw, gw); }
        for (int j = 0; j < keepChannels.Length; j++)
            if (!keepChannels[j]) { Rows(lp.Gate, j, 1); Rows(lp.Up, j, 1); Cols(lp.Down, j, 1); }
    }
}
