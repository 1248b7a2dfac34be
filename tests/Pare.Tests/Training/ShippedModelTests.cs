using Pare.Data;
using Pare.Evaluation;
using Pare.Models;
using Pare.Tests.TestSupport;

namespace Pare.Tests.Training;

/// <summary>
/// The reference models committed under models/: llama.cpp loads each, tokenizes the real test split to Pare's ids, and
/// agrees with <c>pare ppl</c> on its perplexity within 0.5% (the first windows of the test split; the whole split with
/// PARE_SHIPPED_PPL_FULL=1, which docs/reference-models.md reports); <c>pare demo</c> runs on them.
/// </summary>
public class ShippedModelTests
{
    static string ModelsDir
    {
        get
        {
            for (var d = new DirectoryInfo(AppContext.BaseDirectory); d != null; d = d.Parent)
                if (File.Exists(Path.Combine(d.FullName, "Pare.slnx"))) return Path.Combine(d.FullName, "models");
            throw new InvalidOperationException("repository root (Pare.slnx) not found above " + AppContext.BaseDirectory);
        }
    }

    public static TheoryData<string> Shipped => [.. Directory.GetFiles(ModelsDir, "*.gguf").Select(f => Path.GetFileNameWithoutExtension(f)).Order()];

    static CorpusInfo Corpus => CorpusFetcher.Fetch(new FetchOptions { CacheDir = TestCorpus.CacheDir });

    [Fact]
    public void The_reference_models_ship_within_the_size_budget()
    {
        var files = Directory.GetFiles(ModelsDir, "*.gguf");
        Assert.Contains(files, f => Path.GetFileNameWithoutExtension(f) == ReferenceModels.PareRefDraft);
        Assert.True(files.Sum(f => new FileInfo(f).Length) <= 64L << 20, "all model files together must stay within 64 MiB");
        foreach (var f in files)
        {
            // Each carries the training config it came from (configs/NAME.json), and ReferenceModels finds it.
            string name = Path.GetFileNameWithoutExtension(f);
            using var g = Pare.Formats.Gguf.GgufFile.Open(f);
            string json = g.GetString("pare.training_config") ?? throw new Xunit.Sdk.XunitException($"{name}: no pare.training_config");
            var shipped = Pare.Training.TrainConfig.Parse(json);
            var config = Pare.Training.TrainConfig.Parse(File.ReadAllText(Path.Combine(ModelsDir, "..", "configs", name + ".json")));
            Assert.Equal(config.Name, shipped.Name);
            Assert.Equal(config.Model, shipped.Model);
            Assert.Equal(config.Steps, shipped.Steps);
            Assert.NotNull(ReferenceModels.Find(name));
        }
    }

    [Theory]
    [MemberData(nameof(Shipped))]
    public void Llama_cpp_loads_it_tokenizes_the_test_split_alike_and_agrees_on_perplexity(string name)
    {
        string path = Path.Combine(ModelsDir, name + ".gguf");
        string test = File.ReadAllText(Corpus.TestPath);
        using var m = LlamaModel.Load(path);
        int ctx = m.Config.ContextLength;
        using var cpp = new LlamaCppOracle(path, contextSize: ctx);
        var ids = m.Tokenizer!.Encode(test, addSpecial: true);
        Assert.Equal(cpp.Tokenize(test, addBos: false), ids);

        bool full = Environment.GetEnvironmentVariable("PARE_SHIPPED_PPL_FULL") == "1";
        var scored = full ? ids : ids[..(8 * ctx)];
        var pare = Perplexity.Evaluate(m, scored, new PerplexityOptions { Threads = 2 });
        double nll = 0;
        long n = 0;
        for (int start = 0; start < scored.Length; start += ctx)
        {
            var window = scored[start..Math.Min(start + ctx, scored.Length)];
            if (window.Length < 2) break;
            var logits = cpp.Logits(window);
            for (int p = 1; p < window.Length; p++) { nll += Perplexity.NegLogSoftmax(logits[p - 1], window[p]); n++; }
        }
        double cppPpl = Math.Exp(nll / n);
        Console.WriteLine($"{name}: {scored.Length} tokens{(full ? " (whole test split)" : "")}: pare ppl {pare.Ppl:F4}, llama.cpp {cppPpl:F4}, ratio {pare.Ppl / cppPpl:F6}");
        Assert.Equal(n, pare.Tokens);
        Assert.True(Math.Abs(pare.Ppl / cppPpl - 1) < 0.005, $"pare ppl {pare.Ppl}, llama.cpp {cppPpl}");
        // A trained model, not a random one: far below the uniform perplexity of the vocabulary.
        Assert.True(pare.Ppl < m.Config.VocabSize / 10.0, $"ppl {pare.Ppl} is not a trained model's");
    }

    [Fact]
    public void Demo_runs_on_the_shipped_model()
    {
        string dataDir = Path.GetDirectoryName(Corpus.Dir)!;
        var r = PareCli.Run("demo", "--json", "--data-dir", dataDir, "-n", "12", "--threads", "2");
        Assert.True(r.ExitCode == 0, r.Stderr);
        var j = r.Json;
        Assert.Contains("models", j.GetProperty("model").GetString());
        Assert.Equal(12, j.GetProperty("generated_tokens").GetInt32());
        // What the shipped pare-ref gives on the demo's slice (docs/reference-models.md, section 5: 99.08 on 4 windows of 512).
        Assert.Equal(4, j.GetProperty("ppl_windows").GetInt32());
        Assert.Equal(2044, j.GetProperty("ppl_tokens").GetInt32());
        double ppl = j.GetProperty("ppl").GetDouble();
        Assert.True(Math.Abs(ppl / 99.08 - 1) < 0.02, $"demo perplexity {ppl}, documented 99.08");
        Assert.False(string.IsNullOrWhiteSpace(j.GetProperty("reference").GetString()));
        Assert.StartsWith(j.GetProperty("prompt").GetString()![..20], File.ReadAllText(Corpus.TestPath)[20_000..30_000].Split("\n\n", 2)[1]);
    }
}
