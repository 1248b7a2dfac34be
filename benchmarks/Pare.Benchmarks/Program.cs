using System.Diagnostics;
using System.Globalization;
using BenchmarkDotNet.Running;
using Pare.Benchmarks;
using Pare.Kernels;
using Pare.Tensors;

// `quick [type...]`: a Stopwatch loop per format and thread count, for iterating on kernels in seconds.
// Anything else goes to BenchmarkDotNet, e.g. `--filter *MatVec* --job short`.
if (args.Length > 0 && args[0] == "quick")
{
    var types = args.Length > 1
        ? args.Skip(1).Select(Enum.Parse<GgmlType>).ToArray()
        : [GgmlType.F32, GgmlType.F16, GgmlType.BF16, GgmlType.Q8_0, GgmlType.Q4_0, GgmlType.Q4_K, GgmlType.Q6_K];
    foreach (var type in types)
    {
        using var m = new BenchMatrix(type);
        var y = new float[BenchMatrix.Rows];
        var line = $"{type,-5} {m.Bytes / 1e6,7:F1} MB";
        foreach (int threads in new[] { 1, 2 })
        {
            for (int i = 0; i < 20; i++) MatMul.MatVec(m.Matrix, m.X, y, threads);
            double best = double.MaxValue;
            for (int rep = 0; rep < 5; rep++)
            {
                const int iters = 40;
                long t0 = Stopwatch.GetTimestamp();
                for (int i = 0; i < iters; i++) MatMul.MatVec(m.Matrix, m.X, y, threads);
                best = Math.Min(best, Stopwatch.GetElapsedTime(t0).TotalSeconds / iters);
            }
            line += string.Create(CultureInfo.InvariantCulture, $"   t={threads}: {best * 1e3,6:F3} ms {m.Bytes / best / 1e9,6:F1} GB/s");
        }
        Console.WriteLine(line);
    }
    return;
}
BenchmarkSwitcher.FromAssembly(typeof(MatVecBenchmarks).Assembly).Run(args);
