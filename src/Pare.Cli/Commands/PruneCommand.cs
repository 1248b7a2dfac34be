using System.CommandLine;
using System.Globalization;
using Pare.Data;
using Pare.Pruning;
using Pare.Pruning.Structured;
using Pare.Tokenizers;
using Spectre.Console;

namespace Pare.Cli.Commands;

/// <summary>
/// <c>pare prune MODEL --method magnitude|wanda|sparsegpt --sparsity 0.5 [--pattern 2:4] -o OUT.gguf</c>: one-shot
/// pruning with sequential block-by-block calibration; prints per-layer sparsity and reconstruction error.
/// </summary>
internal static class PruneCommand
{
    public static Command Create()
    {
        var model = Cli.ModelArgument();
        var method = new Option<string>("--method", "-m") { Description = "magnitude, wanda, sparsegpt or gblm (unstructured / N:M); flap, flap-uniform, wanda-sp, magnitude-sp or cfsp (structured: heads and FFN channels removed, a smaller dense model); adapt (Adapt-Pruner: a few % per round, fine-tuning between rounds; needs --train-text); slicegpt (embedding dimensions deleted, runs in Pare only).", DefaultValueFactory = _ => "sparsegpt" };
        var ratio = new Option<double>("--ratio", "-r") { Description = "Structured methods: fraction of the block parameters removed, in [0, 1).", DefaultValueFactory = _ => 0.2 }
            .Check(v => v >= 0 && v < 1, "in [0, 1)");
        var slicing = new Option<double>("--slicing") { Description = "slicegpt: fraction of the embedding dimension deleted, in [0, 1) (kept width rounded down to a multiple of 8).", DefaultValueFactory = _ => 0.25 }
            .Check(v => v >= 0 && v < 1, "in [0, 1)");
        var sparsity = new Option<double>("--sparsity", "-s") { Description = "Fraction of weights removed from each pruned matrix, in [0, 1).", DefaultValueFactory = _ => 0.5 }
            .Check(v => v >= 0 && v < 1, "in [0, 1)");
        var pattern = new Option<string?>("--pattern") { Description = "'unstructured' (default) or N:M, e.g. 2:4 or 4:8 (N kept of every M inputs; sets the sparsity to 1 - N/M)." };
        var calibFile = new Option<string?>("--calib-file") { Description = "Calibration text (a training split, never the test split), tokenized by the model's own tokenizer." };
        var calibRandom = new Option<bool>("--calib-random") { Description = "Calibrate on uniform random tokens (random-weight test and benchmark models only)." };
        var samples = new Option<int>("--samples") { Description = "Calibration windows (wanda and sparsegpt need them; magnitude only with --report-error).", DefaultValueFactory = _ => 128 }.Between(0, 100_000);
        var seqlen = new Option<int?>("--seqlen") { Description = "Tokens per calibration window (default: the model's context length)." }.Between(2, 1 << 20);
        var seed = new Option<int>("--seed") { Description = "Seed of the calibration window draw.", DefaultValueFactory = _ => 0 };
        var overrides = new Option<string[]>("--override") { Description = "Per-tensor setting by glob over tensor names: GLOB=0.3, GLOB=2:4 or GLOB=skip (repeatable; first match wins).", AllowMultipleArgumentsPerToken = false };
        var pruneEmb = new Option<bool>("--prune-embeddings") { Description = "Also prune the token embedding and output head (magnitude scores)." };
        var format = new Option<string>("--sparse-format") { Description = "dense: zeros stored, a normal GGUF llama.cpp loads (default). bitmask: Pare's compact format (bitmask + packed values), smaller and faster, Pare only.", DefaultValueFactory = _ => "dense" };
        var reportError = new Option<bool>("--report-error")
        {
            Description = "Magnitude: also calibrate, to report each matrix's reconstruction error ||WX-W'X||²/||WX||² (costs the calibration pass: " +
                "16.6 s instead of 0.7 s on pare-ref with 128 windows). Wanda and SparseGPT always report it: their calibration gives it.",
        };
        var repack = new Option<bool>("--repack") { Description = "MODEL is already pruned: only convert it, no pruning: a dense file to Pare's compact bitmask format, a compact file back to a dense GGUF." };
        var rowGroup = new Option<int>("--row-group") { Description = "magnitude and wanda: rows per group that keep the same columns (1 = off); with --repack: write F16/Q8_0 matrices in Pare's row-group compact format with one column mask per that many rows (decode work per stored value).", DefaultValueFactory = _ => 1 }.Between(1, 64);
        var trainText = new Option<string?>("--train-text") { Description = "adapt: fine-tuning text between rounds (a training split, never the test split)." };
        var adaptStep = new Option<double>("--adapt-step") { Description = "adapt: fraction of the block parameters removed per round (rounds = ratio / step, rounded up).", DefaultValueFactory = _ => 0.05 }
            .Check(v => v > 0 && v <= 1, "in (0, 1]");
        var roundSteps = new Option<int>("--round-steps") { Description = "adapt: full fine-tuning steps after each round (batch 4 x 512 tokens, lr 5e-4 with warmup and cosine decay over all rounds).", DefaultValueFactory = _ => 25 }.Between(0, 1_000_000);
        var output = new Option<string>("--output", "-o") { Description = "Output GGUF path.", Required = true };
        var threads = Cli.Threads();
        var json = Cli.Json();
        var cmd = new Command("prune", "Prune a model's linear layers (magnitude, Wanda or SparseGPT) with sequential calibration; write a GGUF.")
            { model, method, ratio, slicing, sparsity, pattern, calibFile, calibRandom, samples, seqlen, seed, overrides, pruneEmb, format, reportError, repack, rowGroup, trainText, adaptStep, roundSteps, output, threads, json };
        cmd.SetAction((r, ct) => Task.FromResult(Cli.Guard(() =>
        {
            if ((r.GetValue(method) ?? "").ToLowerInvariant() == "slicegpt")
                return RunSliceGpt(r.GetValue(model)!, r.GetValue(output)!, new SliceGptOptions
                {
                    Slicing = r.GetValue(slicing), Samples = r.GetValue(samples), SeqLen = r.GetValue(seqlen) ?? 128, Seed = r.GetValue(seed), Threads = r.GetValue(threads),
                }, r.GetValue(calibFile) is { } gcf ? new CalibrationSource.TextFile(gcf) : r.GetValue(calibRandom) ? new CalibrationSource.RandomTokens() : null, r.GetValue(json), ct);
            if ((r.GetValue(method) ?? "").ToLowerInvariant() == "adapt")
                return RunAdapt(r.GetValue(model)!, r.GetValue(output)!, r.GetValue(trainText), new AdaptPrunerOptions
                {
                    Ratio = r.GetValue(ratio), Step = r.GetValue(adaptStep), StepsPerRound = r.GetValue(roundSteps), Samples = Math.Min(r.GetValue(samples), 32),
                    SeqLen = r.GetValue(seqlen) ?? 128, Seed = r.GetValue(seed), Threads = r.GetValue(threads),
                }, r.GetValue(calibFile) is { } acf ? new CalibrationSource.TextFile(acf) : r.GetValue(calibRandom) ? new CalibrationSource.RandomTokens() : null, r.GetValue(json), ct);
            if ((r.GetValue(method) ?? "").ToLowerInvariant() is "flap" or "flap-uniform" or "wanda-sp" or "magnitude-sp" or "cfsp")
                return RunStructured(r.GetValue(model)!, r.GetValue(output)!, new StructuredOptions
                {
                    Method = StructuredOptions.Parse(r.GetValue(method)!), Ratio = r.GetValue(ratio), Samples = r.GetValue(samples),
                    SeqLen = r.GetValue(seqlen) ?? 128, Seed = r.GetValue(seed), Threads = r.GetValue(threads),
                }, r.GetValue(calibFile) is { } scf ? new CalibrationSource.TextFile(scf) : r.GetValue(calibRandom) ? new CalibrationSource.RandomTokens() : null, r.GetValue(json), ct);
            var m = (r.GetValue(method) ?? "").ToLowerInvariant() switch
            {
                "magnitude" => PruneMethod.Magnitude,
                "wanda" => PruneMethod.Wanda,
                "sparsegpt" => PruneMethod.SparseGpt,
                "gblm" => PruneMethod.Gblm,
                var other => throw new PareException($"unknown method '{other}' (magnitude, wanda, sparsegpt, gblm, flap, flap-uniform, wanda-sp, magnitude-sp, cfsp, adapt, slicegpt)"),
            };
            double s = r.GetValue(sparsity);
            var unstructured = SparsityPattern.Unstructured(s); // checks the range even when a pattern is given
            var p = r.GetValue(pattern) is { } ps ? SparsityPattern.Parse(ps, s) : unstructured;
            var storage = (r.GetValue(format) ?? "").ToLowerInvariant() switch
            {
                "dense" => SparseStorage.Dense,
                "bitmask" => SparseStorage.Bitmask,
                var other => throw new PareException($"unknown sparse format '{other}' (dense, bitmask)"),
            };
            var options = new PruneOptions
            {
                // Magnitude needs no calibration: its windows would only feed the error report, which is opt-in.
                Method = m, Pattern = p, Samples = m == PruneMethod.Magnitude && !r.GetValue(reportError) ? 0 : r.GetValue(samples), SeqLen = r.GetValue(seqlen), Seed = r.GetValue(seed),
                Overrides = [.. (r.GetValue(overrides) ?? []).Select(LayerOverride.Parse)], PruneEmbeddings = r.GetValue(pruneEmb),
                Threads = r.GetValue(threads), RowGroup = r.GetValue(repack) ? 1 : r.GetValue(rowGroup),
            };
            CalibrationSource? calib = r.GetValue(calibFile) is { } cf ? new CalibrationSource.TextFile(cf)
                : r.GetValue(calibRandom) ? new CalibrationSource.RandomTokens() : null;
            string modelPath = r.GetValue(model)!, outPath = r.GetValue(output)!;
            bool asJson = r.GetValue(json);
            if (r.GetValue(repack))
            {
                if (Path.GetFullPath(outPath) == Path.GetFullPath(modelPath)) throw new PareException("the output path is the input model; choose another");
                if (!File.Exists(modelPath)) throw new PareException($"model file not found: {modelPath}");
                var sw = System.Diagnostics.Stopwatch.StartNew();
                bool unpack;
                using (var g = Formats.Gguf.GgufFile.Open(modelPath)) unpack = CompactFormat.IsCompact(g);
                int n = unpack ? CompactFormat.Unpack(modelPath, outPath, ct) : CompactFormat.Pack(modelPath, outPath, r.GetValue(rowGroup) > 1 ? r.GetValue(rowGroup) : 0);
                var res = new { input = modelPath, output = outPath, converted = n, seconds = sw.Elapsed.TotalSeconds,
                    input_bytes = new FileInfo(modelPath).Length, output_bytes = new FileInfo(outPath).Length };
                if (asJson) Cli.PrintJson(res);
                else Console.Out.WriteLine($"{(unpack ? "unpacked" : "repacked")} {n} matrices: {res.input_bytes / 1048576.0:F1} MiB -> {res.output_bytes / 1048576.0:F1} MiB in {res.seconds:F1} s");
                return 0;
            }

            var result = WithProgress(asJson, "pruning", BlockStage, prog => Pruner.Run(modelPath, outPath, options, calib, storage, prog, ct));

            double rss = Cli.PeakRssMb();
            if (asJson)
            {
                Cli.PrintJson(new
                {
                    input = result.Input, output = result.Output, method = result.Method, pattern = result.Pattern,
                    samples = result.Samples, seqlen = result.SeqLen, seed = result.Seed, calibration = result.Calibration, storage = result.Storage,
                    seconds = result.Seconds, input_bytes = result.InputBytes, output_bytes = result.OutputBytes, peak_rss_mb = rss,
                    pruned_weights = result.Zeros, matrix_weights = result.MatrixWeights, zeros = result.Zeros,
                    layers = result.Layers.Select(l => new { tensor = l.Tensor, block = l.Block, pattern = l.Pattern, weights = l.Weights, zeros = l.Zeros, sparsity = l.Sparsity, relative_error = l.RelativeError, seconds = l.Seconds }),
                });
                return 0;
            }
            var t = new Table().AddColumns("tensor", "pattern", "sparsity", "rel. error ||WX-W'X||²/||WX||²", "seconds").Border(TableBorder.Rounded);
            foreach (var l in result.Layers)
                t.AddRow(Markup.Escape(l.Tensor), Markup.Escape(l.Pattern), l.Sparsity.ToString("P2", CultureInfo.InvariantCulture),
                    l.RelativeError is double e ? e.ToString("0.0000", CultureInfo.InvariantCulture) : "-", l.Seconds.ToString("0.00", CultureInfo.InvariantCulture));
            AnsiConsole.Write(t);
            var sum = new Table().AddColumns("setting", "value").HideHeaders().Border(TableBorder.Rounded);
            sum.AddRow("method / pattern", Markup.Escape($"{result.Method} / {result.Pattern}"));
            sum.AddRow("calibration", $"{result.Samples} windows x {result.SeqLen} tokens, seed {result.Seed}, {Markup.Escape(result.Calibration)}");
            sum.AddRow("pruned", $"{result.Zeros:N0} of {result.MatrixWeights:N0} weights of the pruned matrices ({(double)result.Zeros / Math.Max(1, result.MatrixWeights):P2})");
            sum.AddRow("time", $"{result.Seconds:F1} s");
            sum.AddRow("file", $"{Markup.Escape(result.Output)} ({result.Storage}): {result.OutputBytes / 1048576.0:F1} MiB (input {result.InputBytes / 1048576.0:F1} MiB)");
            sum.AddRow("peak RSS", $"{rss:F0} MiB");
            AnsiConsole.Write(sum);
            return 0;
        })));
        return cmd;
    }

    static string BlockStage(PruneProgress e) =>
        e.Stage == "writing" ? "writing output" : $"block {Math.Min(e.Block + 1, e.Blocks)}/{e.Blocks} {e.Stage}";

    /// <summary>Runs a pruner with a progress bar on an interactive terminal (none with --json or redirected output).</summary>
    static T WithProgress<T>(bool asJson, string label, Func<PruneProgress, string> describe, Func<IProgress<PruneProgress>?, T> run)
    {
        if (!Cli.Interactive(asJson)) return run(null);
        T result = default!;
        AnsiConsole.Progress().AutoClear(true)
            .Columns(new TaskDescriptionColumn(), new ProgressBarColumn(), new PercentageColumn(), new ElapsedTimeColumn(), new RemainingTimeColumn())
            .Start(ctx =>
            {
                var task = ctx.AddTask(label, maxValue: 1.0);
                result = run(new Progress<PruneProgress>(e => { task.Description = describe(e); task.Value = e.Fraction; }));
                task.Value = 1.0;
            });
        return result;
    }

    /// <summary>Structured pruning (FLAP, Wanda-sp, magnitude-sp): a smaller dense model, per-layer kept widths printed.</summary>
    static int RunStructured(string modelPath, string outPath, StructuredOptions options, CalibrationSource? calib, bool asJson, CancellationToken ct)
    {
        var res = WithProgress(asJson, "pruning", BlockStage, prog => StructuredPruner.Run(modelPath, outPath, options, calib, prog, ct));
        if (asJson)
        {
            Cli.PrintJson(new
            {
                input = res.Input, output = res.Output, method = res.Method, ratio = res.Ratio, removed = res.Removed, architecture = res.Architecture,
                samples = res.Samples, seqlen = res.SeqLen, seed = res.Seed, calibration = res.Calibration,
                heads = res.Heads, kv_heads = res.KvHeads, ffn = res.Ffn, block_params_before = res.BlockParamsBefore, block_params_after = res.BlockParamsAfter,
                seconds = res.Seconds, input_bytes = res.InputBytes, output_bytes = res.OutputBytes, peak_rss_mb = Cli.PeakRssMb(),
            });
            return 0;
        }
        var t = new Table().AddColumns("block", "heads (KV)", "FFN width").Border(TableBorder.Rounded);
        for (int l = 0; l < res.Heads.Length; l++) t.AddRow(l.ToString(CultureInfo.InvariantCulture), $"{res.Heads[l]} ({res.KvHeads[l]})", res.Ffn[l].ToString(CultureInfo.InvariantCulture));
        AnsiConsole.Write(t);
        var sum = new Table().AddColumns("setting", "value").HideHeaders().Border(TableBorder.Rounded);
        sum.AddRow("method / ratio", Markup.Escape($"{res.Method} / {res.Ratio:0.###}"));
        sum.AddRow("calibration", $"{res.Samples} windows x {res.SeqLen} tokens, seed {res.Seed}, {Markup.Escape(res.Calibration)}");
        sum.AddRow("removed", $"{res.BlockParamsBefore - res.BlockParamsAfter:N0} of {res.BlockParamsBefore:N0} block parameters ({res.Removed:P2})");
        sum.AddRow("file", $"{Markup.Escape(res.Output)} (arch {res.Architecture}): {res.OutputBytes / 1048576.0:F1} MiB (input {res.InputBytes / 1048576.0:F1} MiB)");
        sum.AddRow("time", $"{res.Seconds:F1} s");
        AnsiConsole.Write(sum);
        return 0;
    }

    /// <summary>Adapt-Pruner: rounds of pruning and fine-tuning; prints the kept widths and each round.</summary>
    static int RunAdapt(string modelPath, string outPath, string? trainPath, AdaptPrunerOptions options, CalibrationSource? calib, bool asJson, CancellationToken ct)
    {
        options.Validate();
        if (trainPath == null) throw new PareException("adapt fine-tunes between rounds: pass --train-text (a training-split text file)");
        if (!File.Exists(modelPath)) throw new PareException($"model file not found: {modelPath}");
        if (!File.Exists(trainPath)) throw new PareException($"training text not found: {trainPath}");
        Pare.Formats.OutputPath.Check(modelPath, outPath);
        TokenizerSpec spec;
        try { spec = TokenizerFiles.Load(modelPath); }
        catch (Exception e) when (e is not PareException) { throw new PareException($"{modelPath}: cannot read its tokenizer: {e.Message}"); }
        var tokens = TokenizerFiles.EncodeFileCached(new Gpt2BpeTokenizer(spec), trainPath);
        calib ??= new CalibrationSource.TextFile(trainPath);
        var run = WithProgress(asJson, "adapt", e => e.Stage, prog => AdaptPruner.Run(modelPath, outPath, options, tokens, calib, prog, ct));
        var res = run.Pruned;
        if (asJson)
        {
            Cli.PrintJson(new
            {
                input = res.Input, output = res.Output, method = "adapt", ratio = res.Ratio, removed = res.Removed, architecture = res.Architecture,
                heads = res.Heads, ffn = res.Ffn, block_params_before = res.BlockParamsBefore, block_params_after = res.BlockParamsAfter,
                train_steps = run.TrainSteps, tokens_per_step = run.TokensPerStep,
                rounds = run.Rounds.Select(x => new { round = x.Round, target = x.Target, removed = x.Removed, layer_sparsity = x.LayerSparsity, layer_importance = x.LayerImportance, mean_loss = x.MeanLoss }),
                seconds = res.Seconds, input_bytes = res.InputBytes, output_bytes = res.OutputBytes, peak_rss_mb = Cli.PeakRssMb(),
            });
            return 0;
        }
        var t = new Table().AddColumns("round", "target", "removed", "layer sparsity", "mean training loss").Border(TableBorder.Rounded);
        foreach (var x in run.Rounds)
            t.AddRow(x.Round.ToString(CultureInfo.InvariantCulture), x.Target.ToString("P1", CultureInfo.InvariantCulture), x.Removed.ToString("P1", CultureInfo.InvariantCulture),
                string.Join(" ", x.LayerSparsity.Select(v => v.ToString("0.00", CultureInfo.InvariantCulture))), x.MeanLoss.ToString("0.000", CultureInfo.InvariantCulture));
        AnsiConsole.Write(t);
        var sum = new Table().AddColumns("setting", "value").HideHeaders().Border(TableBorder.Rounded);
        sum.AddRow("method / ratio", $"adapt / {res.Ratio:0.###}: {run.Rounds.Count} rounds, {run.TrainSteps} fine-tuning steps x {run.TokensPerStep:N0} tokens");
        sum.AddRow("kept", $"heads {string.Join(" ", res.Heads)}; FFN {string.Join(" ", res.Ffn)}");
        sum.AddRow("removed", $"{res.BlockParamsBefore - res.BlockParamsAfter:N0} of {res.BlockParamsBefore:N0} block parameters ({res.Removed:P2})");
        sum.AddRow("file", $"{Markup.Escape(res.Output)} (arch {res.Architecture}): {res.OutputBytes / 1048576.0:F1} MiB (input {res.InputBytes / 1048576.0:F1} MiB)");
        sum.AddRow("time", $"{res.Seconds:F1} s");
        AnsiConsole.Write(sum);
        return 0;
    }

    /// <summary>SliceGPT: embedding dimensions deleted; prints the widths and the parameters removed.</summary>
    static int RunSliceGpt(string modelPath, string outPath, SliceGptOptions options, CalibrationSource? calib, bool asJson, CancellationToken ct)
    {
        var res = WithProgress(asJson, "slicing", e => e.Stage, prog => SliceGpt.Run(modelPath, outPath, options, calib, prog, ct));
        if (asJson)
        {
            Cli.PrintJson(new
            {
                input = res.Input, output = res.Output, method = "slicegpt", slicing = res.Slicing, architecture = SliceGpt.Architecture,
                dim = res.Dim, sliced_dim = res.SlicedDim, samples = res.Samples, seqlen = res.SeqLen, seed = res.Seed, calibration = res.Calibration,
                params_before = res.ParamsBefore, params_after = res.ParamsAfter, removed = res.Removed,
                block_params_before = res.BlockParamsBefore, block_params_after = res.BlockParamsAfter, block_removed = res.BlockRemoved,
                seconds = res.Seconds, input_bytes = res.InputBytes, output_bytes = res.OutputBytes, peak_rss_mb = Cli.PeakRssMb(),
            });
            return 0;
        }
        var sum = new Table().AddColumns("setting", "value").HideHeaders().Border(TableBorder.Rounded);
        sum.AddRow("method / slicing", $"slicegpt / {res.Slicing:0.###}: width {res.Dim} -> {res.SlicedDim}");
        sum.AddRow("calibration", $"{res.Samples} windows x {res.SeqLen} tokens, seed {res.Seed}, {Markup.Escape(res.Calibration)}");
        sum.AddRow("removed", $"{res.ParamsBefore - res.ParamsAfter:N0} of {res.ParamsBefore:N0} parameters ({res.Removed:P2}); block linears {res.BlockRemoved:P2} (shortcuts counted)");
        sum.AddRow("file", $"{Markup.Escape(res.Output)} (arch {SliceGpt.Architecture}, Pare only: llama.cpp cannot run it): {res.OutputBytes / 1048576.0:F1} MiB (input {res.InputBytes / 1048576.0:F1} MiB)");
        sum.AddRow("time", $"{res.Seconds:F1} s");
        AnsiConsole.Write(sum);
        return 0;
    }
}
