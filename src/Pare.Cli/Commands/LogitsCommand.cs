using System.CommandLine;
using System.Globalization;
using Pare.Models;

namespace Pare.Cli.Commands;

/// <summary><c>pare logits MODEL --tokens 1,2,3</c>: the logits of the last position.</summary>
internal static class LogitsCommand
{
    public static Command Create()
    {
        var model = Cli.ModelArgument();
        var tokens = new Option<string>("--tokens") { Description = "Comma-separated token ids, e.g. 1,2,3.", Required = true };
        var threads = Cli.Threads();
        var json = Cli.Json();
        var cmd = new Command("logits", "Evaluate token ids and print the logits of the last position.") { model, tokens, threads, json };
        cmd.SetAction(r => Cli.Guard(() =>
        {
            var ids = ParseIds(r.GetValue(tokens)!);
            using var m = Cli.Load(r.GetValue(model)!);
            var session = m.CreateSession(new SessionOptions { Threads = r.GetValue(threads), ContextLength = Math.Min(m.Config.ContextLength, Math.Max(ids.Length, 1)) });
            var logits = session.Forward(ids);
            if (r.GetValue(json)) { Cli.PrintJson(new { logits }); return 0; }
            int best = Generation.Sampler.ArgMax(logits);
            Console.Out.WriteLine(string.Join(' ', logits.Select(v => v.ToString("G9", CultureInfo.InvariantCulture))));
            Console.Error.WriteLine($"[{logits.Length} logits; argmax {best} = {logits[best]:G6}]");
            return 0;
        }));
        return cmd;
    }

    static int[] ParseIds(string s)
    {
        var parts = s.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries);
        if (parts.Length == 0) throw new PareException("--tokens is empty: give comma-separated token ids, e.g. 1,2,3");
        return [.. parts.Select(p => int.TryParse(p, NumberStyles.Integer, CultureInfo.InvariantCulture, out int v)
            ? v : throw new PareException($"--tokens: '{p}' is not a token id"))];
    }
}
