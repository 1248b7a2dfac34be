using System.CommandLine;
using System.Diagnostics;
using Pare.Data;
using Pare.Tokenizers;
using Pare.Training;
using Spectre.Console;

namespace Pare.Cli.Commands;

/// <summary>
/// <c>pare train --config configs/pare-ref.json [--resume] [--steps N] [--out DIR]</c>: trains a reference model, checkpointing
/// to OUT/checkpoint.bin (every checkpoint_every steps, at the end of the invocation, and on Ctrl+C / SIGTERM), and exports
/// OUT/NAME.gguf when the run reaches its last step.
/// </summary>
internal static class TrainCommand
{
    public static Command Create()
    {
        var config = new Option<string>("--config", "-c") { Description = "Training config (JSON, see configs/).", Required = true };
        var resume = new Option<bool>("--resume") { Description = "Continue from OUT/checkpoint.bin." };
        var steps = new Option<int?>("--steps") { Description = "Steps to run in this invocation (default: to the end of the run; 0 with --resume --export: export the checkpoint only)." }.AtLeast(0);
        var outDir = new Option<string?>("--out") { Description = "Output folder (overrides the config's out_dir)." };
        var export = new Option<string?>("--export") { Description = "Also export the current weights to this GGUF when the invocation ends." };
        var threads = new Option<int?>("--threads", "-t") { Description = $"Kernel threads, 1 to {Cli.MaxThreads} (overrides the config)." }.Between(1, Cli.MaxThreads);
        var initFrom = new Option<string?>("--init-from") { Description = "Start from this GGUF's weights (overrides the config's init_from; ignored with --resume)." };
        var json = Cli.Json();
        var cmd = new Command("train", "Train a Llama-architecture model from scratch on the reference corpus.") { config, resume, steps, outDir, export, threads, initFrom, json };
        // Synchronous action: Ctrl+C is handled here (finish the step, checkpoint), not by a forced termination timeout.
        cmd.SetAction(r => Cli.Guard(() =>
        {
            var cfg = TrainConfig.Load(r.GetValue(config)!);
            if (r.GetValue(outDir) is { } o) cfg = cfg with { OutDir = o };
            if (r.GetValue(threads) is int t) cfg = cfg with { Threads = t };
            if (r.GetValue(initFrom) is { } init) cfg = cfg with { InitFrom = init };
            bool asJson = r.GetValue(json);
            Directory.CreateDirectory(cfg.OutDir);
            File.WriteAllText(Path.Combine(cfg.OutDir, "config.json"), cfg.ToJson());

            var spec = TokenizerFiles.Load(cfg.Tokenizer);
            var tok = new Gpt2BpeTokenizer(spec);
            foreach (var f in new[] { cfg.TrainText, cfg.ValidText })
                if (!File.Exists(f)) throw new PareException($"{f} not found: run 'pare data fetch' (and 'pare data tokenizer') first");
            var sw = Stopwatch.StartNew();
            var train = TokenizerFiles.EncodeFileCached(tok, cfg.TrainText);
            var valid = TokenizerFiles.EncodeFileCached(tok, cfg.ValidText);
            Log(asJson, $"tokens: train {train.Length:N0}, valid {valid.Length:N0} ({sw.Elapsed.TotalSeconds:F1} s)");

            var trainer = new Trainer(cfg, spec, train, valid);
            if (r.GetValue(resume)) trainer.Resume();
            Log(asJson, $"{cfg.Name}: {trainer.Parameters.Count / 1e6:F2}M parameters, step {trainer.Step}/{cfg.Steps}, {cfg.BatchSize}x{cfg.SeqLen} tokens per step, {cfg.EffectiveThreads} threads");
            int until = r.GetValue(steps) is int n ? Math.Min(cfg.Steps, trainer.Step + n) : cfg.Steps;

            // Ctrl+C / SIGTERM: the trainer finishes its step, writes the checkpoint and returns.
            var ct = Cli.Cancellation;
            int startStep = trainer.Step;
            var runTime = Stopwatch.StartNew();
            if (Cli.Interactive(asJson)) RunWithBar(trainer, cfg, until, ct);
            else trainer.Run(until, asJson ? null : new SyncProgress(PrintLine), ct);
            bool cancelled = ct.IsCancellationRequested;

            double seconds = runTime.Elapsed.TotalSeconds;
            long tokens = (long)(trainer.Step - startStep) * cfg.BatchSize * cfg.SeqLen;
            double flops = TrainingModel.TrainFlops(trainer.Parameters.Config, cfg.SeqLen, tokens);
            string? exported = r.GetValue(export);
            if (exported == null && trainer.Step >= cfg.Steps) exported = Path.Combine(cfg.OutDir, cfg.Name + ".gguf");
            if (cancelled) exported = null; // an interrupted invocation leaves its checkpoint only
            if (exported != null) trainer.Export(exported);
            var last = trainer.History.Count > 0 ? trainer.History[^1] : default;
            double? validLoss = trainer.Evals.Count > 0 ? trainer.Evals[^1].Loss : null;
            if (cancelled)
                Console.Error.WriteLine($"pare: cancelled at step {trainer.Step}/{cfg.Steps}" +
                    (File.Exists(trainer.CheckpointPath) ? $"; checkpoint {trainer.CheckpointPath} (continue with --resume)" : ""));
            if (asJson)
                Cli.PrintJson(new
                {
                    name = cfg.Name, step = trainer.Step, steps = cfg.Steps, parameters = trainer.Parameters.Count, loss = last.Loss, valid_loss = validLoss,
                    tok_s = tokens / seconds, gflop_s = flops / seconds / 1e9, seconds, checkpoint = trainer.CheckpointPath, exported, cancelled,
                });
            else if (!cancelled)
                Console.Out.WriteLine($"step {trainer.Step}/{cfg.Steps}: loss {last.Loss:F4}" + (validLoss is double v ? $", valid {v:F4}" : "") +
                    $"; {tokens / seconds:F0} tok/s, {flops / seconds / 1e9:F1} GFLOP/s; checkpoint {trainer.CheckpointPath}" + (exported != null ? $"; model {exported}" : ""));
            return cancelled ? 130 : 0;
        }));
        return cmd;
    }

    static void Log(bool json, string line) { if (!json) Console.Error.WriteLine(line); }

    static void PrintLine(TrainProgress p) =>
        Console.Out.WriteLine($"step {p.Step}/{p.TotalSteps} loss {p.Loss:F4} lr {p.LearningRate:G3} gnorm {p.GradNorm:F3} {p.TokensPerSecond:F0} tok/s" +
            (p.ValidLoss is double v ? $" valid {v:F4}" : ""));

    static void RunWithBar(Trainer trainer, TrainConfig cfg, int until, CancellationToken ct)
    {
        AnsiConsole.Progress().AutoClear(false)
            .Columns(new TaskDescriptionColumn { Alignment = Justify.Left }, new ProgressBarColumn(), new PercentageColumn(), new RemainingTimeColumn())
            .Start(ctx =>
            {
                var task = ctx.AddTask($"step {trainer.Step}/{cfg.Steps}", maxValue: cfg.Steps);
                task.Value = trainer.Step;
                double? valid = null;
                trainer.Run(until, new SyncProgress(p =>
                {
                    valid = p.ValidLoss ?? valid;
                    task.Description = $"step {p.Step}/{p.TotalSteps} loss {p.Loss:F3}" + (valid is double v ? $" valid {v:F3}" : "") + $" {p.TokensPerSecond:F0} tok/s";
                    task.Value = p.Step;
                }), ct);
            });
    }

    /// <summary>Reports on the trainer's thread, in order (Progress&lt;T&gt; would post to the thread pool).</summary>
    sealed class SyncProgress(Action<TrainProgress> report) : IProgress<TrainProgress>
    {
        public void Report(TrainProgress value) => report(value);
    }
}
