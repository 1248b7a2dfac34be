using System.Diagnostics;
using System.Globalization;
using BenchmarkDotNet.Running;
using Pare.Benchmarks;
using Pare.Kernels;
using Pare.Tensors;

// `quick [type...]`: a Stopwatch loop per format and thread count, for iterating on kernels in seconds.
// `quick F16:1e-4` scales the weights (here: mostly F16 subnormals, to see denormal penalties).
// Anything else goes to BenchmarkDotNet, e.g. `--filter *MatVec* --job short` or `--filter *MatMul* --job short`.
if (args.Length > 0 && args[0] == "draft-cost")
{
    DraftCost.Run(args[1..]);
    return;
}
if (args.Length > 0 && args[0] == "quick")
{
    var types = args.Length > 1
        ? args.Skip(1).ToArray()
        : ["F32", "F16", "BF16", "Q8_0", "Q4_0", "Q4_K", "Q6_K"];
    foreach (var spec in types)
    {
        var parts = spec.Split(':');
        var type = Enum.Parse<GgmlType>(parts[0]);
        using var m = new BenchMatrix(type, scale: parts.Length > 1 ? double.Parse(parts[1], CultureInfo.InvariantCulture) : 0.1);
        var y = new float[BenchMatrix.Rows];
        var line = $"{spec,-9} {m.Bytes / 1e6,7:F1} MB";
        foreach (int threads in new[] { 1, 2 })
        {
            for (int i = 0; i < 20; i++) MatMul.MatVec(m.Matrix, m.X, y, threads);
            double best = double.MaxValue, bestCpu = double.MaxValue;
            var process = Process.GetCurrentProcess();
            for (int rep = 0; rep < 5; rep++)
            {
                const int iters = 40;
                process.Refresh();
                var c0 = process.TotalProcessorTime;
                long t0 = Stopwatch.GetTimestamp();
                for (int i = 0; i < iters; i++) MatMul.MatVec(m.Matrix, m.X, y, threads);
                best = Math.Min(best, Stopwatch.GetElapsedTime(t0).TotalSeconds / iters);
                process.Refresh();
                bestCpu = Math.Min(bestCpu, (process.TotalProcessorTime - c0).TotalSeconds / iters);
            }
            // CPU time per call is robust to other processes taking turns on the cores (this machine is shared).
            line += string.Create(CultureInfo.InvariantCulture,
                $"   t={threads}: {best * 1e3,6:F3} ms {m.Bytes / best / 1e9,5:F1} GB/s (cpu {bestCpu * 1e3,6:F3} ms)");
        }
        Console.WriteLine(line);
    }
    return;
}
// `quick-mm [type...]`: the same for prefill-sized products (128 tokens), in GFLOP/s.
if (args.Length > 0 && args[0] == "quick-mm")
{
    var types = args.Length > 1 ? args.Skip(1).ToArray() : ["F32", "F16", "BF16", "Q8_0", "Q4_0", "Q4_K", "Q6_K"];
    const int n = MatMulBenchmarks.Tokens;
    var rng = new Random(2);
    var x = new float[n * BenchMatrix.Cols];
    for (int i = 0; i < x.Length; i++) x[i] = (float)(rng.NextDouble() - 0.5);
    var y = new float[n * BenchMatrix.Rows];
    double flops = 2.0 * BenchMatrix.Rows * BenchMatrix.Cols * n;
    foreach (var spec in types)
    {
        using var m = new BenchMatrix(Enum.Parse<GgmlType>(spec));
        var line = $"{spec,-9}";
        foreach (int threads in new[] { 1, 2 })
        {
            MatMul.MatMulRows(m.Matrix, x, n, y, threads);
            double best = double.MaxValue, bestCpu = double.MaxValue;
            var process = Process.GetCurrentProcess();
            for (int rep = 0; rep < 5; rep++)
            {
                process.Refresh();
                var c0 = process.TotalProcessorTime;
                long t0 = Stopwatch.GetTimestamp();
                MatMul.MatMulRows(m.Matrix, x, n, y, threads);
                best = Math.Min(best, Stopwatch.GetElapsedTime(t0).TotalSeconds);
                process.Refresh();
                bestCpu = Math.Min(bestCpu, (process.TotalProcessorTime - c0).TotalSeconds);
            }
            // CPU time per call is robust to other processes taking turns on the cores (this machine is shared).
            line += string.Create(CultureInfo.InvariantCulture,
                $"   t={threads}: {best * 1e3,7:F1} ms {flops / best / 1e9,6:F1} GFLOP/s (cpu {bestCpu * 1e3,7:F1} ms)");
        }
        Console.WriteLine(line);
    }
    return;
}
BenchmarkSwitcher.FromAssembly(typeof(MatVecBenchmarks).Assembly).Run(args);
