// Figures for docs/, drawn from the JSON the pare commands print:
//   dotnet run -c Release --project benchmarks/Pare.Plots -- tn BENCH.json OUT.png [TITLE]
//     BENCH.json = the output of `pare bench MODEL --tree-costs --json` (or `pare bench-spec --json`): plots T(n)/T(1).
using System.Text.Json;

if (args.Length < 3 || args[0] != "tn")
{
    Console.Error.WriteLine("usage: Pare.Plots tn BENCH.json OUT.png [TITLE]");
    return 2;
}
using var doc = JsonDocument.Parse(File.ReadAllText(args[1]));
var points = doc.RootElement.GetProperty("t_n").EnumerateArray()
    .Select(e => (N: e.GetProperty("n").GetDouble(), Ratio: e.GetProperty("ratio").GetDouble())).ToArray();
var plt = new ScottPlot.Plot();
var measured = plt.Add.Scatter(points.Select(p => p.N).ToArray(), points.Select(p => p.Ratio).ToArray());
measured.LegendText = "measured T(n) / T(1)";
var ideal = plt.Add.Scatter(new double[] { 1, points[^1].N }, new double[] { 1, 1 });
ideal.LegendText = "flat (weights-bound, as on a GPU)";
ideal.LinePattern = ScottPlot.LinePattern.Dashed;
plt.Title(args.Length > 3 ? args[3] : "Cost of one forward pass over n tokens");
plt.XLabel("tokens per forward pass (n)");
plt.YLabel("T(n) / T(1)");
plt.ShowLegend(ScottPlot.Alignment.UpperLeft);
plt.SavePng(args[2], 800, 500);
Console.WriteLine($"wrote {args[2]}");
return 0;
