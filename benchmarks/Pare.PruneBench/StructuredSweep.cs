using System.Globalization;
using System.Text;
using Pare;
using Pare.Evaluation;
using Pare.Models;
using Pare.Pruning;
using Pare.Pruning.Structured;

/// <summary>
/// `structured MODEL`: test perplexity of every structured method at 10/20/30/50% of the block parameters removed, as
/// a ratio to dense (the protocol of `pare ppl`: whole test split, windows of the context length), with the kept
/// widths, file sizes and pruning times. Writes DIR/structured-pruning-results.md and DIR/structured-pruning-ppl.png,
/// partial results to DIR/structured-pruning.partial.tsv as it goes.
/// </summary>
static class StructuredSweep
{
    public static int Run(string model, string test, string train, string docs, int samples, int seqlen, int threads, string ratiosArg, string methodsArg)
    {
        var inv = CultureInfo.InvariantCulture;
        string[] methods = methodsArg.Split(',');
        double[] ratios = [.. ratiosArg.Split(',').Select(r => double.Parse(r, inv))];
        foreach (var f in new[] { model, test, train }) if (!File.Exists(f)) throw new PareException($"{f} not found");
        Directory.CreateDirectory(docs);
        string partial = Path.Combine(docs, "structured-pruning.partial.tsv");
        File.Delete(partial);
        string tmp = Directory.CreateTempSubdirectory("pare-struct-").FullName;
        try
        {
            double Ppl(string path)
            {
                using var m = LlamaModel.Load(path);
                var ids = m.Tokenizer!.Encode(File.ReadAllText(test), addSpecial: true);
                return Perplexity.Evaluate(m, ids, new PerplexityOptions { Threads = threads }).Ppl;
            }
            double dense = Ppl(model);
            Console.WriteLine($"dense: ppl {dense:F3}");
            var rows = new List<(string Method, double Ratio, StructuredResult R, double Ppl)>();
            foreach (var r in ratios)
                foreach (var m in methods)
                {
                    string outPath = Path.Combine(tmp, $"{m}-{r}.gguf");
                    var o = new StructuredOptions { Method = StructuredOptions.Parse(m), Ratio = r, Samples = samples, SeqLen = seqlen, Threads = threads };
                    var res = StructuredPruner.Run(model, outPath, o, new CalibrationSource.TextFile(train));
                    double p = Ppl(outPath);
                    File.Delete(outPath);
                    rows.Add((m, r, res, p));
                    Console.WriteLine($"{m} {r:P0}: removed {res.Removed:P1}, ppl {p:F3} (x{p / dense:F3}), {res.OutputBytes / 1048576.0:F1} MiB, pruned in {res.Seconds:F1} s");
                    File.AppendAllText(partial, string.Create(inv, $"{m}\t{r}\t{res.Removed:0.0000}\t{p:R}\t{p / dense:0.000}\t{res.OutputBytes}\t{res.Seconds:0.0}\t{res.Architecture}\tdense {dense:R}\n"));
                }

            string F(double v) => v.ToString("0.000", inv);
            var md = new StringBuilder();
            md.AppendLine("| method | target | removed (block params) | arch | ppl | ratio to dense | file MiB | heads per layer | FFN width per layer | pruning time (s) |");
            md.AppendLine("|---|---|---|---|---|---|---|---|---|---|");
            md.AppendLine(string.Create(inv, $"| dense | 0% | 0% | llama | {F(dense)} | 1.000 | {new FileInfo(model).Length / 1048576.0:F1} | | | |"));
            foreach (var x in rows)
                md.AppendLine(string.Create(inv, $"| {x.Method} | {x.Ratio:P0} | {x.R.Removed:P1} | {x.R.Architecture} | {F(x.Ppl)} | {F(x.Ppl / dense)} | {x.R.OutputBytes / 1048576.0:F1} | {string.Join(" ", x.R.Heads)} | {string.Join(" ", x.R.Ffn)} | {x.R.Seconds:F1} |"));
            md.AppendLine();
            md.AppendLine(string.Create(inv, $"Settings: {samples} calibration windows of {seqlen} tokens, seed 0, from `{train}`; test split `{test}` (whole, windows of the context length, as `pare ppl`); {threads} threads."));
            File.WriteAllText(Path.Combine(docs, "structured-pruning-results.md"), md.ToString());

            var plt = new ScottPlot.Plot();
            var palette = new ScottPlot.Palettes.Category10();
            int ci = 0;
            foreach (var m in methods)
            {
                var pts = rows.Where(x => x.Method == m).OrderBy(x => x.R.Removed).ToArray();
                var line = plt.Add.Scatter(pts.Select(p => p.R.Removed * 100).Prepend(0).ToArray(), pts.Select(p => p.Ppl / dense).Prepend(1.0).ToArray(), palette.GetColor(ci++));
                line.LegendText = m;
            }
            plt.XLabel("block parameters removed (%)");
            plt.YLabel("ppl / dense");
            plt.Title("pare-ref test perplexity after structured pruning (no recovery)");
            plt.ShowLegend(ScottPlot.Alignment.UpperLeft);
            plt.SavePng(Path.Combine(docs, "structured-pruning-ppl.png"), 900, 520);
            return 0;
        }
        finally { Directory.Delete(tmp, true); }
    }

    /// <summary>`structured-plot ROWS.tsv OUT.png`: the perplexity-ratio plot from measured rows (method, fraction of the
    /// block parameters removed, ppl / dense; tab-separated, '#' lines skipped), one line per method from (0, 1): the
    /// whole-test-split figure, which combines the sweep's rows with SliceGPT's (`pare prune --method slicegpt`, `pare ppl`).</summary>
    public static int Plot(string tsv, string png)
    {
        if (!File.Exists(tsv)) throw new PareException($"{tsv} not found");
        var inv = CultureInfo.InvariantCulture;
        var rows = File.ReadLines(tsv).Where(l => l.Length > 0 && l[0] != '#').Select(l => l.Split('\t'))
            .Select(c => (Method: c[0], Removed: double.Parse(c[1], inv), Ratio: double.Parse(c[2], inv))).ToArray();
        var plt = new ScottPlot.Plot();
        var palette = new ScottPlot.Palettes.Category10();
        int ci = 0;
        foreach (var m in rows.Select(r => r.Method).Distinct())
        {
            var pts = rows.Where(x => x.Method == m).OrderBy(x => x.Removed).ToArray();
            var line = plt.Add.Scatter(pts.Select(p => p.Removed * 100).Prepend(0).ToArray(), pts.Select(p => p.Ratio).Prepend(1.0).ToArray(), palette.GetColor(ci++));
            line.LegendText = m;
        }
        plt.XLabel("block parameters removed (%; SliceGPT: its shortcuts counted)");
        plt.YLabel("ppl / dense");
        plt.Title("pare-ref, whole test split: perplexity after structured pruning (no recovery)");
        plt.ShowLegend(ScottPlot.Alignment.UpperLeft);
        plt.SavePng(png, 900, 520);
        Console.WriteLine($"wrote {png}");
        return 0;
    }
}
