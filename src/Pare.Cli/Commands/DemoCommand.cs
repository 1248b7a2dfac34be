using System.CommandLine;
using System.Diagnostics;
using Pare.Generation;
using Pare.Models;
using Pare.Tensors;

namespace Pare.Cli.Commands;

/// <summary>
/// <c>pare demo</c>: runs the engine end to end on the embedded default model. No trained model ships yet, so it writes
/// a small synthetic random-weight model, says so, and generates from it (the text is meaningless; the point is the engine).
/// </summary>
internal static class DemoCommand
{
    public static readonly LlamaConfig SyntheticConfig = new()
    {
        Dim = 256, Layers = 4, Heads = 8, KvHeads = 4, HeadDim = 32, RopeDim = 32, FfnDim = 704,
        VocabSize = 512, ContextLength = 512, TiedEmbeddings = false,
    };

    public static Command Create()
    {
        var json = Cli.Json();
        var threads = Cli.Threads();
        var maxTokens = new Option<int>("--max-tokens", "-n") { Description = "Tokens to generate.", DefaultValueFactory = _ => 48 };
        var cmd = new Command("demo", "Run Pare end to end on the default model (a synthetic one until a trained model ships).") { maxTokens, threads, json };
        cmd.SetAction((r, ct) => Cli.Guard(async () =>
        {
            bool asJson = r.GetValue(json);
            string dir = Path.Combine(Path.GetTempPath(), "pare-demo");
            Directory.CreateDirectory(dir);
            string path = Path.Combine(dir, "pare-synthetic-f16.gguf");
            if (!asJson)
                Console.Out.WriteLine("No trained model ships with Pare yet: this demo writes a small synthetic model with random weights\n" +
                    $"(llama architecture, {SyntheticConfig.Dim} wide, {SyntheticConfig.Layers} layers, grouped-query attention, F16) to {path}\n" +
                    "and runs it on Pare's engine. Its text is meaningless; the demo shows loading, tokenizing, generating and timing.\n");
            var sw = Stopwatch.StartNew();
            Cli.WithProgress(asJson, "writing synthetic model", p =>
            {
                SyntheticModel.Write(path, SyntheticConfig, GgmlType.F16, SyntheticModel.ByteLevelVocab(SyntheticConfig.VocabSize), seed: 42, p);
                return 0;
            });
            double writeS = sw.Elapsed.TotalSeconds;
            using var m = LlamaModel.Load(path);
            var tok = m.Tokenizer ?? throw new PareException("the synthetic model has no tokenizer");
            const string prompt = "Call me Ishmael. Some years ago";
            var ids = tok.Encode(prompt);
            var session = m.CreateSession(new SessionOptions { Threads = r.GetValue(threads) });
            // Random weights would pick stray bytes that do not form UTF-8: let the synthetic model write printable ASCII only.
            var unprintable = Enumerable.Range(0, tok.VocabSize).Where(id => tok.TokenBytes(id) is var b && (b.Length == 0 || b.Any(c => c is < 0x20 or > 0x7E))).ToArray();
            var options = new GenerationOptions { MaxTokens = r.GetValue(maxTokens), Sampling = new SamplingOptions { Temperature = 0.8f, Seed = 1, BannedTokens = unprintable } };
            var text = new System.Text.StringBuilder();
            int n = 0;
            sw.Restart();
            if (!asJson) Console.Out.Write($"prompt: {prompt}\noutput: ");
            await foreach (var t in Generator.GenerateAsync(session, ids, options, ct))
            {
                if (t.Id >= 0) n++;
                text.Append(t.Text);
                if (!asJson) Console.Out.Write(t.Text.ReplaceLineEndings(" "));
            }
            double genS = sw.Elapsed.TotalSeconds;
            if (asJson)
                Cli.PrintJson(new { model = path, synthetic = true, parameters = m.ParameterCount, prompt, prompt_tokens = ids.Length, text = text.ToString(), generated_tokens = n, tok_s = n / genS, write_s = writeS });
            else
                Console.Out.WriteLine($"\n\n{m.ParameterCount / 1e6:F1}M parameters; wrote the model in {writeS:F1} s; {ids.Length} prompt tokens, {n} generated in {genS:F2} s ({n / genS:F0} tok/s).");
            return 0;
        }));
        return cmd;
    }
}
