using System.Diagnostics;
using Pare.Formats.Gguf;
using Pare.Kernels;
using Pare.Models;
using Pare.Tensors;

namespace Pare.Pruning.Structured;

/// <summary>What a structured run kept, per layer, with its settings and sizes.</summary>
public sealed record StructuredResult
{
    public required string Input { get; init; }
    public required string Output { get; init; }
    public required string Method { get; init; }
    public required double Ratio { get; init; }
    /// <summary>"llama" (every layer the same) or "deci" (per-layer arrays).</summary>
    public required string Architecture { get; init; }
    public required int Samples { get; init; }
    public required int SeqLen { get; init; }
    public required int Seed { get; init; }
    public required string Calibration { get; init; }
    public required int[] Heads { get; init; }
    public required int[] KvHeads { get; init; }
    public required int[] Ffn { get; init; }
    public required long BlockParamsBefore { get; init; }
    public required long BlockParamsAfter { get; init; }
    public required double Seconds { get; init; }
    public required long InputBytes { get; init; }
    public required long OutputBytes { get; init; }
    /// <summary>Fraction of the block parameters (q, k, v, o, gate, up, down) actually removed.</summary>
    public double Removed => 1 - (double)BlockParamsAfter / BlockParamsBefore;
}

/// <summary>
/// Structured pruning of a Llama-family GGUF (FLAP, Wanda-sp, magnitude-sp): one calibration pass through the dense
/// model (the same windows and block runner as <see cref="Pruner"/>) collects, per block, statistics of the inputs of
/// attn_output and ffn_down; the method scores every head group (a KV head with its query heads) and FFN channel; the
/// selection keeps the best; the output GGUF holds only the kept rows (q, k, v, gate, up) and columns (o, down), plus
/// FLAP's compensation biases. Every layer the same: arch <c>llama</c> with smaller head count / FFN length, which
/// llama.cpp loads. Different per layer: llama.cpp's heterogeneous <c>deci</c> arch with per-layer arrays
/// (head_count, head_count_kv, feed_forward_length) and explicit key/value lengths. Written to a temporary name and
/// renamed: no partial output on failure.
/// </summary>
public static class StructuredPruner
{
    static readonly GgmlType[] Reencodable = [GgmlType.F32, GgmlType.F16, GgmlType.BF16, GgmlType.Q8_0];
    static readonly string[] Linears = ["attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down"];

    public static StructuredResult Run(string modelPath, string outputPath, StructuredOptions options, CalibrationSource? calibration,
        IProgress<PruneProgress>? progress = null, CancellationToken cancel = default)
    {
        options.Validate();
        Pare.Formats.OutputPath.Check(modelPath, outputPath);
        var sw = Stopwatch.StartNew();

        using var model = LlamaModel.Load(modelPath);
        var f = model.Gguf ?? throw new PareException($"{modelPath}: pruning reads GGUF files only");
        CheckInput(model, f, modelPath);
        var c = model.Config;
        var w = model.Weights;
        for (int l = 0; l < c.Layers; l++)
            foreach (var s in Linears)
            {
                var t = f.GetTensor($"blk.{l}.{s}.weight");
                if (Array.IndexOf(Reencodable, t.Type) < 0)
                    throw new PareException($"tensor '{t.Name}' is {t.Type}; structured pruning re-encodes F32, F16, BF16 and Q8_0 only (prune the F16 model, then quantize)");
            }
        var shape = new BlockShape(c.Dim, c.HeadDim, c.Heads, c.KvHeads, c.FfnDim);
        // Q8_0 rows are blocks of 32: a down row must keep a multiple of 32 channels.
        int ffnStep = w.Layers[0].Down.Type == GgmlType.Q8_0 ? 32 : 1;
        var uniformKeep = options.Uniform ? UniformCounts(c, options.Ratio, ffnStep) : default;

        int seqLen = Math.Min(options.SeqLen, c.ContextLength);
        int[][] windows = [];
        string calibDesc = "none";
        if (options.NeedsCalibration)
        {
            double hiddenBytes = (double)options.Samples * seqLen * c.Dim * sizeof(float);
            long available = GC.GetGCMemoryInfo().TotalAvailableMemoryBytes;
            if (hiddenBytes > available / 2.0)
                throw new PareException($"{options.Samples} calibration windows of {seqLen} tokens need {hiddenBytes / (1 << 30):F1} GiB of activations, more than half of the " +
                    $"{available / (double)(1 << 30):F1} GiB available; use fewer --samples or a shorter --seqlen");
            (windows, calibDesc) = Calibration.Load(model, calibration, options.Samples, seqLen, options.Seed, options.Name);
            seqLen = windows[0].Length;
        }

        using var src = File.OpenHandle(modelPath, FileMode.Open, FileAccess.Read, FileShare.Read);
        var readRow = RowReader(f, src);

        // 1. One pass through the dense model: per block, statistics of the attn_output and ffn_down inputs and the scores.
        var scores = new BlockScores[c.Layers];
        var influence = new double[c.Layers]; // CFSP's block importance
        var attnMeans = new float[c.Layers][];
        var ffnMeans = new float[c.Layers][];
        {
            var hidden = windows.Select(win => { var x = new float[(long)seqLen * c.Dim]; BlockRunner.Embed(w, c.Dim, win, x, readRow); return x; }).ToArray();
            var runner = new BlockRunner(c, options.Threads);
            DenseBlock? block = null;
            for (int l = 0; l < c.Layers; l++)
            {
                cancel.ThrowIfCancellationRequested();
                progress?.Report(new(l, c.Layers, "calibrating", (double)l / c.Layers));
                block = DenseBlock.Load(c, w.Layers[l], l, readRow, reuse: block);
                if (options.Method == StructuredMethod.MagnitudeSp)
                {
                    scores[l] = MagnitudeSp.Scores(shape, block.Wq.Data, block.Wk.Data, block.Wv.Data, block.Wo.Data, block.Gate.Data, block.Up.Data, block.Down.Data);
                    continue;
                }
                var attnOut = new ChannelStats(c.QDim);
                var ffnIn = new ChannelStats(c.FfnDim);
                var blockInput = options.Method == StructuredMethod.Cfsp ? new float[(long)seqLen * c.Dim] : null;
                foreach (var x in hidden)
                {
                    cancel.ThrowIfCancellationRequested();
                    if (blockInput != null) x.CopyTo(blockInput, 0);
                    // The dense block's outputs feed the next block (FLAP scores every layer of the dense model).
                    runner.Forward(block, x, seqLen, (input, a, n) =>
                    {
                        if (input == LinearInput.AttentionOutput) attnOut.Add(a, n);
                        else if (input == LinearInput.Down) ffnIn.Add(a, n);
                    });
                    if (blockInput != null) influence[l] += Cfsp.AngularDistance(blockInput, x, seqLen, c.Dim);
                }
                scores[l] = options.Method switch
                {
                    StructuredMethod.WandaSp => WandaSp.Scores(shape, block.Wo.Data, block.Down.Data, attnOut, ffnIn),
                    // CFSP keeps every head: equal group scores, all kept below.
                    StructuredMethod.Cfsp => new BlockScores(new double[c.KvHeads], Cfsp.ChannelScores(shape, block.Gate.Data, block.Up.Data, block.Down.Data, ffnIn)),
                    _ => Flap.Scores(shape, block.Wo.Data, block.Down.Data, attnOut, ffnIn),
                };
                attnMeans[l] = attnOut.Means();
                ffnMeans[l] = ffnIn.Means();
            }
        }

        // 2. Selection.
        bool[][] keepGroups, keepChannels;
        if (options.Uniform)
        {
            keepGroups = [.. scores.Select(s => TopK(s.Groups, uniformKeep.Groups))];
            keepChannels = [.. scores.Select(s => TopK(s.Channels, uniformKeep.Channels))];
        }
        else if (options.Method == StructuredMethod.Cfsp)
        {
            var widths = Cfsp.Allocate(influence, shape, options.Ratio, c.Layers);
            if (ffnStep > 1) widths = [.. widths.Select(x => Math.Min(c.FfnDim, (x + ffnStep - 1) / ffnStep * ffnStep))];
            keepGroups = [.. scores.Select(s => Enumerable.Repeat(true, c.KvHeads).ToArray())];
            keepChannels = [.. scores.Select((s, l) => TopK(s.Channels, widths[l]))];
        }
        else
        {
            (keepGroups, keepChannels) = Flap.SelectAdaptive(scores, shape, options.Ratio);
            if (ffnStep > 1)
                for (int l = 0; l < c.Layers; l++) RoundUp(keepChannels[l], scores[l].Channels, ffnStep);
        }
        int qpg = shape.QueryHeadsPerGroup;
        int[] kvHeads = [.. keepGroups.Select(g => g.Count(k => k))];
        int[] heads = [.. kvHeads.Select(k => k * qpg)];
        int[] ffn = [.. keepChannels.Select(ch => ch.Count(k => k))];
        long before = c.Layers * (c.KvHeads * shape.GroupParams + c.FfnDim * shape.ChannelParams);
        long after = Enumerable.Range(0, c.Layers).Sum(l => kvHeads[l] * shape.GroupParams + ffn[l] * shape.ChannelParams);

        // 3. The output file.
        progress?.Report(new(c.Layers, c.Layers, "writing", 1));
        cancel.ThrowIfCancellationRequested();
        string arch = WriteKept(f, c, w, src, readRow, keepGroups, keepChannels, options.Compensates ? attnMeans : null, options.Compensates ? ffnMeans : null,
            writer =>
            {
                writer.Set("pare.prune.method", options.Name);
                writer.Set("pare.prune.ratio", (float)options.Ratio);
                writer.Set("pare.prune.samples", (uint)windows.Length);
                writer.Set("pare.prune.seqlen", (uint)seqLen);
                writer.Set("pare.prune.seed", (uint)options.Seed);
                writer.Set("pare.prune.calibration", calibDesc);
            }, outputPath);
        return new StructuredResult
        {
            Input = modelPath, Output = outputPath, Method = options.Name, Ratio = options.Ratio, Architecture = arch,
            Samples = windows.Length, SeqLen = seqLen, Seed = options.Seed, Calibration = calibDesc,
            Heads = heads, KvHeads = kvHeads, Ffn = ffn, BlockParamsBefore = before, BlockParamsAfter = after,
            Seconds = sw.Elapsed.TotalSeconds, InputBytes = new FileInfo(modelPath).Length, OutputBytes = new FileInfo(outputPath).Length,
        };
    }

    /// <summary>Refuses what structured pruning cannot read: compact files, already structurally pruned models (deci,
    /// per-layer shapes, output biases) and non-llama architectures (one line each).</summary>
    internal static void CheckInput(LlamaModel model, GgufFile f, string modelPath)
    {
        if (CompactFormat.IsCompact(f)) throw new PareException(CompactFormat.Explain(modelPath));
        var c = model.Config;
        if (c.Architecture == "deci" || !c.IsUniform || model.Weights.Layers.Any(lw => lw.Bo != null || lw.BDown != null))
            throw new PareException($"{modelPath} is already structurally pruned (per-layer shapes or output biases); prune the dense model");
        if (c.Architecture is not ("llama" or "mistral"))
            throw new PareException($"{modelPath}: structured pruning writes llama/deci files and reads llama-architecture models only (this one is {c.Architecture})");
    }

    /// <summary>The stored bytes of row r of a matrix of <paramref name="f"/>, read from <paramref name="src"/>.</summary>
    internal static Func<WeightMatrix, int, byte[]> RowReader(GgufFile f, Microsoft.Win32.SafeHandles.SafeFileHandle src) => (m, r) =>
    {
        var info = f.GetTensor(m.Name);
        long rowBytes = GgmlTypeInfo.RowBytes(info.Type, m.Cols);
        var buf = new byte[rowBytes];
        RandomAccess.Read(src, buf, f.DataOffset + info.Offset + r * rowBytes);
        return buf;
    };

    /// <summary>
    /// Writes the structured file of the kept head groups and FFN channels of every layer: kept rows of q, k, v, gate, up,
    /// kept columns of attn_output and ffn_down (re-encoded), a plain llama file when every layer keeps the same widths,
    /// else deci with per-layer arrays; with <paramref name="attnMeans"/> / <paramref name="ffnMeans"/> FLAP's
    /// compensation biases. <paramref name="metadata"/> adds the method's keys. Returns the architecture written.
    /// </summary>
    internal static string WriteKept(GgufFile f, LlamaConfig c, LlamaWeights w, Microsoft.Win32.SafeHandles.SafeFileHandle src, Func<WeightMatrix, int, byte[]> ReadRow,
        bool[][] keepGroups, bool[][] keepChannels, float[][]? attnMeans, float[][]? ffnMeans, Action<GgufWriter> metadata, string outputPath)
    {
        var shape = new BlockShape(c.Dim, c.HeadDim, c.Heads, c.KvHeads, c.FfnDim);
        int qpg = shape.QueryHeadsPerGroup;
        int[] kvHeads = [.. keepGroups.Select(g => g.Count(k => k))];
        int[] heads = [.. kvHeads.Select(k => k * qpg)];
        int[] ffn = [.. keepChannels.Select(ch => ch.Count(k => k))];
        bool uniformOut = heads.All(h => h == heads[0]) && ffn.All(x => x == ffn[0]);
        string arch = uniformOut ? c.Architecture : "deci";
        var writer = new GgufWriter { Alignment = f.Alignment };
        string prefix = c.Architecture + ".";
        foreach (var (k, v) in f.MetadataList)
        {
            if (k == "general.architecture") writer.Set(k, arch);
            else if (k.StartsWith(prefix, StringComparison.Ordinal)) writer.Set(arch + "." + k[prefix.Length..], v);
            else writer.Set(k, v);
        }
        if (uniformOut)
        {
            writer.Set($"{arch}.attention.head_count", (uint)heads[0]);
            writer.Set($"{arch}.attention.head_count_kv", (uint)kvHeads[0]);
            writer.Set($"{arch}.feed_forward_length", (uint)ffn[0]);
        }
        else
        {
            // deci: per-layer arrays (llama.cpp's get_key_or_arr), the head size stated explicitly (else it would be
            // embedding_length / head_count of layer 0).
            writer.Set($"{arch}.attention.head_count", GgufValue.Of(heads));
            writer.Set($"{arch}.attention.head_count_kv", GgufValue.Of(kvHeads));
            writer.Set($"{arch}.feed_forward_length", GgufValue.Of(ffn));
        }
        writer.Set($"{arch}.attention.key_length", (uint)c.HeadDim);
        writer.Set($"{arch}.attention.value_length", (uint)c.HeadDim);
        writer.Set($"{arch}.rope.dimension_count", (uint)c.RopeDim);
        metadata(writer);

        foreach (var t in f.Tensors)
        {
            var info = t;
            if (!TryBlockTensor(t.Name, out int l, out string kind))
            {
                writer.AddTensor(t.Name, t.Type, t.Dims, o => CopyRange(src, f.DataOffset + info.Offset, info.ByteSize, o));
                continue;
            }
            var lw = w.Layers[l];
            // Kept rows of q (query heads of kept groups), of k/v (kept KV heads), kept input columns of o (= q rows).
            int[] qRows = [.. Enumerable.Range(0, c.KvHeads).Where(g => keepGroups[l][g]).SelectMany(g => Enumerable.Range(g * shape.GroupWidth, shape.GroupWidth))];
            int[] kvRows = [.. Enumerable.Range(0, c.KvHeads).Where(g => keepGroups[l][g]).SelectMany(g => Enumerable.Range(g * c.HeadDim, c.HeadDim))];
            int[] ch = [.. Enumerable.Range(0, c.FfnDim).Where(j => keepChannels[l][j])];
            switch (kind)
            {
                case "attn_q": AddRows(lw.Wq, qRows); break;
                case "attn_k": AddRows(lw.Wk, kvRows); break;
                case "attn_v": AddRows(lw.Wv, kvRows); break;
                case "ffn_gate": AddRows(lw.Gate, ch); break;
                case "ffn_up": AddRows(lw.Up, ch); break;
                case "attn_output":
                    AddColumns(lw.Wo, qRows);
                    if (attnMeans != null && qRows.Length < c.QDim)
                        AddBias($"blk.{l}.attn_output.bias", lw.Wo, keepGroups[l].SelectMany(k => Enumerable.Repeat(k, shape.GroupWidth)).ToArray(), attnMeans[l]);
                    break;
                case "ffn_down":
                    AddColumns(lw.Down, ch);
                    if (ffnMeans != null && ch.Length < c.FfnDim) AddBias($"blk.{l}.ffn_down.bias", lw.Down, keepChannels[l], ffnMeans[l]);
                    break;
                default: writer.AddTensor(t.Name, t.Type, t.Dims, o => CopyRange(src, f.DataOffset + info.Offset, info.ByteSize, o)); break;
            }
        }

        void AddRows(WeightMatrix m, int[] rows)
        {
            var type = f.GetTensor(m.Name).Type;
            writer.AddTensor(m.Name, type, [m.Cols, rows.Length], o => { foreach (int r in rows) o.Write(ReadRow(m, r)); });
        }
        void AddColumns(WeightMatrix m, int[] cols)
        {
            var type = f.GetTensor(m.Name).Type;
            writer.AddTensor(m.Name, type, [cols.Length, m.Rows], o =>
            {
                var row = new float[m.Cols];
                var kept = new float[cols.Length];
                for (int r = 0; r < m.Rows; r++)
                {
                    Dequant.Row(type, ReadRow(m, r), row);
                    for (int j = 0; j < cols.Length; j++) kept[j] = row[cols[j]];
                    o.Write(Quantizer.Quantize(type, kept));
                }
            });
        }
        void AddBias(string name, WeightMatrix m, bool[] keptColumn, float[] means)
        {
            var dense = new float[(long)m.Rows * m.Cols];
            for (int r = 0; r < m.Rows; r++) Dequant.Row(m.Type, ReadRow(m, r), dense.AsSpan(r * m.Cols, m.Cols));
            var b = Flap.Compensation(dense, m.Rows, m.Cols, keptColumn, means);
            writer.AddTensor(name, GgmlType.F32, [b.Length], System.Runtime.InteropServices.MemoryMarshal.AsBytes(b.AsSpan()).ToArray());
        }

        writer.Write(outputPath);
        return arch;
    }

    /// <summary>
    /// Kept groups and channels per layer for a uniform ratio: round((1 − r) · groups) head groups, then as many FFN
    /// channels as bring the layer's kept parameters closest to (1 − r) of its total (heads come in coarse groups, so
    /// the FFN width absorbs the rounding), rounded to <paramref name="ffnStep"/>. A layer left without a head is
    /// refused: the llama format cannot express it.
    /// </summary>
    public static (int Groups, int Channels) UniformCounts(LlamaConfig c, double ratio, int ffnStep)
    {
        var s = new BlockShape(c.Dim, c.HeadDim, c.Heads, c.KvHeads, c.FfnDim);
        int groups = (int)Math.Round((1 - ratio) * c.KvHeads, MidpointRounding.AwayFromZero);
        if (groups < 1)
            throw new PareException($"ratio {ratio} would remove every head of every layer ({c.KvHeads} KV head groups of {s.QueryHeadsPerGroup} heads each); " +
                $"a uniform result keeps at least one (ratio below {1 - 0.5 / c.KvHeads:0.###})");
        double layerTotal = c.KvHeads * (double)s.GroupParams + c.FfnDim * (double)s.ChannelParams;
        double wanted = ((1 - ratio) * layerTotal - groups * (double)s.GroupParams) / s.ChannelParams;
        int channels = (int)Math.Round(wanted / ffnStep, MidpointRounding.AwayFromZero) * ffnStep;
        if (channels < 1)
            throw new PareException($"ratio {ratio} would remove every FFN channel ({c.FfnDim}) of every layer once {groups} of {c.KvHeads} head groups are kept");
        return (groups, Math.Min(channels, c.FfnDim));
    }

    static bool[] TopK(double[] score, int k)
    {
        var order = Enumerable.Range(0, score.Length).OrderByDescending(i => score[i]).ThenBy(i => i).Take(k);
        var keep = new bool[score.Length];
        foreach (int i in order) keep[i] = true;
        return keep;
    }

    /// <summary>Adds the best-scored removed channels until the kept count is a multiple of <paramref name="step"/>.</summary>
    static void RoundUp(bool[] keep, double[] score, int step)
    {
        int kept = keep.Count(k => k), target = Math.Min(keep.Length, (kept + step - 1) / step * step);
        foreach (int i in Enumerable.Range(0, keep.Length).Where(i => !keep[i]).OrderByDescending(i => score[i]).ThenBy(i => i).Take(target - kept)) keep[i] = true;
    }

    static bool TryBlockTensor(string name, out int layer, out string kind)
    {
        layer = -1; kind = "";
        if (!name.StartsWith("blk.", StringComparison.Ordinal) || !name.EndsWith(".weight", StringComparison.Ordinal)) return false;
        var parts = name.Split('.');
        if (parts.Length != 4 || !int.TryParse(parts[1], out layer)) return false;
        kind = parts[2];
        return Array.IndexOf(Linears, kind) >= 0;
    }

    static void CopyRange(Microsoft.Win32.SafeHandles.SafeFileHandle h, long offset, long count, Stream dst)
    {
        var buf = new byte[1 << 20];
        while (count > 0)
        {
            int n = RandomAccess.Read(h, buf.AsSpan(0, (int)Math.Min(buf.Length, count)), offset);
            if (n <= 0) throw new IOException("unexpected end of file while copying a tensor");
            dst.Write(buf, 0, n);
            offset += n; count -= n;
        }
    }
}
