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
        var lanes = new Option<int>("--lanes") { Description = "Independent copies of every drafter (each its own warm state and step rates, each meeting every prompt once), run per prompt in alternating order: speedups pool them, and the spread between halves of them (A/A) is the run's noise.", DefaultValueFactory = _ => 1 }.Between(1, 16);
        var clock = new Option<string>("--clock") { Description = "What decode time is: wall (elapsed time) or cpu (this process's CPU time, user + system, for the timings and for the step rates that choose trees: with --threads 1 it does not count the time other processes take from it, so a loaded machine still ranks methods; with more threads it also counts the kernel workers' spinning).", DefaultValueFactory = _ => "wall" }.AcceptOnlyFromAmong("wall", "cpu");
        var threads = Cli.Threads();
        var kvType = Cli.KvType();
        var json = Cli.Json();
        var cmd = new Command("bench-spec", "Compare speculative drafters with plain greedy decoding on a prompt set (MAT, tok/s, speedup).")
            { model, prompts, maxTokens, drafters, maxTree, limit, fixedSize, lanes, clock, threads, kvType, json };
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
            int laneCount = r.GetValue(lanes);
            // CPU time: Environment.CpuUsage (getrusage, ~4 us a read), for the generations' timing and the step rates alike.
            Func<double>? cpu = r.GetValue(clock) == "cpu" ? () => Environment.CpuUsage.TotalTime.TotalSeconds : null;
            Func<double> now = cpu ?? (() => Stopwatch.GetTimestamp() / (double)Stopwatch.Frequency);
            var costs = CostModel.Measure(session, CostModel.DefaultSizes.Where(n => n <= Math.Max(1, r.GetValue(maxTree))), clock: cpu);
            // Drafters persist across prompts (Token Recycling warms up over a session, as in the paper); one per lane.
            var live = names.SelectMany(n => Enumerable.Range(0, laneCount).Select(l => (n, l))).ToDictionary(k => k, k => Drafters.Create(k.n, session)!);
            // Each lane loads its own draft model: its one-time preparation is load time (the target's happens in the cost
            // model's warm-up), not the first timed step a model arm drafts.
            foreach (var d in live.Values) (d as IModelDrafter)?.Runner.Prepare();
            // So do the measured step rates that choose between speculative and plain steps (one set per drafter and lane).
            var specs = live.Keys.ToDictionary(k => k, _ =>
            {
                var o = new SpeculativeOptions { MaxTreeSize = r.GetValue(maxTree), Costs = costs, Adaptive = !r.GetValue(fixedSize), Clock = cpu };
                return o with { Rates = new StepRates(o) };
            });
            // Seconds: after the first token (decoding); Total: prompt pass included.
            var rows = new List<(string Category, string Drafter, int Lane, int Prompt, double Seconds, double Total, int Tokens, int Steps, long Nodes, bool Identical, SpeculationStats? Stats)>();
            int total = set.Count * (names.Length + 1) * laneCount, done = 0;
            // Untimed warm-up of every code path on the first prompt, with throw-away drafters: as many tokens as a timed run
            // (8 left the per-step methods at tier 0 for the first timed prompts: fewer calls than the runtime's 30 to tier up).
            {
                var warm = tok.Encode(set[0].Prompt);
                warm = warm[^Math.Min(warm.Length, 64)..];
                var wopt = opt with { MaxTokens = Math.Min(opt.MaxTokens, 128) };
                session.Reset();
                await foreach (var _ in Generator.GenerateAsync(session, warm, wopt, ct)) { }
                foreach (var n in names)
                {
                    session.Reset();
                    var wd = Drafters.Create(n, session)!;
                    await foreach (var _ in SpeculativeGenerator.GenerateAsync(session, warm, wopt, wd, new SpeculativeOptions { MaxTreeSize = r.GetValue(maxTree), Costs = costs, Adaptive = !r.GetValue(fixedSize) }, new SpeculationStats(), ct)) { }
                    // Arms the warm-up generation did not draft with (auto:FILE's, tried only once its default has settled).
                    (wd as DrafterChoice)?.Exercise(warm, m.Config.VocabSize);
                    (wd as IModelDrafter)?.Runner.Dispose();
                }
                // Methods called often during the warm-up are recompiled (tier 1) in the background after a quiet spell:
                // let that finish before the first timed prompt rather than inside it.
                Thread.Sleep(300);
            }
            await Cli.WithProgressAsync(asJson, "prompts", async progress =>
            {
                for (int p = 0; p < set.Count; p++)
                {
                    var (category, text) = set[p];
                    var ids = tok.Encode(text);
                    if (ids.Length + opt.MaxTokens + r.GetValue(maxTree) > session.ContextLength) ids = ids[^Math.Max(1, session.ContextLength - opt.MaxTokens - r.GetValue(maxTree))..];
                    // Outputs of this prompt's runs by row: checked against plain decoding's once all have run.
                    var outputs = new List<(int Row, List<int> Ids)>();
                    // Plain decoding and every drafter of every lane on this prompt, in alternating order (ABBA over lanes
                    // and prompts): a drift of the machine's speed within the prompt's runs then falls on every drafter alike.
                    foreach (var (n, lane) in RunOrder(names, laneCount, p))
                    {
                        session.Reset();
                        // A collection left over from an earlier generation's garbage would be timed against this one.
                        GC.Collect();
                        GC.WaitForPendingFinalizers();
                        if (n == "none")
                        {
                            var (plain, first, end) = await Timed(Generator.GenerateAsync(session, ids, opt, ct), now);
                            outputs.Add((rows.Count, plain));
                            rows.Add((category, "none", lane, p, end - first, end, plain.Count - 1, plain.Count - 1, plain.Count - 1, true, null));
                        }
                        else
                        {
                            var stats = new SpeculationStats();
                            var (outp, sFirst, sEnd) = await Timed(SpeculativeGenerator.GenerateAsync(session, ids, opt, live[(n, lane)], specs[(n, lane)], stats, ct), now);
                            // Tokens and steps after the first token (the prompt pass's): MAT = tokens per verification step.
                            outputs.Add((rows.Count, outp));
                            rows.Add((category, n, lane, p, sEnd - sFirst, sEnd, outp.Count - 1, stats.Steps, stats.NodesEvaluated, true, stats));
                        }
                        progress?.Report(++done / (double)total);
                    }
                    var reference = outputs.First(o => rows[o.Row].Drafter == "none").Ids;
                    foreach (var (row, outp) in outputs) rows[row] = rows[row] with { Identical = outp.SequenceEqual(reference) };
                }
            });
            var summary = rows.GroupBy(x => (x.Category, x.Drafter)).Select(g =>
            {
                var plainRows = rows.Where(x => x.Category == g.Key.Category && x.Drafter == "none").ToList();
                double secs = g.Sum(x => x.Seconds), total = g.Sum(x => x.Total);
                double plainSecs = plainRows.Sum(x => x.Seconds) / laneCount;
                // Each lane's decode time against plain decoding's mean over lanes, and (two lanes or more) the A/A ratio:
                // the decode time of the even lanes over that of the odd ones, the same method against itself.
                var laneSecs = Enumerable.Range(0, laneCount).Select(l => g.Where(x => x.Lane == l).Sum(x => x.Seconds)).ToArray();
                return new
                {
                    category = g.Key.Category,
                    drafter = g.Key.Drafter,
                    prompts = g.Count() / laneCount,
                    mat = g.Average(x => (double)x.Tokens / Math.Max(1, x.Steps)),
                    // Accepted tokens per verified tree node (bonus included): acceptance at a given tree size.
                    tokens_per_node = g.Sum(x => (double)x.Tokens) / Math.Max(1, g.Sum(x => x.Nodes)),
                    tok_s = g.Sum(x => x.Tokens) / secs,
                    speedup = plainRows.Sum(x => x.Seconds) / secs,
                    lane_speedups = laneSecs.Select(x => plainSecs / x).ToArray(),
                    aa = laneCount < 2 ? (double?)null : laneSecs.Where((_, l) => l % 2 == 0).Sum() / laneSecs.Where((_, l) => l % 2 == 1).Sum() * (laneCount / 2) / (double)((laneCount + 1) / 2),
                    speedup_end_to_end = plainRows.Sum(x => x.Total) / total,
                    prompt_seconds = (total - secs) / g.Count(),
                    // Decode seconds per prompt (all lanes): per-prompt ratios between drafters, whose median a burst on one prompt cannot move.
                    prompt_decode_seconds = g.GroupBy(x => x.Prompt).Select(h => h.Sum(x => x.Seconds)).ToArray(),
                    lane_mat = Enumerable.Range(0, laneCount).Select(l => g.Where(x => x.Lane == l).Average(x => (double)x.Tokens / Math.Max(1, x.Steps))).ToArray(),
                    identical = g.All(x => x.Identical),
                    // What the steps were, summed over prompts and lanes (load-independent given the choices): where a drafter's
                    // time goes without a profiler (docs/speculative.md, session 13).
                    counts = Counts(g.Select(x => x.Stats)),
                };
            }).ToList();
            // Draft sessions: KV cache (bounded by the context) and the tree scratch at its largest.
            var memory = live.Where(x => x.Value is IModelDrafter).Select(x => new { drafter = x.Key, kv_cache_bytes = ((IModelDrafter)x.Value).Runner.KvCacheBytes, scratch_bytes = ((IModelDrafter)x.Value).Runner.ScratchBytes }).ToList();
            var tn = costs.Sizes.Select((n, i) => new { n, seconds = costs.Seconds[i], ratio = costs.Seconds[i] / costs.Seconds[0] }).ToList();
            if (asJson)
            {
                Cli.PrintJson(new { model = m.Source, threads = r.GetValue(threads), clock = r.GetValue(clock), max_tokens = opt.MaxTokens, max_tree = r.GetValue(maxTree), fixed_size = r.GetValue(fixedSize), lanes = laneCount, t_n = tn, results = summary, draft_memory = memory });
                foreach (var d in live.Values) (d as IModelDrafter)?.Runner.Dispose();
                return summary.All(s => s.identical) ? 0 : 2;
            }
            // Redirected output (a file, CI log) gets a table wide enough for its columns instead of Spectre's 80.
            if (Console.IsOutputRedirected) AnsiConsole.Profile.Width = Math.Max(AnsiConsole.Profile.Width, 150);
            var table = new Table().AddColumns("category", "drafter", "prompts", "MAT", "tokens/node", "decode tok/s", "speedup", "prompt pass (ms)", "end to end", "identical to plain");
            if (laneCount > 1) table.AddColumn("A/A (lanes)");
            foreach (var s in summary)
            {
                string[] cells = [Markup.Escape(s.category), Markup.Escape(s.drafter), s.prompts.ToString(System.Globalization.CultureInfo.InvariantCulture), $"{s.mat:F2}", $"{s.tokens_per_node:F2}", $"{s.tok_s:F1}", $"{s.speedup:F2}x",
                    $"{s.prompt_seconds * 1000:F1}", $"{s.speedup_end_to_end:F2}x", s.identical ? "yes" : "[red]NO[/]"];
                table.AddRow(laneCount > 1 ? [.. cells, $"{s.aa:F3}"] : cells);
            }
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

    /// <summary>
    /// The runs of prompt <paramref name="prompt"/>: plain decoding ("none") and every drafter, once per lane; the order
    /// is reversed every other lane and every other prompt (lane 0 of prompt 0: none, A, B; lane 1: B, A, none; prompt 1
    /// starts reversed), so no drafter always runs first, last or next to the same neighbour.
    /// </summary>
    internal static IEnumerable<(string Drafter, int Lane)> RunOrder(IReadOnlyList<string> drafters, int lanes, int prompt)
    {
        for (int l = 0; l < lanes; l++)
        {
            var order = new[] { "none" }.Concat(drafters);
            foreach (var n in (prompt + l) % 2 == 0 ? order : order.Reverse()) yield return (n, l);
        }
    }

    /// <summary>
    /// Step counts of a drafter's generations (null for plain decoding): plain steps (idle = decided without asking the
    /// sizer; empty = the drafter had nothing), drafted steps by context class (steps, emitted tokens, tree nodes, measured seconds), the plain steps' measured seconds and,
    /// for `auto:FILE`, drafted steps and tokens per arm.
    /// </summary>
    static object? Counts(IEnumerable<SpeculationStats?> all)
    {
        var stats = all.OfType<SpeculationStats>().ToList();
        if (stats.Count == 0) return null;
        int arms = stats.Max(s => s.ArmSteps.Length);
        return new
        {
            steps = stats.Sum(s => s.Steps),
            plain_steps = stats.Sum(s => s.PlainSteps),
            idle_steps = stats.Sum(s => s.IdleSteps),
            empty_drafts = stats.Sum(s => s.EmptyDrafts),
            plain_seconds = stats.Sum(s => s.PlainSeconds),
            by_context = Enumerable.Range(0, 3).Select(c => new { steps = stats.Sum(s => s.ClassSteps[c]), tokens = stats.Sum(s => s.ClassTokens[c]), nodes = stats.Sum(s => s.ClassNodes[c]), seconds = stats.Sum(s => s.ClassSeconds[c]) }).ToArray(),
            arms = Enumerable.Range(0, arms).Select(a => new { steps = stats.Sum(s => a < s.ArmSteps.Length ? s.ArmSteps[a] : 0), tokens = stats.Sum(s => a < s.ArmTokens.Length ? s.ArmTokens[a] : 0) }).ToArray(),
        };
    }

    /// <summary>Drains a generation: the token ids, and the seconds to the first token and to the end.</summary>
    static async Task<(List<int> Ids, double First, double End)> Timed(IAsyncEnumerable<GeneratedToken> tokens, Func<double> now)
    {
        double start = now(), first = 0;
        var ids = new List<int>();
        await foreach (var t in tokens)
        {
            if (ids.Count == 0) first = now() - start;
            if (t.Id >= 0) ids.Add(t.Id);
        }
        return (ids, first, now() - start);
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
