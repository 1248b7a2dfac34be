using Pare.Data;
using Pare.LongContext;
using Pare.Models;
using Pare.Tokenizers;
using Pare.Training;

namespace Pare.Tests.LongContext;

/// <summary>The trainer with the long-context mix: windows are drawn from the one sampler RNG, so a resumed run is bitwise the same.</summary>
public class MixTrainingTests
{
    [Fact]
    public void A_run_with_synthetic_windows_resumes_bitwise()
    {
        string model = ReferenceModels.Require(ReferenceModels.PareRef);
        var spec = TokenizerFiles.Load(model);
        var tok = new Gpt2BpeTokenizer(spec);
        var d = new DirectoryInfo(AppContext.BaseDirectory);
        while (!File.Exists(Path.Combine(d!.FullName, "README.md"))) d = d.Parent;
        var tokens = tok.Encode(File.ReadAllText(Path.Combine(d.FullName, "README.md")), addSpecial: false);
        TrainConfig Cfg(string dir) => new()
        {
            Name = "tiny-long",
            Model = new ModelShape { Dim = 16, Layers = 1, Heads = 2, KvHeads = 1, FfnDim = 24, ContextLength = 200 },
            OutDir = dir, Seed = 3, Steps = 4, BatchSize = 2, MicroBatch = 2, SeqLen = 200, WarmupSteps = 1, EvalEvery = 0,
            CheckpointEvery = 0, Threads = 1, LongContext = new LongContextMixOptions { Fraction = 0.7 },
        };
        var straight = new Trainer(Cfg(Directory.CreateTempSubdirectory("pare-mix-").FullName), spec, tokens, tokens);
        straight.Run(4);
        string dir = Directory.CreateTempSubdirectory("pare-mix-").FullName;
        new Trainer(Cfg(dir), spec, tokens, tokens).Run(2);
        var resumed = new Trainer(Cfg(dir), spec, tokens, tokens);
        resumed.Resume();
        resumed.Run(4);
        Assert.Equal(straight.History.Select(h => h.Loss), resumed.History.Select(h => h.Loss));
        Assert.Equal(straight.Parameters.Values, resumed.Parameters.Values);
        // The mix changes the data: the same run without it has other losses.
        var plain = new Trainer(Cfg(Directory.CreateTempSubdirectory("pare-mix-").FullName) with { LongContext = null }, spec, tokens, tokens);
        plain.Run(4);
        Assert.NotEqual(straight.History.Select(h => h.Loss), plain.History.Select(h => h.Loss));
    }
}
