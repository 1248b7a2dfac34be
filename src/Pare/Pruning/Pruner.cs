using System.Diagnostics;
using System.Runtime.InteropServices;
using Microsoft.Win32.SafeHandles;
using Pare.Formats.Gguf;
using Pare.Kernels;
using Pare.Kernels.Sparse;
using Pare.Models;
using Pare.Tensors;

namespace Pare.Pruning;

/// <summary>Where calibration windows come from.</summary>
public abstract record CalibrationSource
{
    /// <summary>A text file tokenized by the model's own tokenizer (the training split, never the test split).</summary>
    public sealed record TextFile(string Path) : CalibrationSource;
    /// <summary>Uniform random tokens: only meaningful for random-weight test and benchmark models.</summary>
    public sealed record RandomTokens : CalibrationSource;
    /// <summary>Windows already tokenized by the caller.</summary>
    public sealed record Windows(int[][] Tokens) : CalibrationSource;
}

/// <summary>How the pruned matrices are stored in the output file.</summary>
public enum SparseStorage
{
    /// <summary>Zeros stored in the original type: a normal GGUF that llama.cpp and every GGUF reader loads.</summary>
    Dense,
    /// <summary>Pare's compact bitmask + packed non-zeros (<see cref="SparseMatrix"/>): smaller and faster, Pare only.</summary>
    Bitmask,
}

/// <summary>One pruned matrix in the summary.</summary>
public sealed record LayerReport(string Tensor, int Block, string Pattern, long Weights, long Zeros, double? RelativeError, double Seconds)
{
    public double Sparsity => (double)Zeros / Weights;
}

/// <summary>Progress of a run: block <see cref="Block"/> of <see cref="Blocks"/> in stage <see cref="Stage"/>.</summary>
public readonly record struct PruneProgress(int Block, int Blocks, string Stage, double Fraction);

/// <summary>What a run did, with every setting needed to reproduce it.</summary>
public sealed record PruneResult
{
    public required string Input { get; init; }
    public required string Output { get; init; }
    public required string Method { get; init; }
    public required string Pattern { get; init; }
    public required int Samples { get; init; }
    public required int SeqLen { get; init; }
    public required int Seed { get; init; }
    public required string Calibration { get; init; }
    public required string Storage { get; init; }
    public required IReadOnlyList<LayerReport> Layers { get; init; }
    public required double Seconds { get; init; }
    public required long InputBytes { get; init; }
    public required long OutputBytes { get; init; }
    /// <summary>Weights in the pruned matrices (pruned or kept).</summary>
    public long MatrixWeights => Layers.Sum(l => l.Weights);
    /// <summary>Zeros in the pruned matrices as written: the weights pruned.</summary>
    public long Zeros => Layers.Sum(l => l.Zeros);
}

/// <summary>
/// Sequential, block-by-block one-shot pruning (the SparseGPT/Wanda protocol): the calibration windows go through the
/// model one block at a time; in one pass each block's linear-layer inputs are collected with the block's unpruned
/// weights; every linear layer of the block is pruned; the block is re-run with the pruned weights and its outputs feed
/// the next block. Weights are read from the file with positional reads (not through the memory map), one block at a
/// time into the same F32 arrays, and the pruned matrices go to a scratch file, so memory stays at about one F32 block,
/// the block's calibration statistics (SparseGPT: packed Hessians, reused block after block) and the calibration
/// activations, whatever the model size. The output is written to a temporary name and renamed: no partial output on failure.
/// </summary>
public static class Pruner
{
    /// <summary>The training split written by <c>pare data fetch</c>: the default calibration text.</summary>
    public const string DefaultTrainSplit = ".cache/data/corpus/train.txt";

    static readonly GgmlType[] Reencodable = [GgmlType.F32, GgmlType.F16, GgmlType.BF16, GgmlType.Q8_0];

    public static PruneResult Run(string modelPath, string outputPath, PruneOptions options, CalibrationSource? calibration,
        SparseStorage storage = SparseStorage.Dense, IProgress<PruneProgress>? progress = null, CancellationToken cancel = default)
    {
        options.Validate();
        Pare.Formats.OutputPath.Check(modelPath, outputPath);
        var sw = Stopwatch.StartNew();

        using var model = LlamaModel.Load(modelPath);
        var f = model.Gguf ?? throw new PareException($"{modelPath}: pruning reads GGUF files only");
        if (CompactFormat.IsCompact(f)) throw new PareException(CompactFormat.Explain(modelPath));
        var c = model.Config;
        var w = model.Weights;
        if (!c.IsUniform || c.Sliced || w.Layers.Any(lw => lw.Bo != null || lw.BDown != null))
            throw new PareException($"{modelPath} is structurally pruned (per-layer shapes or output biases); unstructured pruning reads uniform models without output biases only");
        var plan = Plan(f, c, options);

        int seqLen = Math.Min(options.SeqLen ?? c.ContextLength, c.ContextLength);
        int[][] windows = [];
        string calibDesc = "none";
        // Every window's hidden states stay in memory while the blocks are pruned one after another.
        double hiddenBytes = (double)options.Samples * seqLen * c.Dim * sizeof(float);
        long available = GC.GetGCMemoryInfo().TotalAvailableMemoryBytes;
        if (hiddenBytes > available / 2.0)
            throw new PareException($"{options.Samples} calibration windows of {seqLen} tokens need {hiddenBytes / (1 << 30):F1} GiB of activations, more than half of the " +
                $"{available / (double)(1 << 30):F1} GiB available; use fewer --samples or a shorter --seqlen");
        if (options.Samples > 0)
        {
            (windows, calibDesc) = Calibration.Load(model, calibration, options.Samples, seqLen, options.Seed, options.Method.ToString(),
                required: options.Method != PruneMethod.Magnitude);
            if (windows.Length > 0) seqLen = windows[0].Length;
        }

        // GBLM: gradients of the dense model's LM loss over the calibration windows, before any block is pruned.
        var gblmGrads = options.Method == PruneMethod.Gblm && windows.Length > 0 ? Gblm.Gradients(c, modelPath, windows, options.GradScale, options.Threads, cancel) : null;
        using var src = File.OpenHandle(modelPath, FileMode.Open, FileAccess.Read, FileShare.Read);
        byte[] ReadBytes(GgufTensorInfo info, int r, int cols)
        {
            long rowBytes = GgmlTypeInfo.RowBytes(info.Type, cols);
            var buf = new byte[rowBytes];
            RandomAccess.Read(src, buf, f.DataOffset + info.Offset + r * rowBytes);
            return buf;
        }
        byte[] ReadRow(WeightMatrix m, int r) => ReadBytes(f.GetTensor(m.Name), r, m.Cols);

        string scratchPath = outputPath + ".scratch-" + Environment.ProcessId;
        var stored = new Dictionary<string, (long Offset, long Bytes, GgmlType Type, long[] Dims)>();
        var reports = new List<LayerReport>();
        try
        {
            using (var scratch = new FileStream(scratchPath, FileMode.Create, FileAccess.ReadWrite, FileShare.None, 1 << 20))
            {
                // Hidden states of every window: (seqLen x dim) each.
                var hidden = windows.Select(win => { var x = new float[(long)seqLen * c.Dim]; BlockRunner.Embed(w, c.Dim, win, x, ReadRow); return x; }).ToArray();
                var runner = new BlockRunner(c, options.Threads);
                // Every block has the same shapes: its matrices and statistics reuse the previous block's arrays.
                DenseBlock? block = null;
                var statsPool = new Dictionary<LinearInput, LayerStats>();
                for (int l = 0; l < c.Layers; l++)
                {
                    cancel.ThrowIfCancellationRequested();
                    progress?.Report(new(l, c.Layers, "loading", (double)l / c.Layers));
                    block = DenseBlock.Load(c, w.Layers[l], l, ReadRow, reuse: block);
                    var linears = block.Linears.Where(d => plan.ContainsKey(d.Name)).ToList();
                    Dictionary<LinearInput, LayerStats>? stats = null;
                    if (hidden.Length > 0 && linears.Count > 0)
                    {
                        stats = [];
                        bool hess = options.Method == PruneMethod.SparseGpt;
                        foreach (var d in linears)
                        {
                            if (stats.ContainsKey(d.Input)) continue;
                            if (statsPool.TryGetValue(d.Input, out var old) && old.Cols == d.Cols) old.Reset();
                            else statsPool[d.Input] = old = new LayerStats(d.Cols, hess, options.ErrorTokens);
                            stats[d.Input] = old;
                        }
                        var tmp = new float[(long)seqLen * c.Dim];
                        for (int s = 0; s < hidden.Length; s++)
                        {
                            cancel.ThrowIfCancellationRequested();
                            hidden[s].CopyTo(tmp, 0);
                            runner.Forward(block, tmp, seqLen, (input, x, n) => { if (stats.TryGetValue(input, out var st)) st.Add(x, n, options.Threads); });
                            progress?.Report(new(l, c.Layers, "calibrating", (l + 0.5 * (s + 1) / hidden.Length) / c.Layers));
                        }
                    }
                    foreach (var d in linears)
                    {
                        cancel.ThrowIfCancellationRequested();
                        bool lastReader = linears.Last(x => x.Input == d.Input) == d;
                        var t0 = Stopwatch.GetTimestamp();
                        var pattern = plan[d.Name];
                        var st = stats?.GetValueOrDefault(d.Input);
                        var pruned = new bool[d.Data.Length];
                        PruneMatrix(d, pattern, st, options, pruned, lastReader, cancel, gblmGrads?.GetValueOrDefault(d.Name), windows.Length);
                        // The unpruned rows are decoded again from the file rather than kept as a copy.
                        var source = f.GetTensor(d.Name);
                        double? err = st != null
                            ? LayerStats.RelativeError((r, dst) => Dequant.Row(d.StoredType, ReadBytes(source, r, d.Cols), dst), d.Data, d.Rows, d.Cols, st.Sample)
                            : null;
                        var bytes = Encode(d.StoredType, d.Data, pruned, d.Cols);
                        // What is written is what counts: decode the stored bytes, count zeros, and give the block's
                        // forward pass exactly the stored values.
                        long zeros = 0;
                        for (int r = 0; r < d.Rows; r++)
                        {
                            var row = d.Data.AsSpan(r * d.Cols, d.Cols);
                            Dequant.Row(d.StoredType, bytes.AsSpan((int)(r * GgmlTypeInfo.RowBytes(d.StoredType, d.Cols))), row);
                            foreach (var v in row) if (v == 0) zeros++;
                        }
                        GgmlType type = d.StoredType;
                        long[] dims = [d.Cols, d.Rows];
                        if (storage == SparseStorage.Bitmask && SparseMatrix.CanEncode(d.StoredType, d.Cols))
                        {
                            bytes = SparseMatrix.Encode(d.StoredType, d.Rows, d.Cols, bytes);
                            type = SparseMatrix.StorageType;
                            dims = [bytes.Length];
                        }
                        stored[d.Name] = (scratch.Position, bytes.Length, type, dims);
                        scratch.Write(bytes);
                        double secs = Stopwatch.GetElapsedTime(t0).TotalSeconds;
                        reports.Add(new LayerReport(d.Name, l, pattern.ToString(), d.Data.Length, zeros, err, secs));
                        GC.Collect(); // the layer's mask, scores and encoded bytes (tens of MB) are garbage now: return them before the next layer
                    }
                    if (hidden.Length > 0)
                    {
                        progress?.Report(new(l, c.Layers, "propagating", (l + 0.75) / c.Layers));
                        foreach (var x in hidden) { cancel.ThrowIfCancellationRequested(); runner.Forward(block, x, seqLen); }
                    }
                    progress?.Report(new(l + 1, c.Layers, "done", (l + 1.0) / c.Layers));
                    // The block's matrices and statistics are reused by the next block; what else it allocated is garbage:
                    // return it now, so peak memory stays at about one block instead of growing with the GC's budget.
                    System.Runtime.GCSettings.LargeObjectHeapCompactionMode = System.Runtime.GCLargeObjectHeapCompactionMode.CompactOnce;
                    GC.Collect(2, GCCollectionMode.Forced, blocking: true, compacting: true);
                }
                // Embeddings / head when asked (no calibration statistics: magnitude-style scores).
                foreach (var name in plan.Keys.Where(n => !n.StartsWith("blk.", StringComparison.Ordinal)))
                {
                    var m = name == "output.weight" ? w.Output : w.TokenEmbedding;
                    var d = new DenseLinear(name, m.Type, m.Rows, m.Cols, LinearInput.Attention);
                    for (int r = 0; r < m.Rows; r++) Dequant.Row(m.Type, ReadRow(m, r), d.Data.AsSpan(r * m.Cols, m.Cols));
                    var pruned = new bool[d.Data.Length];
                    Magnitude.Prune(d.Data, d.Rows, d.Cols, plan[name], pruned);
                    var bytes = Encode(d.StoredType, d.Data, pruned, d.Cols);
                    stored[name] = (scratch.Position, bytes.Length, d.StoredType, [d.Cols, d.Rows]);
                    scratch.Write(bytes);
                    reports.Add(new LayerReport(name, -1, plan[name].ToString(), d.Data.Length, pruned.LongCount(p => p), null, 0));
                }
                scratch.Flush();

                progress?.Report(new(c.Layers, c.Layers, "writing", 1));
                var writer = new GgufWriter { Alignment = f.Alignment };
                foreach (var (k, v) in f.MetadataList) writer.Set(k, v);
                writer.Set("pare.prune.method", options.Method.ToString().ToLowerInvariant());
                writer.Set("pare.prune.pattern", options.Pattern.ToString());
                writer.Set("pare.prune.samples", (uint)windows.Length);
                writer.Set("pare.prune.seqlen", (uint)seqLen);
                writer.Set("pare.prune.seed", (uint)options.Seed);
                writer.Set("pare.prune.calibration", calibDesc);
                if (storage == SparseStorage.Bitmask) writer.Set(SparseMatrix.FormatKey, "bitmask");
                foreach (var t in f.Tensors)
                {
                    if (stored.TryGetValue(t.Name, out var s))
                        writer.AddTensor(t.Name, s.Type, s.Dims, o => CopyRange(scratch.SafeFileHandle, s.Offset, s.Bytes, o));
                    else
                        writer.AddTensor(t.Name, t.Type, t.Dims, o => CopyRange(src, f.DataOffset + t.Offset, t.ByteSize, o));
                }
                writer.Write(outputPath);
            }
        }
        finally
        {
            if (File.Exists(scratchPath)) File.Delete(scratchPath);
        }
        return new PruneResult
        {
            Input = modelPath, Output = outputPath, Method = options.Method.ToString().ToLowerInvariant(), Pattern = options.Pattern.ToString() + (options.RowGroup > 1 ? $", row groups of {options.RowGroup}" : ""),
            Samples = windows.Length, SeqLen = seqLen, Seed = options.Seed, Calibration = calibDesc,
            Storage = storage.ToString().ToLowerInvariant(), Layers = reports, Seconds = sw.Elapsed.TotalSeconds,
            InputBytes = new FileInfo(modelPath).Length, OutputBytes = new FileInfo(outputPath).Length,
        };
    }

    /// <summary>Which tensors get which pattern; checks everything before any work is done.</summary>
    static Dictionary<string, SparsityPattern> Plan(GgufFile f, LlamaConfig c, PruneOptions o)
    {
        var names = new List<string>();
        for (int l = 0; l < c.Layers; l++)
            foreach (var s in new[] { "attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down" })
                names.Add($"blk.{l}.{s}.weight");
        if (o.PruneEmbeddings)
        {
            names.Add("token_embd.weight");
            if (!c.TiedEmbeddings) names.Add("output.weight");
        }
        var plan = new Dictionary<string, SparsityPattern>();
        foreach (var n in names)
        {
            if (o.PatternFor(n) is not { } p) continue;
            var t = f.GetTensor(n);
            if (Array.IndexOf(Reencodable, t.Type) < 0)
                throw new PareException($"tensor '{n}' is {t.Type}; pruning re-encodes F32, F16, BF16 and Q8_0 only (prune the F16 model, then quantize)");
            p.CheckFits(n, (int)t.Dims[0]);
            if (p.Ratio > 0) plan[n] = p;
        }
        return plan;
    }

    static void PruneMatrix(DenseLinear d, SparsityPattern p, LayerStats? st, PruneOptions o, bool[] pruned, bool lastReader, CancellationToken cancel,
        float[]? gblmGrad = null, int windowCount = 1)
    {
        switch (o.Method)
        {
            case PruneMethod.Magnitude: Magnitude.PruneRowGroups(d.Data, d.Rows, d.Cols, p, p.IsNM ? 1 : o.RowGroup, pruned); break;
            case PruneMethod.Wanda:
                Wanda.PruneRowGroups(d.Data, d.Rows, d.Cols, (st ?? throw new PareException("Wanda needs calibration statistics")).MeanSq(), p, p.IsNM ? 1 : o.RowGroup, pruned);
                break;
            case PruneMethod.SparseGpt:
                SparseGpt.Prune(d.Data, d.Rows, d.Cols, (st ?? throw new PareException("SparseGPT needs calibration statistics")).Hessian(lastReader), p, pruned,
                    o.BlockSize, o.Damp, o.Threads, cancel);
                break;
            case PruneMethod.Gblm:
                // ||X||² as the reference scales it: Σ over tokens / number of windows (not per token).
                var sqn = (st ?? throw new PareException("GBLM needs calibration statistics")).MeanSq();
                double perWindow = (double)st.Tokens / Math.Max(1, windowCount);
                for (int j = 0; j < sqn.Length; j++) sqn[j] *= perWindow;
                Gblm.Prune(d.Data, d.Rows, d.Cols, sqn, gblmGrad ?? throw new PareException($"GBLM has no gradient for {d.Name}"), p, pruned);
                break;
            default: throw new PareException($"unknown pruning method {o.Method}");
        }
    }

    /// <summary>
    /// Re-encodes pruned F32 values in the stored type. Pruned weights are exactly zero in every type; a kept weight
    /// that would round to zero (a tiny F16/BF16 value, or below half a Q8_0 step) is stored as the smallest non-zero
    /// value of its sign instead, so the stored sparsity is exactly the mask's.
    /// </summary>
    public static byte[] Encode(GgmlType type, ReadOnlySpan<float> values, ReadOnlySpan<bool> pruned, int cols)
    {
        var bytes = Quantizer.Quantize(type, values);
        switch (type)
        {
            case GgmlType.F16 or GgmlType.BF16:
                var h = MemoryMarshal.Cast<byte, ushort>(bytes.AsSpan());
                for (int i = 0; i < h.Length; i++)
                    if (!pruned[i] && (h[i] & 0x7FFF) == 0 && values[i] != 0) h[i] = (ushort)((values[i] < 0 ? 0x8000 : 0) | 1);
                break;
            case GgmlType.Q8_0:
                for (int i = 0; i < values.Length; i++)
                {
                    long block = i / 32, at = block * 34 + 2 + i % 32;
                    if (!pruned[i] && bytes[at] == 0 && values[i] != 0)
                    {
                        // A zero scale (the whole block rounds to nothing) cannot hold the value: keep the block as is.
                        if (bytes[block * 34] == 0 && bytes[block * 34 + 1] == 0) continue;
                        bytes[at] = (byte)(sbyte)(values[i] < 0 ? -1 : 1);
                    }
                }
                break;
        }
        _ = cols;
        return bytes;
    }

    static void CopyRange(SafeFileHandle h, long offset, long count, Stream dst)
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
