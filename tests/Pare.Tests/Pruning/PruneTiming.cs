using System.Diagnostics;
using Pare.Pruning;
using Pare.Tensors;
using Pare.Tests.TestSupport;
using Xunit.Abstractions;

namespace Pare.Tests.Pruning;

/// <summary>
/// Pruning time of each method on a random model shaped like pare-ref (dim 256, 8 layers, 8/4 heads, ffn 704,
/// vocab 8192, context 512, tied head) with the papers' calibration size (128 windows of 512 tokens).
/// Opt-in: PARE_PRUNE_TIMING=1.
/// </summary>
public class PruneTiming(ITestOutputHelper output)
{
    [Fact]
    public void Methods_on_a_pare_ref_shaped_model()
    {
        if (Environment.GetEnvironmentVariable("PARE_PRUNE_TIMING") == null) { output.WriteLine("not run: set PARE_PRUNE_TIMING=1"); return; }
        int samples = int.TryParse(Environment.GetEnvironmentVariable("PARE_PRUNE_TIMING_SAMPLES"), out var s) ? s : 128;
        var cfg = TestModels.Cfg(dim: 256, layers: 8, heads: 8, kvHeads: 4, ffn: 704, tied: true, vocab: 8192, ctx: 512);
        string model = TestModels.Get("pare-ref-shaped", cfg, GgmlType.F32);
        string dir = PruneTestSupport.NewDir();
        foreach (var m in new[] { PruneMethod.Magnitude, PruneMethod.Wanda, PruneMethod.SparseGpt })
        {
            var o = new PruneOptions { Method = m, Pattern = SparsityPattern.Unstructured(0.5), Samples = samples, Seed = 0, Threads = 2 };
            var sw = Stopwatch.StartNew();
            var r = Pruner.Run(model, Path.Combine(dir, $"{m}.gguf"), o, new CalibrationSource.RandomTokens());
            output.WriteLine($"{m}: {sw.Elapsed.TotalSeconds:F1} s for {samples} x {r.SeqLen} calibration tokens (8 blocks, 56 matrices); mean rel. error {r.Layers.Average(l => l.RelativeError ?? 0):F4}");
        }
        Directory.Delete(dir, true);
    }
}
