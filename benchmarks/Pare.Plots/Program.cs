// Figures for docs/, drawn from what the pare commands write:
//   dotnet run -c Release --project benchmarks/Pare.Plots -- tn BENCH.json OUT.png [TITLE]
//     BENCH.json = the output of `pare bench MODEL --tree-costs --json` (or `pare bench-spec --json`): plots T(n)/T(1).
//   dotnet run -c Release --project benchmarks/Pare.Plots -- loss LOSS.tsv OUT.png [TITLE] [--baseline PPL]
//     LOSS.tsv = the loss log of `pare train` (OUT_DIR/loss.tsv): training loss (raw and smoothed) and validation loss
//     per step; --baseline draws the 3-gram baseline's perplexity as a loss line (ln PPL).
//   dotnet run -c Release --project benchmarks/Pare.Plots -- needle NEEDLE.json OUT.png [TITLE]
//     NEEDLE.json = the output of `pare needle MODEL --json`: accuracy heatmap, prompt length x needle depth.
//   dotnet run -c Release --project benchmarks/Pare.Plots -- encoder-prune PRUNE.json OUT.png
//     PRUNE.json = the output of `Pare.EncoderCheck prune`: retrieval recall@10 against sparsity, a line per method.
//   dotnet run -c Release --project benchmarks/Pare.Plots -- encoder-tokens TOKENS.json OUT.png
//     TOKENS.json = the output of `Pare.EncoderCheck token-prune`: recall@10 and cosine to dense against the fraction of
//     tokens kept, a line per method.
//   dotnet run -c Release --project benchmarks/Pare.Plots -- context-pruning CLOZE.json OUT.png
//     CLOZE.json = the output of `pare rag-eval --set cloze --json`: answer-sentence recall against tokens kept, a line per pruner.
//   dotnet run -c Release --project benchmarks/Pare.Plots -- idcm IDCM.json OUT.png
//     IDCM.json = the output of `pare rag-eval --set idcm --json`: MRR against ms per query, a line per first stage
//     (points = rescore counts), the full model as a point and its MRR - tolerance dashed.
//   dotnet run -c Release --project benchmarks/Pare.Plots -- recovery CURVE.tsv OUT.png --dense PPL [--pruned-label TEXT]
//     CURVE.tsv = lines "mode<TAB>steps<TAB>ppl" (the `pare ppl` of each `pare finetune --steps N` output): perplexity
//     against fine-tuning steps, a line per mode, the dense model's perplexity dashed.
using System.Globalization;
using System.Text.Json;

return args switch
{
    ["tn", var json, var png, .. var rest] => TnPlot(json, png, rest.Length > 0 ? rest[0] : null),
    ["loss", var tsv, var png, .. var rest] => LossPlot(tsv, png, rest),
    ["needle", var json, var png, .. var rest] => NeedlePlot(json, png, rest.Length > 0 ? rest[0] : null),
    ["encoder-prune", var json, var png] => EncoderPrunePlot(json, png),
    ["encoder-tokens", var json, var png] => EncoderTokensPlot(json, png),
    ["context-pruning", var json, var png] => ContextPruningPlot(json, png),
    ["idcm", var json, var png] => IdcmPlot(json, png),
    ["recovery", var tsv, var png, "--dense", var dense, .. var rest] => RecoveryPlot(tsv, png, double.Parse(dense, CultureInfo.InvariantCulture), rest.Length > 1 ? rest[1] : null),
    _ => Usage(),
};

static int RecoveryPlot(string tsv, string png, double dense, string? title)
{
    var rows = File.ReadLines(tsv).Where(l => !l.StartsWith('#') && l.Trim().Length > 0).Select(l => l.Split('\t'))
        .Select(c => (Mode: c[0], Steps: double.Parse(c[1], CultureInfo.InvariantCulture), Ppl: double.Parse(c[2], CultureInfo.InvariantCulture))).ToArray();
    var plt = new ScottPlot.Plot();
    foreach (var g in rows.GroupBy(r => r.Mode))
    {
        var pts = g.OrderBy(r => r.Steps).ToArray();
        var sc = plt.Add.Scatter(pts.Select(r => r.Steps).ToArray(), pts.Select(r => r.Ppl).ToArray());
        sc.LegendText = g.Key;
        sc.LineWidth = 2;
        sc.MarkerSize = 6;
    }
    double maxX = rows.Max(r => r.Steps);
    var d = plt.Add.Scatter(new double[] { 0, Math.Max(1, maxX) }, new double[] { dense, dense });
    d.LegendText = "dense";
    d.LinePattern = ScottPlot.LinePattern.Dashed;
    return Save(plt, png, title ?? "Recovery fine-tuning of the pruned model", "fine-tuning steps", "test perplexity", ScottPlot.Alignment.UpperRight);
}

static int Usage()
{
    Console.Error.WriteLine("usage: Pare.Plots tn BENCH.json OUT.png [TITLE]\n       Pare.Plots loss LOSS.tsv OUT.png [TITLE] [--baseline PPL]\n       Pare.Plots needle NEEDLE.json OUT.png [TITLE]");
    return 2;
}

static int TnPlot(string jsonPath, string png, string? title)
{
    using var doc = JsonDocument.Parse(File.ReadAllText(jsonPath));
    var points = doc.RootElement.GetProperty("t_n").EnumerateArray()
        .Select(e => (N: e.GetProperty("n").GetDouble(), Ratio: e.GetProperty("ratio").GetDouble())).ToArray();
    var plt = new ScottPlot.Plot();
    var measured = plt.Add.Scatter(points.Select(p => p.N).ToArray(), points.Select(p => p.Ratio).ToArray());
    measured.LegendText = "measured T(n) / T(1)";
    var ideal = plt.Add.Scatter(new double[] { 1, points[^1].N }, new double[] { 1, 1 });
    ideal.LegendText = "flat (weights-bound, as on a GPU)";
    ideal.LinePattern = ScottPlot.LinePattern.Dashed;
    return Save(plt, png, title ?? "Cost of one forward pass over n tokens", "tokens per forward pass (n)", "T(n) / T(1)", ScottPlot.Alignment.UpperLeft);
}

static int ContextPruningPlot(string jsonPath, string png)
{
    using var doc = JsonDocument.Parse(File.ReadAllText(jsonPath));
    var rows = doc.RootElement.GetProperty("Recall").EnumerateArray()
        .Select(e => (Method: e.GetProperty("Method").GetString()!, Kept: e.GetProperty("TokensKept").GetDouble(), Recall: e.GetProperty("Recall").GetDouble())).ToArray();
    var plt = new ScottPlot.Plot();
    foreach (var method in rows.Select(r => r.Method).Distinct())
    {
        var pts = rows.Where(r => r.Method == method).OrderBy(r => r.Kept).ToArray();
        var line = plt.Add.Scatter(pts.Select(p => p.Kept * 100).ToArray(), pts.Select(p => p.Recall).ToArray());
        line.LegendText = method;
        line.LineWidth = 2;
    }
    int q = doc.RootElement.GetProperty("Questions").GetInt32();
    return Save(plt, png, $"Cloze set (a), {q} questions: answer sentence kept vs context kept", "context tokens kept (%)", "answer-sentence recall", ScottPlot.Alignment.LowerRight);
}

static int IdcmPlot(string jsonPath, string png)
{
    using var doc = JsonDocument.Parse(File.ReadAllText(jsonPath));
    var root = doc.RootElement;
    var rows = root.GetProperty("Points").EnumerateArray()
        .Select(e => (Stage: e.GetProperty("Selection").GetString()!, N: e.GetProperty("Rescore").GetInt32(), Mrr: e.GetProperty("Mrr").GetDouble(), Ms: e.GetProperty("MsPerQuery").GetDouble())).ToArray();
    double fullMrr = root.GetProperty("FullMrr").GetDouble(), fullMs = root.GetProperty("FullMs").GetDouble(), tol = root.GetProperty("Tolerance").GetDouble();
    var plt = new ScottPlot.Plot();
    foreach (var g in rows.GroupBy(r => r.Stage))
    {
        var pts = g.OrderBy(r => r.N).ToArray();
        var line = plt.Add.Scatter(pts.Select(p => p.Ms).ToArray(), pts.Select(p => p.Mrr).ToArray());
        line.LegendText = g.Key + " -> full on top 1.." + pts[^1].N;
        line.LineWidth = 2;
        line.MarkerSize = 6;
    }
    var full = plt.Add.Scatter(new[] { fullMs }, new[] { fullMrr });
    full.LegendText = "full encoder on all candidates";
    full.MarkerSize = 12;
    full.MarkerShape = ScottPlot.MarkerShape.FilledSquare;
    double maxMs = Math.Max(fullMs, rows.Max(r => r.Ms));
    var band = plt.Add.Scatter(new[] { 0, maxMs }, new[] { fullMrr - tol, fullMrr - tol });
    band.LegendText = $"full MRR - {tol}";
    band.LinePattern = ScottPlot.LinePattern.Dashed;
    band.MarkerSize = 0;
    int q = root.GetProperty("Questions").GetInt32();
    return Save(plt, png, $"IDCM on the cloze set, {q} questions: MRR vs latency (points: candidates rescored)", "ms per query (wall, shared machine)", "MRR of the gold passage", ScottPlot.Alignment.LowerRight);
}

static int Save(ScottPlot.Plot plt, string png, string title, string xLabel, string yLabel, ScottPlot.Alignment legend)
{
    plt.Title(title);
    plt.XLabel(xLabel);
    plt.YLabel(yLabel);
    plt.ShowLegend(legend);
    plt.SavePng(png, 800, 500);
    Console.WriteLine($"wrote {png}");
    return 0;
}

static int LossPlot(string tsv, string png, string[] rest)
{
    string? title = rest.FirstOrDefault(a => !a.StartsWith("--", StringComparison.Ordinal) && !double.TryParse(a, CultureInfo.InvariantCulture, out _));
    int b = Array.IndexOf(rest, "--baseline");
    double? baseline = b >= 0 && b + 1 < rest.Length ? double.Parse(rest[b + 1], CultureInfo.InvariantCulture) : null;
    // Columns: kind, step, loss, lr, grad_norm (kind = train | valid).
    var rows = File.ReadLines(tsv).Skip(1).Select(l => l.Split('\t')).Where(c => c.Length >= 3)
        .Select(c => (Kind: c[0], Step: double.Parse(c[1], CultureInfo.InvariantCulture), Loss: double.Parse(c[2], CultureInfo.InvariantCulture))).ToArray();
    var train = rows.Where(r => r.Kind == "train").ToArray();
    var valid = rows.Where(r => r.Kind == "valid").ToArray();
    var plt = new ScottPlot.Plot();
    var raw = plt.Add.ScatterLine(train.Select(r => r.Step).ToArray(), train.Select(r => r.Loss).ToArray());
    raw.LegendText = "training loss (per step)";
    raw.Color = ScottPlot.Colors.LightSteelBlue;
    // Mean of the last 25 steps (fewer at the start): no lag from a starting value, unlike an exponential average.
    var smooth = train.Select((r, i) => train[Math.Max(0, i - 24)..(i + 1)].Average(x => x.Loss)).ToArray();
    var sm = plt.Add.ScatterLine(train.Select(r => r.Step).ToArray(), smooth);
    sm.LegendText = "training loss (mean of 25 steps)";
    sm.Color = ScottPlot.Colors.SteelBlue;
    sm.LineWidth = 2;
    if (valid.Length > 0)
    {
        var v = plt.Add.Scatter(valid.Select(r => r.Step).ToArray(), valid.Select(r => r.Loss).ToArray());
        v.LegendText = "validation loss";
        v.Color = ScottPlot.Colors.OrangeRed;
        v.LineWidth = 2;
        v.MarkerSize = 6;
    }
    if (baseline is double ppl)
    {
        var line = plt.Add.HorizontalLine(Math.Log(ppl));
        line.LegendText = $"3-gram Kneser-Ney baseline, test (ln {ppl:F1})";
        line.LinePattern = ScottPlot.LinePattern.Dashed;
        line.Color = ScottPlot.Colors.Gray;
        var target = plt.Add.HorizontalLine(Math.Log(0.75 * ppl));
        target.LegendText = $"25% below the baseline (ln {0.75 * ppl:F1})";
        target.LinePattern = ScottPlot.LinePattern.Dotted;
        target.Color = ScottPlot.Colors.Black;
    }
    plt.Axes.SetLimitsY(Math.Min(train.Min(r => r.Loss), valid.Length > 0 ? valid.Min(r => r.Loss) : double.MaxValue) - 0.2,
        Math.Min(train.Max(r => r.Loss), (baseline is double p2 ? Math.Log(p2) : 0) + 3.5) + 0.2);
    return Save(plt, png, title ?? "Training and validation loss", "step", "cross-entropy (nats per token)", ScottPlot.Alignment.UpperRight);
}

static int NeedlePlot(string jsonPath, string png, string? title)
{
    using var doc = JsonDocument.Parse(File.ReadAllText(jsonPath));
    var root = doc.RootElement;
    var lengths = root.GetProperty("lengths").EnumerateArray().Select(e => e.GetInt32()).ToArray();
    var depths = root.GetProperty("depths").EnumerateArray().Select(e => e.GetDouble()).ToArray();
    var acc = root.GetProperty("cells").EnumerateArray().ToDictionary(
        c => (c.GetProperty("length").GetInt32(), c.GetProperty("depth").GetDouble()), c => c.GetProperty("accuracy").GetDouble());
    var plt = new ScottPlot.Plot();
    var cmap = new ScottPlot.Colormaps.Viridis();
    // One square per (length, depth): x = length index, y = depth index (depth 0 at the top, as in needle-in-a-haystack plots).
    for (int i = 0; i < lengths.Length; i++)
        for (int j = 0; j < depths.Length; j++)
        {
            double a = acc[(lengths[i], depths[j])];
            double y = depths.Length - 1 - j;
            var r = plt.Add.Rectangle(i - 0.5, i + 0.5, y - 0.5, y + 0.5);
            r.FillColor = cmap.GetColor(a);
            r.LineWidth = 0;
            var t = plt.Add.Text($"{a * 100:F0}%", i, y);
            t.LabelAlignment = ScottPlot.Alignment.MiddleCenter;
            t.LabelFontSize = 14;
            t.LabelFontColor = a > 0.6 ? ScottPlot.Colors.Black : ScottPlot.Colors.White;
        }
    plt.Axes.Bottom.TickGenerator = new ScottPlot.TickGenerators.NumericManual(
        [.. Enumerable.Range(0, lengths.Length).Select(i => (double)i)], [.. lengths.Select(l => l.ToString(CultureInfo.InvariantCulture))]);
    plt.Axes.Left.TickGenerator = new ScottPlot.TickGenerators.NumericManual(
        [.. Enumerable.Range(0, depths.Length).Select(j => (double)(depths.Length - 1 - j))], [.. depths.Select(d => d.ToString("0.##", CultureInfo.InvariantCulture))]);
    plt.Axes.SetLimits(-0.5, lengths.Length - 0.5, -0.5, depths.Length - 0.5);
    string task = root.GetProperty("task").GetString()!;
    plt.Title(title ?? $"{task}: exact-match accuracy ({root.GetProperty("trials").GetInt32()} trials per cell), overall {root.GetProperty("accuracy").GetDouble() * 100:F1}%");
    plt.XLabel("prompt length (tokens)");
    plt.YLabel("needle depth");
    plt.SavePng(png, Math.Max(640, 160 + 90 * lengths.Length), 140 + 60 * depths.Length);
    Console.WriteLine($"wrote {png}");
    return 0;
}
static int EncoderPrunePlot(string jsonPath, string png)
{
    using var doc = JsonDocument.Parse(File.ReadAllText(jsonPath));
    var rows = doc.RootElement.GetProperty("rows").EnumerateArray()
        .Select(e => (Method: e.GetProperty("method").GetString()!, Pattern: e.GetProperty("pattern").GetString()!,
            Sparsity: e.GetProperty("sparsity").GetDouble(), R10: e.GetProperty("recall_at_10").GetDouble())).ToArray();
    var plt = new ScottPlot.Plot();
    double dense = rows.First(r => r.Method == "dense").R10;
    foreach (var method in rows.Select(r => r.Method).Where(m => m != "dense").Distinct())
    {
        var pts = rows.Where(r => r.Method == method && !r.Pattern.Contains(':')).OrderBy(r => r.Sparsity).ToArray();
        var line = plt.Add.Scatter(pts.Select(p => p.Sparsity).Prepend(0).ToArray(), pts.Select(p => p.R10).Prepend(dense).ToArray());
        line.LegendText = method + " (unstructured)";
        line.LineWidth = 2;
        var nm = rows.Where(r => r.Method == method && r.Pattern.Contains(':')).ToArray();
        if (nm.Length > 0)
        {
            var m = plt.Add.Scatter(nm.Select(p => p.Sparsity).ToArray(), nm.Select(p => p.R10).ToArray());
            m.LegendText = method + " " + nm[0].Pattern;
            m.Color = line.Color;
            m.LineWidth = 0;
            m.MarkerShape = ScottPlot.MarkerShape.OpenSquare;
            m.MarkerSize = 10;
        }
    }
    var d = plt.Add.HorizontalLine(dense);
    d.LegendText = "dense";
    d.LinePattern = ScottPlot.LinePattern.Dashed;
    return Save(plt, png, "all-MiniLM-L6-v2 pruned: retrieval on the test split", "sparsity of the linear layers", "recall@10", ScottPlot.Alignment.LowerLeft);
}


static int EncoderTokensPlot(string jsonPath, string png)
{
    using var doc = JsonDocument.Parse(File.ReadAllText(jsonPath));
    var rows = doc.RootElement.GetProperty("rows").EnumerateArray()
        .Select(e => (Method: e.GetProperty("method").GetString()!, Keep: e.GetProperty("keep").GetDouble(),
            R10: e.GetProperty("recall_at_10").GetDouble(), Cos: e.GetProperty("cosine_to_dense").GetDouble())).ToArray();
    var dense = rows.First(r => r.Method == "dense");
    var plt = new ScottPlot.Plot();
    var palette = new ScottPlot.Palettes.Category10();
    int i = 0;
    foreach (var method in rows.Select(r => r.Method).Where(m => m != "dense").Distinct())
    {
        var pts = rows.Where(r => r.Method == method).OrderByDescending(r => r.Keep).ToArray();
        double[] xs = pts.Select(p => p.Keep).Prepend(1.0).ToArray();
        var color = palette.GetColor(i++);
        var r10 = plt.Add.Scatter(xs, pts.Select(p => p.R10).Prepend(dense.R10).ToArray());
        r10.LegendText = method + " recall@10";
        r10.LineWidth = 2;
        r10.Color = color;
        var cos = plt.Add.Scatter(xs, pts.Select(p => p.Cos).Prepend(1.0).ToArray());
        cos.LegendText = method + " cosine to dense";
        cos.LinePattern = ScottPlot.LinePattern.Dashed;
        cos.Color = color;
    }
    return Save(plt, png, "all-MiniLM-L6-v2: token pruning after block " + doc.RootElement.GetProperty("layer").GetInt32(),
        "fraction of tokens kept (besides [CLS]/[SEP])", "recall@10 (solid), cosine to dense (dashed)", ScottPlot.Alignment.LowerRight);
}
