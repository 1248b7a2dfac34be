using System.Runtime.InteropServices;
using BenchmarkDotNet.Attributes;
using BenchmarkDotNet.Columns;
using BenchmarkDotNet.Configs;
using BenchmarkDotNet.Reports;
using BenchmarkDotNet.Running;
using Pare.Kernels;
using Pare.Tensors;

namespace Pare.Benchmarks;

/// <summary>A decode-sized weight (ffn_down of a ~1B model: 2048 x 5632) in each format, random non-repeating data.</summary>
public sealed unsafe class BenchMatrix : IDisposable
{
    public const int Rows = 2048, Cols = 5632;

    public BenchMatrix(GgmlType type, int seed = 1, double scale = 0.1)
    {
        var rng = new Random(seed);
        var values = new float[(long)Rows * Cols];
        for (int i = 0; i < values.Length; i++) values[i] = (float)((rng.NextDouble() - 0.5) * scale);
        // Quantize row by row (K-quant reference quantizers are slow on 11M values at once only in memory).
        long rowBytes = GgmlTypeInfo.RowBytes(type, Cols);
        Bytes = rowBytes * Rows;
        _data = (byte*)NativeMemory.AlignedAlloc((nuint)Bytes, 64);
        for (int r = 0; r < Rows; r++)
        {
            var q = Quantizer.Quantize(type, values.AsSpan(r * Cols, Cols));
            q.CopyTo(new Span<byte>(_data + r * rowBytes, (int)rowBytes));
        }
        Matrix = new WeightMatrix($"bench_{type}", type, Rows, Cols, (nint)_data, Bytes);
        X = new float[Cols];
        for (int i = 0; i < Cols; i++) X[i] = (float)(rng.NextDouble() - 0.5);
    }

    readonly byte* _data;
    public WeightMatrix Matrix { get; }
    public long Bytes { get; }
    public float[] X { get; }

    public void Dispose() => NativeMemory.AlignedFree(_data);
}

[Config(typeof(Config))]
public class MatVecBenchmarks
{
    sealed class Config : ManualConfig
    {
        public Config() => AddColumn(new GBPerSecondColumn());
    }

    /// <summary>All formats, or those listed in PARE_BENCH_TYPES (e.g. "Q8_0,Q4_K") for a quick run.</summary>
    public static IEnumerable<GgmlType> Types() =>
        Environment.GetEnvironmentVariable("PARE_BENCH_TYPES") is { Length: > 0 } list
            ? list.Split(',').Select(Enum.Parse<GgmlType>)
            : [GgmlType.F32, GgmlType.F16, GgmlType.BF16, GgmlType.Q8_0, GgmlType.Q4_0, GgmlType.Q4_K, GgmlType.Q6_K];

    [ParamsSource(nameof(Types))]
    public GgmlType Type { get; set; }

    [Params(1, 2)]
    public int Threads { get; set; }

    BenchMatrix? _m;
    float[] _y = new float[BenchMatrix.Rows];

    [GlobalSetup]
    public void Setup() => _m = new BenchMatrix(Type);

    [GlobalCleanup]
    public void Cleanup() => _m?.Dispose();

    [Benchmark]
    public void MatVec() => MatMul.MatVec(_m!.Matrix, _m.X, _y, Threads);
}

/// <summary>Weight bytes read per call divided by the mean time.</summary>
public sealed class GBPerSecondColumn : IColumn
{
    public string Id => nameof(GBPerSecondColumn);
    public string ColumnName => "GB/s";
    public bool AlwaysShow => true;
    public ColumnCategory Category => ColumnCategory.Custom;
    public int PriorityInCategory => 0;
    public bool IsNumeric => true;
    public UnitType UnitType => UnitType.Dimensionless;
    public string Legend => "weight bytes streamed per second (1e9 bytes)";
    public bool IsAvailable(Summary summary) => true;
    public bool IsDefault(Summary summary, BenchmarkDotNet.Running.BenchmarkCase benchmarkCase) => false;
    public string GetValue(Summary summary, BenchmarkCase benchmarkCase) => GetValue(summary, benchmarkCase, SummaryStyle.Default);

    public string GetValue(Summary summary, BenchmarkCase benchmarkCase, SummaryStyle style)
    {
        var stats = summary[benchmarkCase]?.ResultStatistics;
        if (stats is null || benchmarkCase.Parameters["Type"] is not GgmlType type) return "-";
        double bytes = GgmlTypeInfo.RowBytes(type, BenchMatrix.Cols) * (double)BenchMatrix.Rows;
        return (bytes / stats.Mean).ToString("F1", System.Globalization.CultureInfo.InvariantCulture);
    }
}
