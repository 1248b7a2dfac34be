using System.CommandLine;
using System.Diagnostics;
using System.Text.Json;
using Pare.Generation;
using Pare.Models;
using Pare.Speculative;
using Spectre.Console;

namespace Pare.Cli.Commands;

/// <summary>
/// <c>pare bench-spec MODEL --prompts FILE</c>: every drafter and plain greedy decoding on the same prompts in the same
/// run; per category the mean accepted tokens per step (MAT), tokens/s and wall-time speedup over plain decoding.
/// Decoding is timed from the first generated token to the last: the prompt pass before it is the same work with or
/// without a drafter (and grows with the prompt, not with the drafter), so it is reported beside, in the end-to-end
/// speedup. Every drafter's output is checked token for token against plain decoding.
/// </summary>
internal static class BenchSpecCommand
{
    public static Command Create()
    {
        var model = Cli.ModelArgument();
        var prompts = new Option<FileInfo>("--prompts") { Description = "JSON lines, each {\"category\": ..., \"prompt\": ...}.", Required = true };
        var maxTokens = new Option<int>("--max-tokens", "-n") { Description = "Tokens generated per prompt.", DefaultValueFactory = _ => 128 }.AtLeast(1);
        var drafters = new Option<string>("--drafters") { Description = "Comma-separated drafters to compare with plain decoding.", DefaultValueFactory = _ => "pld,recycle,lookahead,aded,auto" };
        var maxTree = new Option<int>("--max-tree") { Description = "Largest draft tree per step (adaptive sizing chooses at most this).", DefaultValueFactory = _ => 32 }.Between(1, 256);
        var limit = new Option<int>("--limit") { Description = "Use at most this many prompts per category (0 = all).", DefaultValueFactory = _ => 0 }.AtLeast(0);
        var fixedSize = new Option<bool>("--fixed-size") { Description = "Verify trees of --max-tree nodes at every step (no adaptive sizing, no plain fallback): acceptance at equal tree size." };
        var threads = Cli.Threads();
        var kvType = Cli.KvType();
        var json = Cli.Json();
        var cmd = new Command("bench-spec", "Compare speculative drafters with plain greedy decoding on a prompt set (MAT, tok/s, speedup).")
            { model, prompts, maxTokens, drafters, maxTree, limit, fixedSize, threads, kvType, json };
        cmd.SetAction((r, ct) => Cli.Guard(async () =>
        {
            bool asJson = r.GetValue(json);
            var file = r.GetValue(prompts)!;
            if (!file.Exists) throw new PareException($"prompt file not found: {file.FullName}");
            var set = ReadPrompts(file.FullName, r.GetValue(limit));
            var names = r.GetValue(drafters)!.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries);
            foreach (var n in names) if (n == "none" || !(Drafters.Names.Contains(n) || Drafters.IsModelDrafter(n))) throw new PareException($"--drafters: '{n}' is not a drafter (choose from {string.Join(", ", Drafters.Names.Skip(1).Concat(Drafters.ModelForms))})");
            using var m = Cli.Load(r.GetValue(model)!);
            var tok = m.Tokenizer ?? throw new PareException($"{m.Source}: the model has no tokenizer");
            var opt = new GenerationOptions { MaxTokens = r.GetValue(maxTokens), Sampling = SamplingOptions.Greedy, StopAtEos = false };
            var session = m.CreateSession(new SessionOptions { Threads = r.GetValue(threads), KvType = r.GetValue(kvType) });
            var costs = CostModel.Measure(session, CostModel.DefaultSizes.Where(n => n <= Math.Max(1, r.GetValue(maxTree))));
            // Drafters persist across prompts (Token Recycling warms up over a session, as in the paper).
            var live = names.ToDictionary(n => n, n => Drafters.Create(n, session)!);
            // So do the measured step rates that choose between speculative and plain steps (one set per drafter).
            var specs = names.ToDictionary(n => n, _ =>
            {
                var o = new SpeculativeOptions { MaxTreeSize = r.GetValue(maxTree), Costs = costs, Adaptive = !r.GetValue(fixedSize) };
                return o with { Rates = new StepRates(o) };
            });
            // Seconds: after the first token (decoding); Total: prompt pass included.
            var rows = new List<(string Category, string Drafter, double Seconds, double Total, int Tokens, int Steps, long Nodes, bool Identical)>();
            int total = set.Count * (names.Length + 1), done = 0;
            // Untimed warm-up of every code path on the first prompt, with throw-away drafters.
            {
                var warm = tok.Encode(set[0].Prompt);
                warm = warm[^Math.Min(warm.Length, 64)..];
                var wopt = opt with { MaxTokens = 8 };
                session.Reset();
                await foreach (var _ in Generator.GenerateAsync(session, warm, wopt, ct)) { }
                foreach (var n in names)
                {
                    session.Reset();
                    var wd = Drafters.Create(n, session)!;
                    await foreach (var _ in SpeculativeGenerator.GenerateAsync(session, warm, wopt, wd, new SpeculativeOptions { MaxTreeSize = r.GetValue(maxTree), Costs = costs, Adaptive = !r.GetValue(fixedSize) }, new SpeculationStats(), ct)) { }
                    (wd as IModelDrafter)?.Runner.Dispose();
                }
            }
            await Cli.WithProgressAsync(asJson, "prompts", async progress =>
            {
                foreach (var (category, text) in set)
                {
                    var ids = tok.Encode(text);
                    if (ids.Length + opt.MaxTokens + r.GetValue(maxTree) > session.ContextLength) ids = ids[^Math.Max(1, session.ContextLength - opt.MaxTokens - r.GetValue(maxTree))..];
                    session.Reset();
                    var (plain, first, end) = await Timed(Generator.GenerateAsync(session, ids, opt, ct));
                    rows.Add((category, "none", end - first, end, plain.Count - 1, plain.Count - 1, plain.Count - 1, true));
                    progress?.Report(++done / (double)total);
                    foreach (var n in names)
                    {
                        session.Reset();
                        var stats = new SpeculationStats();
                        var (outp, sFirst, sEnd) = await Timed(SpeculativeGenerator.GenerateAsync(session, ids, opt, live[n], specs[n], stats, ct));
                        // Tokens and steps after the first token (the prompt pass's): MAT = tokens per verification step.
                        rows.Add((category, n, sEnd - sFirst, sEnd, outp.Count - 1, stats.Steps, stats.NodesEvaluated, outp.SequenceEqual(plain)));
                        progress?.Report(++done / (double)total);
                    }
                }
            });
            var summary = rows.GroupBy(x => (x.Category, x.Drafter)).Select(g =>
            {
                var plainRows = rows.Where(x => x.Category == g.Key.Category && x.Drafter == "none").ToList();
                double secs = g.Sum(x => x.Seconds), total = g.Sum(x => x.Total);
                return new
                {
                    category = g.Key.Category,
                    drafter = g.Key.Drafter,
                    prompts = g.Count(),
                    mat = g.Average(x => (double)x.Tokens / Math.Max(1, x.Steps)),
                    // Accepted tokens per verified tree node (bonus included): acceptance at a given tree size.
                    tokens_per_node = g.Sum(x => (double)x.Tokens) / Math.Max(1, g.Sum(x => x.Nodes)),
                    tok_s = g.Sum(x => x.Tokens) / secs,
                    speedup = plainRows.Sum(x => x.Seconds) / secs,
                    speedup_end_to_end = plainRows.Sum(x => x.Total) / total,
                    prompt_seconds = (total - secs) / g.Count(),
                    identical = g.All(x => x.Identical),
                };
            }).ToList();
            // Draft sessions: KV cache (bounded by the context) and the tree scratch at its largest.
            var memory = live.Where(x => x.Value is IModelDrafter).Select(x => new { drafter = x.Key, kv_cache_bytes = ((IModelDrafter)x.Value).Runner.KvCacheBytes, scratch_bytes = ((IModelDrafter)x.Value).Runner.ScratchBytes }).ToList();
            var tn = costs.Sizes.Select((n, i) => new { n, seconds = costs.Seconds[i], ratio = costs.Seconds[i] / costs.Seconds[0] }).ToList();
            if (asJson)
            {
                Cli.PrintJson(new { model = m.Source, threads = r.GetValue(threads), max_tokens = opt.MaxTokens, max_tree = r.GetValue(maxTree), fixed_size = r.GetValue(fixedSize), t_n = tn, results = summary, draft_memory = memory });
                foreach (var d in live.Values) (d as IModelDrafter)?.Runner.Dispose();
                return summary.All(s => s.identical) ? 0 : 2;
            }
            // Redirected output (a file, CI log) gets a table wide enough for its columns instead of Spectre's 80.
            if (Console.IsOutputRedirected) AnsiConsole.Profile.Width = Math.Max(AnsiConsole.Profile.Width, 150);
            var table = new Table().AddColumns("category", "drafter", "prompts", "MAT", "tokens/node", "decode tok/s", "speedup", "prompt pass (ms)", "end to end", "identical to plain");
            foreach (var s in summary)
                table.AddRow(Markup.Escape(s.category), Markup.Escape(s.drafter), s.prompts.ToString(System.Globalization.CultureInfo.InvariantCulture), $"{s.mat:F2}", $"{s.tokens_per_node:F2}", $"{s.tok_s:F1}", $"{s.speedup:F2}x",
                    $"{s.prompt_seconds * 1000:F1}", $"{s.speedup_end_to_end:F2}x", s.identical ? "yes" : "[red]NO[/]");
            AnsiConsole.Write(table);
            foreach (var x in memory) AnsiConsole.MarkupLine(Markup.Escape($"draft memory, {x.drafter}: KV cache {x.kv_cache_bytes / 1024.0:F0} KiB, tree scratch {x.scratch_bytes / 1024.0:F0} KiB"));
            foreach (var d in live.Values) (d as IModelDrafter)?.Runner.Dispose();
            AnsiConsole.MarkupLine($"T(n)/T(1): {string.Join(", ", tn.Select(x => $"{x.n}: {x.ratio:F2}"))}");
            AnsiConsole.MarkupLine($"settings: greedy, {opt.MaxTokens} tokens per prompt, max tree {r.GetValue(maxTree)}{(r.GetValue(fixedSize) ? " (fixed size)" : "")}, {r.GetValue(threads)} threads, drafters warm across prompts; " +
                "decode tok/s and speedup from the first generated token on, end to end with the prompt pass");
            return summary.All(s => s.identical) ? 0 : 2;
        }));
        return cmd;
    }

    /// <summary>Drains a generation: the token ids, and the seconds to the first token and to the end.</summary>
    static async Task<(List<int> Ids, double First, double End)> Timed(IAsyncEnumerable<GeneratedToken> tokens)
    {
        var sw = Stopwatch.StartNew();
        double first = 0;
        var ids = new List<int>();
        await foreach (var t in tokens)
        {
            if (ids.Count == 0) first = sw.Elapsed.TotalSeconds;
            if (t.Id >= 0) ids.Add(t.Id);
        }
        return (ids, first, sw.Elapsed.TotalSeconds);
    }

    static List<(string Category, string Prompt)> ReadPrompts(string path, int limit)
    {
        var list = new List<(string, string)>();
        int line = 0;
        foreach (var l in File.ReadLines(path))
        {
            line++;
            if (string.IsNullOrWhiteSpace(l)) continue;
            try
            {
                using var d = JsonDocument.Parse(l);
                string cat = d.RootElement.GetProperty("category").GetString() ?? throw new PareException($"{path}:{line}: category is null");
                string p = d.RootElement.GetProperty("prompt").GetString() ?? throw new PareException($"{path}:{line}: prompt is null");
                if (p.Length == 0) throw new PareException($"{path}:{line}: empty prompt");
                list.Add((cat, p));
            }
            catch (Exception e) when (e is JsonException or KeyNotFoundException or InvalidOperationException)
            {
                throw new PareException($"{path}:{line}: not a JSON object with string fields \"category\" and \"prompt\" ({e.Message})");
            }
        }
        if (list.Count == 0) throw new PareException($"{path}: no prompts");
        return limit > 0 ? [.. list.GroupBy(x => x.Item1).SelectMany(g => g.Take(limit))] : list;
    }
}
