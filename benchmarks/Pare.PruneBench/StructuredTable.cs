using System.Globalization;
using System.Text;
using Pare;
using Pare.Data;
using Pare.Evaluation;
using Pare.Models;
using Pare.Pruning;
using Pare.Pruning.Structured;
using Pare.Tokenizers;
using Pare.Training;

/// <summary>
/// `structured-table MODEL --tsv ROWS.tsv [--md TABLE.md]`: the acceptance table of issue 13, every structured method
/// (flap, flap-uniform, wanda-sp, magnitude-sp, cfsp, slicegpt) at every ratio, perplexity on the test text as `pare
/// ppl` without and with recovery fine-tuning (`pare finetune`, full by default, on every result: uniform `llama`, per-layer
/// `deci` and `slicegpt` files). Rows go to ROWS.tsv as they are measured and rows already there
/// (same method, ratio, recovery steps and test text) are skipped, so an interrupted run resumes where it stopped and a
/// second invocation with other --ratios / --methods adds to the same table. The markdown table (and the published
/// ordering checks) is rendered from every row of the TSV. For slicegpt the ratio is the slicing (the fraction of the
/// embedding width deleted); `removed` is then its block linears removed, the shortcuts counted. `--render` only re-renders
/// (`--md`, `--plot OUT.png`) from the TSV; `--render-steps N` picks the recovery rows of N steps (default --recover-steps;
/// 0 = the most steps measured).
/// </summary>
static class StructuredTable
{
    const string Header = "method\ttarget\trecovery_steps\trecovery_tokens\tremoved_block\tarch\tppl\tdense_ppl\tfile_bytes\tprune_s\tfinetune_s\ttest";

    public static int Run(string model, Options o)
    {
        var inv = CultureInfo.InvariantCulture;
        string tsv = o.Get("--tsv", "docs/structured-pruning-table.tsv");
        string? md = o.Get("--md", "") is { Length: > 0 } m ? m : null;
        string test = o.Get("--test", ".cache/data/corpus/test.txt"), train = o.Get("--train", ".cache/data/corpus/train.txt");
        int threads = o.Int("--threads", Environment.ProcessorCount), samples = o.Int("--samples", 128), seqlen = o.Int("--seqlen", 128);
        int steps = o.Int("--recover-steps", 0);
        var ft = new FinetuneOptions
        {
            Steps = steps, LoraRank = o.Int("--recover-lora", 0), LearningRate = float.Parse(o.Get("--recover-lr", "5e-4"), inv),
            BatchSize = o.Int("--recover-batch", 4), SeqLen = o.Int("--recover-seqlen", 512), WarmupSteps = o.Int("--recover-warmup", 20), Threads = threads,
            TrainShortcuts = o.Has("--recover-train-shortcuts"),
        };
        string[] methods = o.Get("--methods", "flap,flap-uniform,wanda-sp,magnitude-sp,cfsp,slicegpt").Split(',');
        double[] ratios = [.. o.Get("--ratios", "0.1,0.2,0.3,0.5").Split(',').Select(r => double.Parse(r, inv))];
        bool renderOnly = o.Has("--render");
        foreach (var f in new[] { model, test, train }) if (!File.Exists(f)) throw new PareException($"{f} not found");
        if (!File.Exists(tsv)) File.WriteAllText(tsv, Header + "\n");
        string testName = Path.GetFileName(test) + "@" + new FileInfo(test).Length;
        var rows = Read(tsv);
        bool Have(string method, double target, int st) => rows.Any(r => r.Method == method && Math.Abs(r.Target - target) < 1e-9 && r.Steps == st && r.Test == testName);

        if (!renderOnly)
        {
            string tmp = Directory.CreateTempSubdirectory("pare-table-").FullName;
            try
            {
                int[]? trainTokens = null;
                double Ppl(string path)
                {
                    using var lm = LlamaModel.Load(path);
                    var ids = lm.Tokenizer!.Encode(File.ReadAllText(test), addSpecial: true);
                    return Perplexity.Evaluate(lm, ids, new PerplexityOptions { Threads = threads }).Ppl;
                }
                void Add(Row r)
                {
                    rows.Add(r);
                    File.AppendAllText(tsv, r.Tsv() + "\n");
                    Console.WriteLine($"{r.Method} {r.Target:P0} steps {r.Steps}: removed {r.Removed:P1}, ppl {r.Ppl:F3} (x{r.Ppl / r.Dense:F3})");
                }
                double dense = rows.FirstOrDefault(r => r.Method == "dense" && r.Test == testName)?.Ppl ?? double.NaN;
                if (double.IsNaN(dense))
                {
                    dense = Ppl(model);
                    Add(new Row("dense", 0, 0, 0, 0, "llama", dense, dense, new FileInfo(model).Length, 0, 0, testName));
                }
                if (steps > 0 && !Have("dense", 0, steps))
                {
                    // The control: what the same recovery budget does to the dense model itself.
                    trainTokens ??= TokenizerFiles.EncodeFileCached(new Gpt2BpeTokenizer(TokenizerFiles.Load(model)), train);
                    string tuned = Path.Combine(tmp, "dense-ft.gguf");
                    var fr = new Finetune(model, trainTokens, ft).Run(tuned);
                    Add(new Row("dense", 0, steps, fr.TokensPerStep * fr.Steps, 0, "llama", Ppl(tuned), dense, new FileInfo(model).Length, 0, fr.Seconds, testName));
                    File.Delete(tuned);
                }
                foreach (var r in ratios)
                    foreach (var method in methods)
                    {
                        if (method == "adapt")
                        {
                            // Adapt-Pruner trains between its rounds: one row, its steps the recovery steps (no "without recovery").
                            var ao = new AdaptPrunerOptions { Ratio = r, StepsPerRound = o.Int("--adapt-round-steps", 25), LearningRate = ft.EffectiveLearningRate,
                                BatchSize = ft.BatchSize, TrainSeqLen = ft.SeqLen, Threads = threads };
                            int total = ao.Rounds * ao.StepsPerRound;
                            if (Have(method, r, total)) continue;
                            trainTokens ??= TokenizerFiles.EncodeFileCached(new Gpt2BpeTokenizer(TokenizerFiles.Load(model)), train);
                            string ap = Path.Combine(tmp, $"adapt-{r}.gguf");
                            var ar = AdaptPruner.Run(model, ap, ao, trainTokens, new CalibrationSource.TextFile(train));
                            Add(new Row(method, r, ar.TrainSteps, ar.TrainSteps * ar.TokensPerStep, ar.Removed, ar.Pruned.Architecture, Ppl(ap), dense, new FileInfo(ap).Length, ar.Pruned.Seconds, 0, testName));
                            File.Delete(ap);
                            continue;
                        }
                        bool slice = method == "slicegpt";
                        bool wantBase = !Have(method, r, 0), wantRec = steps > 0 && !Have(method, r, steps);
                        if (!wantBase && !wantRec) continue;
                        string pruned = Path.Combine(tmp, $"{method}-{r}.gguf");
                        double removed, seconds; string arch;
                        if (slice)
                        {
                            var res = SliceGpt.Run(model, pruned, new SliceGptOptions { Slicing = r, Samples = samples, SeqLen = seqlen, Threads = threads }, new CalibrationSource.TextFile(train));
                            (removed, seconds, arch) = (res.BlockRemoved, res.Seconds, SliceGpt.Architecture);
                        }
                        else
                        {
                            var res = StructuredPruner.Run(model, pruned, new StructuredOptions { Method = StructuredOptions.Parse(method), Ratio = r, Samples = samples, SeqLen = seqlen, Threads = threads },
                                new CalibrationSource.TextFile(train));
                            (removed, seconds, arch) = (res.Removed, res.Seconds, res.Architecture);
                        }
                        long bytes = new FileInfo(pruned).Length;
                        if (wantBase) Add(new Row(method, r, 0, 0, removed, arch, Ppl(pruned), dense, bytes, seconds, 0, testName));
                        if (wantRec)
                        {
                            trainTokens ??= TokenizerFiles.EncodeFileCached(new Gpt2BpeTokenizer(TokenizerFiles.Load(model)), train);
                            string tuned = Path.Combine(tmp, $"{method}-{r}-ft.gguf");
                            var run = new Finetune(pruned, trainTokens, ft);
                            var fr = run.Run(tuned);
                            Add(new Row(method, r, steps, fr.TokensPerStep * fr.Steps, removed, arch, Ppl(tuned), dense, bytes, seconds, fr.Seconds, testName));
                            File.Delete(tuned);
                        }
                        File.Delete(pruned);
                    }
            }
            finally { Directory.Delete(tmp, true); }
        }
        int recSteps = o.Int("--render-steps", steps);
        if (md != null)
        {
            File.WriteAllText(md, Render(rows, testName, recSteps));
            Console.WriteLine($"wrote {md}");
        }
        if (o.Get("--plot", "") is { Length: > 0 } png)
        {
            Plot(rows, testName, recSteps, png);
            Console.WriteLine($"wrote {png}");
        }
        return 0;
    }

    /// <summary>`--plot OUT.png`: ppl / dense against the block parameters removed, a colour per method, solid without
    /// recovery and dashed after <paramref name="recSteps"/> recovery steps (SliceGPT at its block parameters removed, its
    /// shortcuts counted; Adapt-Pruner a single point). The y axis stops at 2.2 (magnitude-sp's 50% is off the chart).</summary>
    static void Plot(List<Row> all, string testName, int recSteps, string png)
    {
        var rows = all.Where(r => r.Test == testName && r.Method != "dense").ToList();
        var plt = new ScottPlot.Plot();
        var palette = new ScottPlot.Palettes.Category10();
        int ci = 0;
        foreach (var m in "flap,flap-uniform,wanda-sp,magnitude-sp,cfsp,slicegpt,adapt".Split(','))
        {
            var color = palette.GetColor(ci++);
            foreach (int st in new[] { 0, recSteps })
            {
                var pts = rows.Where(r => r.Method == m && (m == "adapt" ? r.Steps > 0 && st > 0 : r.Steps == st)).OrderBy(r => r.Removed).ToArray();
                if (pts.Length == 0 || (st == 0 && recSteps == 0 && m == "adapt")) continue;
                // The untrained lines start at the dense model (0, 1); the recovered ones only where they were measured.
                var xs = pts.Select(p => p.Removed * 100); var ys = pts.Select(p => p.Ppl / p.Dense);
                var line = st == 0 ? plt.Add.Scatter(xs.Prepend(0).ToArray(), ys.Prepend(1.0).ToArray(), color) : plt.Add.Scatter(xs.ToArray(), ys.ToArray(), color);
                line.LegendText = m == "adapt" ? string.Create(CultureInfo.InvariantCulture, $"adapt (trains between rounds, {pts[0].Steps} steps)")
                    : st == 0 ? m : $"{m} + {st} steps";
                if (st > 0) line.LinePattern = ScottPlot.LinePattern.Dashed;
                if (recSteps == 0) break;
            }
        }
        plt.Axes.SetLimitsY(0.95, 2.2);
        plt.XLabel("block parameters removed (%; SliceGPT: its shortcuts counted)");
        plt.YLabel(testName.StartsWith("test.txt@", StringComparison.Ordinal) ? "ppl / dense (pare-ref, whole test split)" : $"ppl / dense (pare-ref, {testName[..testName.IndexOf('@')]})");
        plt.Title(recSteps > 0 ? $"structured pruning: solid = no recovery, dashed = {recSteps} recovery steps" : "structured pruning (no recovery)");
        plt.ShowLegend(ScottPlot.Alignment.UpperLeft);
        plt.SavePng(png, 1000, 600);
    }

    sealed record Row(string Method, double Target, int Steps, long Tokens, double Removed, string Arch, double Ppl, double Dense,
        long Bytes, double PruneSeconds, double FinetuneSeconds, string Test)
    {
        public string Tsv() => string.Create(CultureInfo.InvariantCulture,
            $"{Method}\t{Target}\t{Steps}\t{Tokens}\t{Removed:0.0000}\t{Arch}\t{Ppl:R}\t{Dense:R}\t{Bytes}\t{PruneSeconds:0.0}\t{FinetuneSeconds:0.0}\t{Test}");
    }

    static List<Row> Read(string tsv)
    {
        var inv = CultureInfo.InvariantCulture;
        return [.. File.ReadLines(tsv).Skip(1).Where(l => l.Length > 0 && l[0] != '#').Select(l => l.Split('\t')).Select(c => new Row(
            c[0], double.Parse(c[1], inv), int.Parse(c[2], inv), long.Parse(c[3], inv), double.Parse(c[4], inv), c[5], double.Parse(c[6], inv),
            double.Parse(c[7], inv), long.Parse(c[8], inv), double.Parse(c[9], inv), double.Parse(c[10], inv), c[11]))];
    }

    /// <summary>One line per (method, ratio): without recovery, and with <paramref name="recSteps"/> recovery steps (0 = the
    /// largest number measured; adapt, which trains between its rounds, always shows its own).</summary>
    static string Render(List<Row> all, string testName, int recSteps)
    {
        var inv = CultureInfo.InvariantCulture;
        var rows = all.Where(r => r.Test == testName).ToList();
        var dense = rows.FirstOrDefault(r => r.Method == "dense");
        var sb = new StringBuilder();
        string methodsOrder = "flap,flap-uniform,wanda-sp,magnitude-sp,cfsp,slicegpt,adapt";
        sb.AppendLine("| method | target | removed (block params) | arch | ppl | x dense | recovery steps (tokens) | ppl after recovery | x dense | gap recovered | file MiB |");
        sb.AppendLine("|---|---|---|---|---|---|---|---|---|---|---|");
        var denseRec = rows.Where(r => r.Method == "dense" && r.Steps > 0 && (recSteps == 0 || r.Steps == recSteps)).MaxBy(r => r.Steps);
        if (dense != null) sb.AppendLine(string.Create(inv, $"| dense | 0% | 0% | llama | {dense.Ppl:F3} | 1.000 | ") + (denseRec == null ? " | | | | " :
            string.Create(inv, $"{denseRec.Steps} ({denseRec.Tokens:N0}) | {denseRec.Ppl:F3} | {denseRec.Ppl / denseRec.Dense:F3} | (control: the budget on the dense model) | ")) + string.Create(inv, $"{dense.Bytes / 1048576.0:F1} |"));
        foreach (var target in rows.Where(r => r.Method != "dense").Select(r => r.Target).Distinct().Order())
            foreach (var method in methodsOrder.Split(','))
            {
                var b = rows.FirstOrDefault(r => r.Method == method && r.Target == target && r.Steps == 0);
                var rec = rows.Where(r => r.Method == method && r.Target == target && r.Steps > 0 && (recSteps == 0 || method == "adapt" || r.Steps == recSteps)).MaxBy(r => r.Steps);
                if (b == null && rec != null)
                {
                    // Adapt-Pruner: trained between rounds, no untrained result; gap measured against flap-uniform's at this ratio.
                    var fu = rows.FirstOrDefault(r => r.Method == "flap-uniform" && r.Target == target && r.Steps == 0);
                    string gap = fu != null ? string.Create(inv, $"{(fu.Ppl - rec.Ppl) / (fu.Ppl - rec.Dense):P0} of flap-uniform's") : "";
                    sb.AppendLine(string.Create(inv, $"| {method} | {target:P0} | {rec.Removed:P1} | {rec.Arch} | (trains between rounds) | | {rec.Steps} ({rec.Tokens:N0}) | {rec.Ppl:F3} | {rec.Ppl / rec.Dense:F3} | {gap} | {rec.Bytes / 1048576.0:F1} |"));
                    continue;
                }
                if (b == null) continue;
                string recCols = rec == null ? "not run | | | "
                    : string.Create(inv, $"{rec.Steps} ({rec.Tokens:N0}) | {rec.Ppl:F3} | {rec.Ppl / rec.Dense:F3} | {(b.Ppl - rec.Ppl) / (b.Ppl - b.Dense):P0} | ");
                sb.AppendLine(string.Create(inv, $"| {method} | {target:P0} | {b.Removed:P1} | {b.Arch} | {b.Ppl:F3} | {b.Ppl / b.Dense:F3} | {recCols}{b.Bytes / 1048576.0:F1} |"));
            }
        sb.AppendLine();
        foreach (int st in recSteps > 0 ? new[] { 0, recSteps } : [0])
        {
            sb.AppendLine(st == 0 ? "Published ordering (FLAP < Wanda-sp at every ratio; SliceGPT and FLAP far better than Wanda-sp at 30%+), no recovery:"
                : string.Create(inv, $"The same after {st} recovery steps (every method the same budget):"));
            sb.AppendLine();
            foreach (var target in rows.Where(r => r.Method == "wanda-sp" && r.Steps == st).Select(r => r.Target).Distinct().Order())
            {
                double? P(string m) => rows.FirstOrDefault(r => r.Method == m && r.Target == target && r.Steps == st)?.Ppl;
                double? w = P("wanda-sp"), f = P("flap"), fu = P("flap-uniform"), s = P("slicegpt");
                string Cmp(string name, double? x) => x is double v && w is double wv ? string.Create(inv, $"{name} {v:F2} {(v < wv ? "<" : ">=")} wanda-sp {wv:F2} ({(v < wv ? "holds" : "does not hold")}, {v / wv:F3}x)") : $"{name}: not measured";
                sb.AppendLine(string.Create(inv, $"- {target:P0}: {Cmp("flap", f)}; {Cmp("flap-uniform", fu)}; {Cmp("slicegpt (same slicing, fewer parameters removed)", s)}"));
            }
            sb.AppendLine();
        }
        return sb.ToString().Replace(" %", "%", StringComparison.Ordinal);   // invariant culture's "10 %"
    }
}
