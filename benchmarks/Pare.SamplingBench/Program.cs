using System.Diagnostics;
using System.Globalization;
using Pare.Generation;
using Pare.Models;
using Pare.Speculative;
using Pare.Tensors;

// Sampling overhead of the generation loop: decode tok/s with the default sampling (temperature 0.8, top-k 40,
// top-p 0.95, min-p 0.05) against greedy, through the same loops as `pare run` (--draft none: Generator;
// --draft auto: SpeculativeGenerator), interleaved runs, medians. Then the sampler alone per token on the model's own
// logits: fast sampler, the full-sort reference (the old algorithm), argmax.
//   dotnet run -c Release --project benchmarks/Pare.SamplingBench -- [--tokens 256] [--runs 5] [--threads 2] [MODEL.gguf ...]
// Without models: models/pare-ref.gguf and a synthetic 128k-vocabulary model written to .cache/bench/.
CultureInfo.DefaultThreadCurrentCulture = CultureInfo.InvariantCulture;
int tokens = 256, runs = 5, threads = 2;
var models = new List<string>();
for (int i = 0; i < args.Length; i++)
{
    switch (args[i])
    {
        case "--tokens": tokens = int.Parse(args[++i], CultureInfo.InvariantCulture); break;
        case "--runs": runs = int.Parse(args[++i], CultureInfo.InvariantCulture); break;
        case "--threads": threads = int.Parse(args[++i], CultureInfo.InvariantCulture); break;
        default: models.Add(args[i]); break;
    }
}
if (models.Count == 0) models.AddRange(["models/pare-ref.gguf", Synthetic128k()]);
Console.WriteLine($"tokens {tokens}, runs {runs} (median, interleaved), threads {threads}, {Environment.ProcessorCount} logical CPUs");

foreach (var path in models)
{
    using var m = LlamaModel.Load(path);
    int vocab = m.Config.VocabSize;
    int[] prompt = m.Tokenizer != null ? m.Tokenizer.Encode("Once upon a time, there was a little", addSpecial: true) : [1, 2, 3, 4, 5, 6, 7, 8];
    Console.WriteLine($"\n{Path.GetFileName(path)}: vocab {vocab}, {m.WeightBytesPerToken / 1e6:F1} MB of weights per token");
    var greedy = new GenerationOptions { MaxTokens = tokens, StopAtEos = false, Sampling = SamplingOptions.Greedy };
    var sampled = new GenerationOptions { MaxTokens = tokens, StopAtEos = false, Sampling = new SamplingOptions { Seed = 1 } };
    foreach (var draft in new[] { "none", "auto" })
    {
        var rates = new Dictionary<string, List<double>> { ["greedy"] = [], ["sampled"] = [] };
        var costs = draft == "none" ? null : CostModel.Measure(m.CreateSession(new SessionOptions { Threads = threads }), CostModel.DefaultSizes.Where(n => n <= 32));
        for (int run = -1; run < runs; run++) // run -1 warms up the JIT and the caches
            foreach (var (name, o) in new[] { ("greedy", greedy), ("sampled", sampled) })
            {
                double tps = await Decode(m, prompt, o, draft, costs, threads);
                if (run >= 0) rates[name].Add(tps);
            }
        double g = Median(rates["greedy"]), s = Median(rates["sampled"]);
        Console.WriteLine($"  --draft {draft,-4}  greedy {g,8:F1} tok/s   default sampling {s,8:F1} tok/s   sampled/greedy {s / g:F3}");
    }

    // The sampler alone, on this model's logits after the prompt.
    var session = m.CreateSession(new SessionOptions { Threads = threads });
    var logits = session.Forward(prompt);
    var work = new float[vocab];
    var fast = new Sampler(new SamplingOptions { Seed = 1 });
    var rng = new Random(1);
    var opts = new SamplingOptions();
    double Time(Action a, int iters)
    {
        for (int i = 0; i < Math.Max(3, iters / 10); i++) a();
        var best = double.MaxValue;
        for (int rep = 0; rep < 5; rep++)
        {
            long t0 = Stopwatch.GetTimestamp();
            for (int i = 0; i < iters; i++) a();
            best = Math.Min(best, Stopwatch.GetElapsedTime(t0).TotalSeconds / iters);
        }
        return best * 1e6;
    }
    double copy = Time(() => logits.CopyTo(work, 0), 200);
    double fastUs = Time(() => { logits.CopyTo(work, 0); fast.Sample(work, prompt); }, 200) - copy;
    double refUs = Time(() => { logits.CopyTo(work, 0); ReferenceSampler.Sample(work, prompt, opts, rng); }, 20) - copy;
    double argUs = Time(() => Sampler.ArgMax(logits), 200);
    Console.WriteLine($"  sampler per token: fast {fastUs,8:F1} us   full-sort reference {refUs,8:F1} us   argmax {argUs,6:F1} us");
}

static async Task<double> Decode(LlamaModel m, int[] prompt, GenerationOptions o, string draft, CostModel? costs, int threads)
{
    var session = m.CreateSession(new SessionOptions { Threads = threads, ContextLength = prompt.Length + o.MaxTokens + 1 });
    var drafter = Drafters.Create(draft);
    var stream = drafter == null
        ? Generator.GenerateAsync(session, prompt, o)
        : SpeculativeGenerator.GenerateAsync(session, prompt, o, drafter, new SpeculativeOptions { MaxTreeSize = 32, Costs = costs }, new SpeculationStats());
    // As `pare run`: decode speed counts the tokens after the first (whose time includes the prompt).
    int n = 0;
    long first = 0;
    await foreach (var t in stream)
    {
        if (t.Id < 0) continue;
        if (n++ == 0) first = Stopwatch.GetTimestamp();
    }
    return (n - 1) / Stopwatch.GetElapsedTime(first).TotalSeconds;
}

static double Median(List<double> x)
{
    var s = x.Order().ToArray();
    return s.Length % 2 == 1 ? s[s.Length / 2] : (s[s.Length / 2 - 1] + s[s.Length / 2]) / 2;
}

// Llama-3-sized vocabulary (128,256) on a small body, so the LM head and the sampler dominate as they would at 128k.
static string Synthetic128k()
{
    string path = Path.Combine(".cache", "bench", "synthetic-128k-q8_0.gguf");
    if (File.Exists(path)) return path;
    Directory.CreateDirectory(Path.GetDirectoryName(path)!);
    var cfg = new LlamaConfig
    {
        Dim = 256, Layers = 4, Heads = 4, KvHeads = 4, HeadDim = 64, RopeDim = 64, FfnDim = 768,
        VocabSize = 128_256, ContextLength = 2048, TiedEmbeddings = false,
    };
    Console.WriteLine($"writing {path} (dim 256, 4 layers, vocab 128256, Q8_0)");
    SyntheticModel.Write(path + ".tmp", cfg, GgmlType.Q8_0, SyntheticModel.ByteLevelVocab(cfg.VocabSize), seed: 5);
    File.Move(path + ".tmp", path, overwrite: true);
    return path;
}
