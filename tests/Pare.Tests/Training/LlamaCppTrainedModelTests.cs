using Pare.Evaluation;
using Pare.Models;
using Pare.Tensors;
using Pare.Tests.TestSupport;
using Pare.Tests.Tokenizers;
using Pare.Tokenizers;
using Pare.Training;

namespace Pare.Tests.Training;

/// <summary>A trained, exported model in llama.cpp: it loads, tokenizes like Pare, and gives the same perplexity.</summary>
public class LlamaCppTrainedModelTests
{
    [Theory]
    [InlineData("F32")]
    [InlineData("F16")]
    public void Llama_cpp_loads_the_export_tokenizes_alike_and_agrees_on_perplexity(string type)
    {
        var spec = TrainedVocabs.Gpt2;
        var tok = new Gpt2BpeTokenizer(spec);
        var ids = tok.Encode(TrainedVocabs.Corpus, addSpecial: false);
        string dir = Directory.CreateTempSubdirectory("pare-llamacpp-").FullName;
        var cfg = new TrainConfig
        {
            Name = "tiny-oracle", OutDir = dir, Seed = 5, Steps = 4, BatchSize = 2, MicroBatch = 2, SeqLen = 64, WarmupSteps = 1, EvalEvery = 0,
            CheckpointEvery = 0, Threads = 2, LearningRate = 3e-3f, InitStd = 0.05f, ExportType = type,
            Model = new ModelShape { Dim = 64, Layers = 2, Heads = 4, KvHeads = 2, FfnDim = 96, ContextLength = 64 },
        };
        var trainer = new Trainer(cfg, spec, ids, ids[..2000]);
        trainer.Run(4);
        string path = Path.Combine(dir, $"tiny-{type}.gguf");
        trainer.Export(path);

        string text = TokenizerCorpus.MultiParagraph;
        using var m = LlamaModel.Load(path);
        using var cpp = new LlamaCppOracle(path, contextSize: 64);
        var pareIds = m.Tokenizer!.Encode(text, addSpecial: true);
        Assert.Equal(cpp.Tokenize(text, addBos: false), pareIds);

        // The same protocol over llama.cpp's logits: windows of 64, predicting tokens 1..63 of each.
        var pare = Perplexity.Evaluate(m, pareIds, new PerplexityOptions { Context = 64, Threads = 2 });
        double nll = 0;
        long n = 0;
        for (int start = 0; start < pareIds.Length; start += 64)
        {
            var window = pareIds[start..Math.Min(start + 64, pareIds.Length)];
            if (window.Length < 2) break;
            var logits = cpp.Logits(window);
            for (int p = 1; p < window.Length; p++) { nll += Perplexity.NegLogSoftmax(logits[p - 1], window[p]); n++; }
        }
        double cppPpl = Math.Exp(nll / n);
        Assert.Equal(n, pare.Tokens);
        Assert.True(Math.Abs(pare.Ppl / cppPpl - 1) < 0.005, $"pare ppl {pare.Ppl}, llama.cpp {cppPpl}");
    }
}
