using System.Diagnostics;
using Pare.Formats.Gguf;
using Pare.Kernels;
using Pare.Models;
using Pare.Tensors;

namespace Pare.Training;

/// <summary>Settings of a recovery fine-tuning run (<c>pare finetune</c>). Defaults are documented in docs/structured-pruning.md.</summary>
public sealed record FinetuneOptions
{
    /// <summary>Optimizer steps.</summary>
    public int Steps { get; init; } = 100;
    /// <summary>LoRA rank on every block linear layer (q, k, v, o, gate, up, down); 0 = full fine-tuning of every weight.</summary>
    public int LoraRank { get; init; }
    /// <summary>LoRA scale numerator: the update is (alpha / rank) · B·A (16, as LLM-Pruner's recovery).</summary>
    public float LoraAlpha { get; init; } = 16f;
    /// <summary>Peak learning rate; null = 1e-3 with LoRA, 1e-4 for full fine-tuning.</summary>
    public float? LearningRate { get; init; }
    /// <summary>Sequences per step.</summary>
    public int BatchSize { get; init; } = 8;
    /// <summary>Tokens per training sequence; null = min(context length, 128).</summary>
    public int? SeqLen { get; init; }
    /// <summary>Linear warmup steps (then cosine decay to 10% of the peak).</summary>
    public int WarmupSteps { get; init; } = 10;
    /// <summary>Global gradient-norm clip.</summary>
    public float GradClip { get; init; } = 1f;
    /// <summary>Seed of the data order and of the LoRA A initialization.</summary>
    public ulong Seed { get; init; } = 1;
    public int Threads { get; init; } = Environment.ProcessorCount;
    /// <summary>Write a snapshot of the model every this many steps (before the last), next to the output as
    /// <c>NAME.stepK.gguf</c> (<see cref="Finetune.SnapshotPath"/>), for a recovery curve from one run; 0 = none.</summary>
    public int SaveEvery { get; init; }
    /// <summary>SliceGPT models: train the shortcut matrices (blk.N.attn_shortcut / ffn_shortcut) in full fine-tuning
    /// too. Default false: they stay as sliced (the reference's recovery fine-tuning never trains them either).</summary>
    public bool TrainShortcuts { get; init; }

    public float EffectiveLearningRate => LearningRate ?? (LoraRank > 0 ? 1e-3f : 1e-4f);

    public void Validate()
    {
        if (Steps < 0) throw new PareException($"--steps must be 0 or more (got {Steps})");
        if (LoraRank < 0) throw new PareException($"--lora must be 0 (full fine-tuning) or a positive rank (got {LoraRank})");
        if (!(EffectiveLearningRate > 0) || float.IsInfinity(EffectiveLearningRate)) throw new PareException($"--lr must be positive (got {EffectiveLearningRate})");
        if (BatchSize < 1) throw new PareException($"--batch must be at least 1 (got {BatchSize})");
        if (SeqLen is < 2) throw new PareException($"--seqlen must be at least 2 (got {SeqLen})");
        if (!(LoraAlpha > 0)) throw new PareException($"LoRA alpha must be positive (got {LoraAlpha})");
        if (Threads < 1) throw new PareException($"threads must be at least 1 (got {Threads})");
        if (SaveEvery < 0) throw new PareException($"--save-every must be 0 (none) or a positive number of steps (got {SaveEvery})");
    }
}

/// <summary>What <see cref="Finetune"/> reports after each step.</summary>
/// <summary>What <see cref="Finetune"/> reports after each step; <c>Snapshot</c> is the file written after this step, if any.</summary>
public readonly record struct FinetuneProgress(int Step, int TotalSteps, double Loss, float LearningRate, double TokensPerSecond, string? Snapshot = null);

/// <summary>What a run did.</summary>
public sealed record FinetuneResult(string Mode, int Steps, long TokensPerStep, long TrainableParameters, long MaskedZeros,
    double FirstLoss, double LastLoss, double Seconds, IReadOnlyList<double> Losses);

/// <summary>
/// LoRA adapters for one block matrix W (out, in): W_eff = mask ⊙ (W0 + (alpha/r) · B·A), A (r, in) Gaussian / sqrt(in), B
/// (out, r) zero, so step 0 is the base model. The trainer's backward pass gives G = ∂L/∂W_eff; W_eff is linear in A and B,
/// so ∂L/∂B = s·(mask ⊙ G)·Aᵀ and ∂L/∂A = s·Bᵀ·(mask ⊙ G) exactly.
/// </summary>
public sealed class LoraAdapter
{
    public ParamInfo Target { get; }
    public int Rank { get; }
    public float Scale { get; }
    public float[] A { get; }   // (rank, in)
    public float[] B { get; }   // (out, rank)
    public float[] GradA { get; }
    public float[] GradB { get; }

    public LoraAdapter(ParamInfo target, int rank, float alpha, ulong seed)
    {
        Target = target; Rank = rank; Scale = alpha / rank;
        A = new float[rank * target.Cols]; B = new float[target.Rows * rank];
        GradA = new float[A.Length]; GradB = new float[B.Length];
        var rng = new SplitMix64(seed);
        float std = 1f / MathF.Sqrt(target.Cols);
        for (int i = 0; i < A.Length; i++) A[i] = (float)(rng.NextGaussian() * std);
    }

    /// <summary>merged = mask ⊙ (base + s·B·A); mask = null keeps every weight.</summary>
    public void Merge(ReadOnlySpan<float> baseW, ReadOnlySpan<bool> zero, Span<float> merged)
    {
        int rows = Target.Rows, cols = Target.Cols, r = Rank;
        var acc = new float[cols];
        for (int i = 0; i < rows; i++)
        {
            Array.Clear(acc);
            for (int k = 0; k < r; k++)
            {
                float b = B[i * r + k] * Scale;
                if (b == 0) continue;
                var a = A.AsSpan(k * cols, cols);
                for (int j = 0; j < cols; j++) acc[j] += b * a[j];
            }
            int o = i * cols;
            for (int j = 0; j < cols; j++) merged[o + j] = !zero.IsEmpty && zero[o + j] ? 0f : baseW[o + j] + acc[j];
        }
    }

    /// <summary>GradA, GradB from G = ∂L/∂W_eff (already masked).</summary>
    public void Backward(ReadOnlySpan<float> g)
    {
        int rows = Target.Rows, cols = Target.Cols, r = Rank;
        Array.Clear(GradA); Array.Clear(GradB);
        for (int i = 0; i < rows; i++)
        {
            var gi = g.Slice(i * cols, cols);
            for (int k = 0; k < r; k++)
            {
                // dB[i,k] = s Σ_j G[i,j] A[k,j];  dA[k,j] += s B[i,k] G[i,j]
                var a = A.AsSpan(k * cols, cols);
                double dot = 0;
                for (int j = 0; j < cols; j++) dot += gi[j] * a[j];
                GradB[i * r + k] = (float)(Scale * dot);
                float sb = Scale * B[i * r + k];
                if (sb == 0) continue;
                var da = GradA.AsSpan(k * cols, cols);
                for (int j = 0; j < cols; j++) da[j] += sb * gi[j];
            }
        }
    }
}

/// <summary>
/// Recovery fine-tuning of a (pruned) Llama model on the trainer: full fine-tuning (AdamW on every weight) or LoRA adapters
/// on the block linear layers, merged into the weights at export. The pruned structure stays: weights that are exactly zero
/// in the input stay zero (their gradients are masked and they are re-zeroed after each update), the model's shapes
/// are kept (a structured model trains at its smaller widths, per layer for a non-uniform <c>deci</c> one; a SliceGPT model
/// at its sliced width, its shortcut matrices frozen unless <see cref="FinetuneOptions.TrainShortcuts"/>), and
/// FLAP's output biases stay as they are (frozen).
/// The output copies the input GGUF (metadata, tokenizer, other tensors) with the trained matrices re-encoded in their
/// stored types, written to a temporary name and renamed: no partial output when cancelled or failing.
/// </summary>
public sealed class Finetune
{
    readonly LlamaConfig _c;
    readonly FinetuneOptions _o;
    readonly string _modelPath;
    readonly int[] _tokens;
    readonly int _seqLen;
    readonly Dictionary<string, bool[]> _zeros = [];
    readonly float[] _base;
    readonly List<LoraAdapter> _lora = [];
    readonly float[][] _m, _v;
    readonly AdamW? _adam;
    readonly TokenSampler _sampler;

    public ParameterStore Parameters { get; }
    public TrainingModel Model { get; }
    public IReadOnlyList<LoraAdapter> Adapters => _lora;
    public long MaskedZeros { get; private set; }
    public int SeqLen => _seqLen;

    public Finetune(string modelPath, int[] trainTokens, FinetuneOptions options)
    {
        options.Validate();
        _o = options;
        _modelPath = modelPath;
        if (!File.Exists(modelPath)) throw new PareException($"model file not found: {modelPath}");
        float[]?[] bo, bd;
        using (var model = LlamaModel.Load(modelPath))
        {
            _c = model.Config;
            bo = [.. model.Weights.Layers.Select(l => l.Bo)];
            bd = [.. model.Weights.Layers.Select(l => l.BDown)];
        }
        _seqLen = Math.Min(options.SeqLen ?? Math.Min(_c.ContextLength, 128), _c.ContextLength);
        if (trainTokens.Length < _seqLen + 1) throw new PareException($"the training text has {trainTokens.Length} tokens, fewer than one window of {_seqLen + 1}");
        foreach (var t in trainTokens) if ((uint)t >= (uint)_c.VocabSize) throw new PareException($"token id {t} is outside the vocabulary of {_c.VocabSize}");
        _tokens = trainTokens;
        Parameters = new ParameterStore(_c);
        Parameters.LoadGguf(modelPath);
        Model = new TrainingModel(Parameters, options.BatchSize, _seqLen, options.Threads)
        {
            OutputBias = bo.Any(b => b != null) ? bo : null,
            DownBias = bd.Any(b => b != null) ? bd : null,
        };
        long zeros = 0;
        foreach (var p in BlockMatrices())
        {
            var v = Parameters.Value(p);
            var z = new bool[v.Length];
            int n = 0;
            for (int i = 0; i < v.Length; i++) if (v[i] == 0) { z[i] = true; n++; }
            if (n > 0) { _zeros[p.Name] = z; zeros += n; }
        }
        MaskedZeros = zeros;
        _base = options.LoraRank > 0 ? (float[])Parameters.Values.Clone() : [];
        if (options.LoraRank > 0)
        {
            ulong s = options.Seed * 0x9E3779B97F4A7C15UL;
            foreach (var p in BlockMatrices())
            {
                if (options.LoraRank > Math.Min(p.Rows, p.Cols)) throw new PareException($"--lora {options.LoraRank} exceeds the smaller side of {p.Name} ({p.Rows}x{p.Cols})");
                _lora.Add(new LoraAdapter(p, options.LoraRank, options.LoraAlpha, s += 0x632BE59BD9B4E019UL));
            }
        }
        else _adam = new AdamW(Parameters, 0.9f, 0.95f, 1e-8f, 0f);
        _m = [.. _lora.SelectMany(a => new[] { new float[a.A.Length], new float[a.B.Length] })];
        _v = [.. _lora.SelectMany(a => new[] { new float[a.A.Length], new float[a.B.Length] })];
        _sampler = new TokenSampler(_tokens, _seqLen, options.Seed * 0x9E3779B97F4A7C15UL + 7);
    }

    IEnumerable<ParamInfo> BlockMatrices() => Parameters.Layers.SelectMany(l => new[] { l.Wq, l.Wk, l.Wv, l.Wo, l.Gate, l.Up, l.Down });

    public long TrainableParameters => _lora.Count > 0 ? _lora.Sum(a => (long)a.A.Length + a.B.Length)
        : Parameters.Count - MaskedZeros - (_o.TrainShortcuts ? 0 : Parameters.Layers.Sum(l => (l.AttnShortcut?.Length ?? 0) + (l.FfnShortcut?.Length ?? 0)));
    public long TokensPerStep => (long)_o.BatchSize * _seqLen;
    public int Step { get; private set; }

    /// <summary>Writes every adapter's merged weights into the parameter store (mask ⊙ (W0 + s·B·A)).</summary>
    public void MergeAdapters()
    {
        foreach (var a in _lora)
            a.Merge(_base.AsSpan((int)a.Target.Offset, (int)a.Target.Length), _zeros.GetValueOrDefault(a.Target.Name), Parameters.Value(a.Target));
    }

    /// <summary>Called after every backward pass (<see cref="TrainStep"/>, <see cref="ComputeGradients"/>) with the masked
    /// gradients in <see cref="Parameters"/>, before the update: Adapt-Pruner accumulates its Taylor scores here.</summary>
    public Action? AfterBackward { get; set; }

    void MaskGradients()
    {
        if (!_o.TrainShortcuts)
            foreach (var l in Parameters.Layers)
                foreach (var s in new[] { l.AttnShortcut, l.FfnShortcut })
                    if (s != null) Parameters.Grad(s).Clear();   // zero gradients from the start: AdamW leaves them unchanged
        foreach (var (name, z) in _zeros)
        {
            var g = Parameters.Grad(Parameters.All.First(q => q.Name == name));
            for (int i = 0; i < z.Length; i++) if (z[i]) g[i] = 0;
        }
    }

    /// <summary>Gradients of one training batch (the next of the data order) without an update; returns its mean loss.</summary>
    public double ComputeGradients()
    {
        int T = _seqLen, bs = _o.BatchSize;
        var inputs = new int[bs * T];
        var targets = new int[bs * T];
        _sampler.Next(inputs, targets, bs);
        if (_lora.Count > 0) MergeAdapters();
        Parameters.ZeroGrads();
        float scale = 1f / (bs * T);
        double loss = Model.Step(inputs, targets, scale) * scale;
        MaskGradients();
        AfterBackward?.Invoke();
        return loss;
    }

    /// <summary>Full fine-tuning only: block-matrix weights that are now exactly zero (set by a pruner between steps) stay
    /// zero from here on, as the input's zeros do. Returns the number of masked weights.</summary>
    public long RefreshMask()
    {
        if (_lora.Count > 0) throw new PareException("the pruning mask can be extended during full fine-tuning only (not LoRA)");
        long zeros = 0;
        foreach (var p in BlockMatrices())
        {
            var v = Parameters.Value(p);
            var z = _zeros.GetValueOrDefault(p.Name) ?? new bool[v.Length];
            int n = 0;
            for (int i = 0; i < v.Length; i++) if (z[i] |= v[i] == 0) n++;
            if (n > 0) { _zeros[p.Name] = z; zeros += n; }
        }
        return MaskedZeros = zeros;
    }

    /// <summary>One optimizer step; returns the mean training loss (nats per token) before the update.</summary>
    public double TrainStep()
    {
        double loss = ComputeGradients();
        float lr = LrSchedule.At(Step, _o.Steps, Math.Min(_o.WarmupSteps, Math.Max(1, _o.Steps)), _o.EffectiveLearningRate, _o.EffectiveLearningRate * 0.1f);
        if (_adam != null)
        {
            GradClip.Clip(Parameters.Grads, _o.GradClip, _o.Threads);
            _adam.Update(lr, _o.Threads);
            foreach (var (name, z) in _zeros)
            {
                var v = Parameters.Value(Parameters.All.First(q => q.Name == name));
                for (int i = 0; i < z.Length; i++) if (z[i]) v[i] = 0;
            }
        }
        else
        {
            FixedParallel.For(_lora.Count, _o.Threads, (i0, i1) =>
            {
                for (int i = i0; i < i1; i++) _lora[i].Backward(Parameters.Grad(_lora[i].Target));
            });
            double sq = 0;
            foreach (var a in _lora) { foreach (var g in a.GradA) sq += (double)g * g; foreach (var g in a.GradB) sq += (double)g * g; }
            double norm = Math.Sqrt(sq);
            float clip = _o.GradClip > 0 && norm > _o.GradClip ? (float)(_o.GradClip / norm) : 1f;
            long t = Step + 1;
            float b1 = 0.9f, b2 = 0.999f, eps = 1e-8f;
            float c1 = 1 - MathF.Pow(b1, t), c2 = 1 - MathF.Pow(b2, t);
            for (int i = 0; i < _lora.Count; i++)
            {
                Adam(_lora[i].A, _lora[i].GradA, _m[2 * i], _v[2 * i]);
                Adam(_lora[i].B, _lora[i].GradB, _m[2 * i + 1], _v[2 * i + 1]);
            }
            void Adam(float[] w, float[] g, float[] m, float[] v)
            {
                for (int j = 0; j < w.Length; j++)
                {
                    float gj = g[j] * clip;
                    m[j] = b1 * m[j] + (1 - b1) * gj;
                    v[j] = b2 * v[j] + (1 - b2) * gj * gj;
                    w[j] -= lr * (m[j] / c1) / (MathF.Sqrt(v[j] / c2) + eps);
                }
            }
            MergeAdapters();
        }
        Step++;
        return loss;
    }

    /// <summary>Runs every step, then writes the output. Cancellation stops before the next step and writes nothing.</summary>
    public FinetuneResult Run(string outputPath, IProgress<FinetuneProgress>? progress = null, CancellationToken cancel = default)
    {
        Pare.Formats.OutputPath.Check(_modelPath, outputPath);
        var sw = Stopwatch.StartNew();
        var losses = new List<double>();
        while (Step < _o.Steps)
        {
            cancel.ThrowIfCancellationRequested();
            var t0 = Stopwatch.GetTimestamp();
            double loss = TrainStep();
            losses.Add(loss);
            float lr = LrSchedule.At(Step - 1, _o.Steps, Math.Min(_o.WarmupSteps, Math.Max(1, _o.Steps)), _o.EffectiveLearningRate, _o.EffectiveLearningRate * 0.1f);
            double tps = TokensPerStep / Stopwatch.GetElapsedTime(t0).TotalSeconds;
            string? snapshot = null;
            if (_o.SaveEvery > 0 && Step % _o.SaveEvery == 0 && Step < _o.Steps)
            {
                snapshot = SnapshotPath(outputPath, Step);
                Pare.Formats.OutputPath.Check(_modelPath, snapshot);
                Export(snapshot);   // the adapters are merged after every LoRA step
            }
            progress?.Report(new FinetuneProgress(Step, _o.Steps, loss, lr, tps, snapshot));
        }
        cancel.ThrowIfCancellationRequested();
        if (_lora.Count > 0) MergeAdapters();
        Export(outputPath);
        return new FinetuneResult(_lora.Count > 0 ? $"lora-{_o.LoraRank}" : "full", Step, TokensPerStep, TrainableParameters, MaskedZeros,
            losses.Count > 0 ? losses[0] : double.NaN, losses.Count > 0 ? losses[^1] : double.NaN, sw.Elapsed.TotalSeconds, losses);
    }

    /// <summary>Where the snapshot of step <paramref name="step"/> goes: <c>DIR/NAME.stepK.gguf</c> for output <c>DIR/NAME.gguf</c>.</summary>
    public static string SnapshotPath(string outputPath, int step)
    {
        string dir = Path.GetDirectoryName(outputPath) ?? "";
        string stem = Path.GetExtension(outputPath).Equals(".gguf", StringComparison.OrdinalIgnoreCase) ? Path.GetFileNameWithoutExtension(outputPath) : Path.GetFileName(outputPath);
        return Path.Combine(dir, $"{stem}.step{step}.gguf");
    }

    /// <summary>The input GGUF with every trained tensor re-encoded in its stored type.</summary>
    public void Export(string outputPath)
    {
        using var f = GgufFile.Open(_modelPath);
        var writer = new GgufWriter { Alignment = f.Alignment };
        foreach (var (k, v) in f.MetadataList) writer.Set(k, v);
        writer.Set("pare.finetune.mode", _lora.Count > 0 ? $"lora-{_o.LoraRank}" : "full");
        writer.Set("pare.finetune.steps", (uint)Step);
        writer.Set("pare.finetune.tokens_per_step", (uint)TokensPerStep);
        var byName = Parameters.All.ToDictionary(p => p.Name);
        foreach (var t in f.Tensors)
        {
            if (byName.TryGetValue(t.Name, out var p))
            {
                var values = Parameters.Value(p).ToArray();
                byte[] bytes = Quantizer.Quantize(t.Type, values);
                writer.AddTensor(t.Name, t.Type, t.Dims, bytes);
            }
            else
            {
                var bytes = f.TensorBytes(t).ToArray();
                writer.AddTensor(t.Name, t.Type, t.Dims, bytes);
            }
        }
        writer.Write(outputPath);
    }
}
