using BenchmarkDotNet.Attributes;
using BenchmarkDotNet.Columns;
using BenchmarkDotNet.Configs;
using BenchmarkDotNet.Reports;
using BenchmarkDotNet.Running;
using Pare.Kernels;
using Pare.Tensors;

namespace Pare.Benchmarks;

/// <summary>Prefill-sized products: the 2048 x 5632 weight times 128 tokens, per format (GFLOP/s = 2 * rows * cols * tokens / time).</summary>
[Config(typeof(Config))]
public class MatMulBenchmarks
{
    public const int Tokens = 128;

    sealed class Config : ManualConfig
    {
        public Config() => AddColumn(new GFlopPerSecondColumn());
    }

    public static IEnumerable<GgmlType> Types() => MatVecBenchmarks.Types();

    [ParamsSource(nameof(Types))]
    public GgmlType Type { get; set; }

    [Params(1, 2)]
    public int Threads { get; set; }

    BenchMatrix? _m;
    float[] _x = [];
    float[] _y = new float[Tokens * BenchMatrix.Rows];

    [GlobalSetup]
    public void Setup()
    {
        _m = new BenchMatrix(Type);
        var rng = new Random(2);
        _x = new float[Tokens * BenchMatrix.Cols];
        for (int i = 0; i < _x.Length; i++) _x[i] = (float)(rng.NextDouble() - 0.5);
    }

    [GlobalCleanup]
    public void Cleanup() => _m?.Dispose();

    [Benchmark]
    public void MatMulRows() => MatMul.MatMulRows(_m!.Matrix, _x, Tokens, _y, Threads);
}

/// <summary>Multiply-adds times two per second (1e9).</summary>
public sealed class GFlopPerSecondColumn : IColumn
{
    public string Id => nameof(GFlopPerSecondColumn);
    public string ColumnName => "GFLOP/s";
    public bool AlwaysShow => true;
    public ColumnCategory Category => ColumnCategory.Custom;
    public int PriorityInCategory => 0;
    public bool IsNumeric => true;
    public UnitType UnitType => UnitType.Dimensionless;
    public string Legend => "2 * rows * cols * tokens / mean time (1e9 per second)";
    public bool IsAvailable(Summary summary) => true;
    public bool IsDefault(Summary summary, BenchmarkCase benchmarkCase) => false;
    public string GetValue(Summary summary, BenchmarkCase benchmarkCase) => GetValue(summary, benchmarkCase, SummaryStyle.Default);

    public string GetValue(Summary summary, BenchmarkCase benchmarkCase, SummaryStyle style)
    {
        var stats = summary[benchmarkCase]?.ResultStatistics;
        if (stats is null) return "-";
        double flops = 2.0 * BenchMatrix.Rows * BenchMatrix.Cols * MatMulBenchmarks.Tokens;
        return (flops / stats.Mean).ToString("F1", System.Globalization.CultureInfo.InvariantCulture);
    }
}
