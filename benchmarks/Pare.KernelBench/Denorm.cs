using System.Runtime.InteropServices;
using Pare.Kernels;
using Pare.Tensors;

/// <summary>
/// F16 decode speed against the share of subnormal halves (0%, 0.3%, 3%, 100%), a matrix in L2, one thread: shows whether
/// this CPU's float denormal operands cost anything (the F16 kernel skips its subnormal map where they do not: AMD).
/// </summary>
static unsafe class Denorm
{
    public static int Run(string[] args)
    {
        int rounds = args.Length > 1 && args[0] == "--rounds" ? int.Parse(args[1], System.Globalization.CultureInfo.InvariantCulture) : 5;
        const int cols = 2048, rows = 128;
        var rng = new Random(1);
        var frac = new[] { 0.0, 0.003, 0.03, 1.0 };
        var mats = frac.Select(f =>
        {
            var h = (ushort*)NativeMemory.AlignedAlloc((nuint)(rows * cols * 2), 64);
            for (int i = 0; i < rows * cols; i++)
            {
                // Subnormal halves lie in (5.96e-8, 6.10e-5); the others are normal weights up to 0.05.
                double v = rng.NextDouble() < f ? 1e-6 + rng.NextDouble() * 5e-5 : 1e-3 + rng.NextDouble() * 0.049;
                if (rng.Next(2) == 0) v = -v;
                h[i] = BitConverter.HalfToUInt16Bits((Half)v);
            }
            return new WeightMatrix($"f16_{f}", GgmlType.F16, rows, cols, (nint)h, rows * cols * 2L);
        }).ToArray();
        var x = new float[cols];
        for (int i = 0; i < cols; i++) x[i] = (float)(rng.NextDouble() - 0.5);
        var y = new float[rows];
        Console.WriteLine($"# F16 decode GB/s (thread CPU time) by share of subnormal halves, {rows} x {cols} in L2, load {File.ReadAllText("/proc/loadavg").Trim()}");
        Console.WriteLine($"Pare ISA paths: {MatMul.DescribeIsa()}");
        var t = frac.Select(_ => new List<double>()).ToArray();
        foreach (var m in mats) MatMul.MatVec(m, x, y, 1);
        for (int round = 0; round < rounds; round++)
            for (int b = 0; b < mats.Length; b++)
            {
                double t0 = ThreadCpu.Seconds();
                for (int rep = 0; rep < 400; rep++) MatMul.MatVec(mats[b], x, y, 1);
                t[b].Add(400.0 * rows * cols * 2 / (ThreadCpu.Seconds() - t0) / 1e9);
            }
        for (int b = 0; b < mats.Length; b++)
            Console.WriteLine($"subnormal halves {frac[b] * 100:G3}%: median {t[b].Order().ElementAt(t[b].Count / 2):F1} GB/s");
        return 0;
    }
}
