using System.Diagnostics;
using Pare.LongContext;
using Pare.Tensors;
using Pare.Tokenizers;

namespace Pare.Training;

/// <summary>What the trainer reports after each step.</summary>
public readonly record struct TrainProgress(int Step, int TotalSteps, double Loss, float LearningRate, double GradNorm,
    double TokensPerSecond, double? ValidLoss);

/// <summary>
/// A training run: F32 master weights, AdamW with warmup + cosine decay, global-norm clipping, seeded data order, periodic
/// validation and checkpoints. Every step is a pure function of (weights, optimizer state, sampler state), and those are
/// what a checkpoint holds, so a run resumed in another process continues with bitwise the same losses.
/// </summary>
public sealed class Trainer
{
    readonly TrainConfig _cfg;
    readonly TokenizerSpec _tokenizer;
    readonly TrainingModel _model;
    readonly TokenSampler _sampler;
    readonly int[] _validInputs, _validTargets;
    readonly int _threads;
    readonly List<StepRecord> _history = [];
    readonly List<EvalRecord> _evals = [];

    public Trainer(TrainConfig config, TokenizerSpec tokenizer, int[] trainTokens, int[] validTokens)
    {
        config.Validate("config");
        _cfg = config;
        _tokenizer = tokenizer;
        _threads = config.EffectiveThreads;
        var llama = config.Model.ToLlama(tokenizer.Tokens.Length);
        llama.Validate("config");
        foreach (var t in trainTokens.Concat(validTokens))
            if ((uint)t >= (uint)llama.VocabSize) throw new PareException($"token id {t} is outside the vocabulary of {llama.VocabSize}");
        Parameters = new ParameterStore(llama);
        Parameters.Initialize(config.Seed, config.InitStd);
        if (config.InitFrom != null) Parameters.LoadGguf(config.InitFrom);
        Optimizer = new AdamW(Parameters, config.Beta1, config.Beta2, config.AdamEps, config.WeightDecay);
        _model = new TrainingModel(Parameters, config.MicroBatch, config.SeqLen, _threads);
        // The data stream has its own seed derived from the run's, independent of the initialization's streams.
        var mix = config.LongContext is { } lc ? new LongContextMix(trainTokens, new TokenText(new Gpt2BpeTokenizer(tokenizer)), lc) : null;
        _sampler = new TokenSampler(trainTokens, config.SeqLen, config.Seed * 0x9E3779B97F4A7C15UL + 1, mix);
        (_validInputs, _validTargets) = TokenSampler.Fixed(validTokens, config.SeqLen, config.EvalSequences);
    }

    public ParameterStore Parameters { get; }
    public AdamW Optimizer { get; }
    public TrainingModel Model => _model;
    /// <summary>Steps done so far.</summary>
    public int Step { get; private set; }
    public IReadOnlyList<StepRecord> History => _history;
    public IReadOnlyList<EvalRecord> Evals => _evals;
    public string CheckpointPath => Path.Combine(_cfg.OutDir, "checkpoint.bin");

    /// <summary>One optimizer step over BatchSize sequences; returns the mean training loss (nats per token).</summary>
    public StepRecord TrainStep()
    {
        int T = _cfg.SeqLen, mb = _cfg.MicroBatch;
        var inputs = new int[_cfg.BatchSize * T];
        var targets = new int[_cfg.BatchSize * T];
        float[] weights = _sampler.Weighted ? new float[_cfg.BatchSize * T] : [];
        _sampler.Next(inputs, targets, _cfg.BatchSize, weights);
        Parameters.ZeroGrads();
        // Weighted: the loss is the weighted mean (Σ w·loss / Σ w), so the step size does not grow with the weights.
        float scale = 1f / (weights.Length > 0 ? weights.Sum() : _cfg.BatchSize * T);
        double loss = 0;
        for (int b = 0; b < _cfg.BatchSize; b += mb)
            loss += _model.Step(inputs.AsSpan(b * T, mb * T), targets.AsSpan(b * T, mb * T), scale,
                weights.Length > 0 ? weights.AsSpan(b * T, mb * T) : default);
        double norm = GradClip.Clip(Parameters.Grads, _cfg.GradClip, _threads);
        float lr = LrSchedule.At(Step, _cfg.Steps, _cfg.WarmupSteps, _cfg.LearningRate, _cfg.MinLearningRate);
        Optimizer.Update(lr, _threads);
        var rec = new StepRecord(Step, loss * scale, lr, norm);
        _history.Add(rec);
        Step++;
        return rec;
    }

    /// <summary>Mean loss over the fixed validation windows (no gradients).</summary>
    public double Evaluate()
    {
        int T = _cfg.SeqLen, mb = _cfg.MicroBatch;
        double sum = 0;
        for (int b = 0; b * T < _validInputs.Length; b += mb)
        {
            int seqs = Math.Min(mb, _validInputs.Length / T - b);
            sum += _model.Step(_validInputs.AsSpan(b * T, seqs * T), _validTargets.AsSpan(b * T, seqs * T), 0f);
        }
        return sum / _validInputs.Length;
    }

    /// <summary>
    /// Trains until <paramref name="untilStep"/> (at most the configured steps), validating and checkpointing on schedule.
    /// On cancellation it finishes the current step, writes a checkpoint and returns. Runs that take no step write nothing.
    /// </summary>
    public void Run(int untilStep, IProgress<TrainProgress>? progress = null, CancellationToken ct = default)
    {
        untilStep = Math.Min(untilStep, _cfg.Steps);
        long tokensPerStep = (long)_cfg.BatchSize * _cfg.SeqLen;
        var sw = new Stopwatch();
        int startStep = Step;
        while (Step < untilStep && !ct.IsCancellationRequested)
        {
            sw.Restart();
            var rec = TrainStep();
            double tps = tokensPerStep / sw.Elapsed.TotalSeconds;
            double? valid = null;
            if (_cfg.EvalEvery > 0 && (Step % _cfg.EvalEvery == 0 || Step == _cfg.Steps))
            {
                valid = Evaluate();
                _evals.Add(new EvalRecord(Step, valid.Value));
            }
            if (_cfg.CheckpointEvery > 0 && Step % _cfg.CheckpointEvery == 0) SaveCheckpoint();
            progress?.Report(new TrainProgress(Step, _cfg.Steps, rec.Loss, rec.LearningRate, rec.GradNorm, tps, valid));
        }
        // Nothing new to save when no step ran (e.g. --steps 0 to export): never overwrite a newer checkpoint with an old one.
        if (Step != startStep) SaveCheckpoint();
    }

    public void SaveCheckpoint(string? path = null)
    {
        Checkpoint.Save(path ?? CheckpointPath, _cfg, Parameters, Optimizer, _sampler.Rng.State, Step, _history, _evals);
        WriteLog();
    }

    /// <summary>Restores weights, optimizer, sampler, step and history from a checkpoint.</summary>
    public void Resume(string? path = null)
    {
        var (step, rng, history, evals) = Checkpoint.Load(path ?? CheckpointPath, _cfg, Parameters, Optimizer);
        Step = step;
        _sampler.Rng.State = rng;
        _history.Clear(); _history.AddRange(history);
        _evals.Clear(); _evals.AddRange(evals);
    }

    /// <summary>Writes the model as GGUF (F32 or F16 matrices) with the tokenizer and the training config.</summary>
    public void Export(string path, GgmlType? type = null) =>
        GgufExport.Write(path, Parameters, _tokenizer, _cfg.Name, type ?? (_cfg.ExportType == "F16" ? GgmlType.F16 : GgmlType.F32), _cfg.ToJson());

    /// <summary>The loss curve as TSV beside the checkpoint (step, loss, lr, grad norm; then validation rows).</summary>
    void WriteLog()
    {
        var inv = System.Globalization.CultureInfo.InvariantCulture;
        using var w = new StreamWriter(Path.Combine(_cfg.OutDir, "loss.tsv"));
        w.WriteLine("kind\tstep\tloss\tlr\tgrad_norm");
        foreach (var h in _history) w.WriteLine(string.Create(inv, $"train\t{h.Step + 1}\t{h.Loss:F5}\t{h.LearningRate:G4}\t{h.GradNorm:F4}"));
        foreach (var e in _evals) w.WriteLine(string.Create(inv, $"valid\t{e.Step}\t{e.Loss:F5}\t\t"));
    }
}
