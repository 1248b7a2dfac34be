using Pare.Data;
using Pare.Models;
using Pare.Pruning;
using Pare.Tests.TestSupport;
using Xunit.Abstractions;

namespace Pare.Tests.Pruning;

/// <summary>
/// The three methods on the shipped pare-ref, calibrated on its own training split, compared matrix by matrix on the
/// reconstruction error over the calibration inputs (the acceptance point of the pruning issue; the full perplexity
/// sweep is `Pare.PruneBench sweep`). SparseGPT, which minimises exactly this error, is best on every matrix. Wanda beats magnitude in
/// total and on most matrices, not all: its score |W| x ||x_j|| assumes uncorrelated inputs and compares within output
/// rows, magnitude's threshold is per matrix, and on some matrices (the final pare-ref at 50%: 7 of 56, mostly block 0's
/// q/k/v, several within 1%; at 2:4 at most 5) magnitude's choice reconstructs as well or better. The test holds what was
/// measured: SparseGPT lowest everywhere, Wanda below magnitude on at least three quarters of the matrices and in total.
/// 16 windows of 256 tokens keep it within CI time.
/// </summary>
public class ReferenceModelPruningTests(ITestOutputHelper output)
{
    [Theory]
    [InlineData("0.5")]
    [InlineData("2:4")]
    public void Reconstruction_error_orders_SparseGPT_then_Wanda_then_magnitude_on_every_layer(string setting)
    {
        string model = ReferenceModels.Require(ReferenceModels.PareRef);
        var corpus = CorpusFetcher.Fetch(new FetchOptions { CacheDir = TestCorpus.CacheDir });
        var pattern = setting.Contains(':') ? SparsityPattern.Parse(setting, 0) : SparsityPattern.Unstructured(double.Parse(setting, System.Globalization.CultureInfo.InvariantCulture));
        string dir = Directory.CreateTempSubdirectory("pare-refprune-").FullName;
        try
        {
            var errors = new Dictionary<PruneMethod, Dictionary<string, double>>();
            foreach (var method in new[] { PruneMethod.Magnitude, PruneMethod.Wanda, PruneMethod.SparseGpt })
            {
                var o = new PruneOptions { Method = method, Pattern = pattern, Samples = 16, SeqLen = 256, Seed = 0 };
                var r = Pruner.Run(model, Path.Combine(dir, $"{method}.gguf"), o, new CalibrationSource.TextFile(corpus.TrainPath));
                errors[method] = r.Layers.ToDictionary(l => l.Tensor, l => l.RelativeError!.Value);
            }
            var tensors = errors[PruneMethod.Magnitude].Keys.Order().ToList();
            Assert.Equal(8 * 7, tensors.Count); // q, k, v, o, gate, up, down in each of the 8 blocks
            int wandaWins = 0;
            foreach (var t in tensors)
            {
                double mag = errors[PruneMethod.Magnitude][t], wanda = errors[PruneMethod.Wanda][t], gpt = errors[PruneMethod.SparseGpt][t];
                output.WriteLine($"{t}: magnitude {mag:F4}, Wanda {wanda:F4}, SparseGPT {gpt:F4}{(wanda < mag ? "" : "  (Wanda >= magnitude)")}");
                Assert.True(gpt < wanda && gpt < mag, $"{setting} {t}: SparseGPT {gpt:F4}, Wanda {wanda:F4}, magnitude {mag:F4}");
                if (wanda < mag) wandaWins++;
            }
            output.WriteLine($"Wanda below magnitude on {wandaWins} of {tensors.Count} matrices");
            Assert.True(wandaWins >= 0.75 * tensors.Count, $"{setting}: Wanda below magnitude on only {wandaWins} of {tensors.Count} matrices");
            Assert.True(tensors.Sum(t => errors[PruneMethod.Wanda][t]) < tensors.Sum(t => errors[PruneMethod.Magnitude][t]));
        }
        finally { Directory.Delete(dir, true); }
    }
}
