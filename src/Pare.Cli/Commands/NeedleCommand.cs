using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using Pare.Data;
using Pare.LongContext;
using Pare.Tokenizers;

namespace Pare.Cli.Commands;

/// <summary>
/// <c>pare needle MODEL --task T --lengths L,.. --depths D,.. --trials N --seed S [--json]</c>: long-context retrieval
/// accuracy per (length, depth) with the full KV cache (see <see cref="NeedleHarness"/>); the heatmap PNG is drawn from
/// the JSON by benchmarks/Pare.Plots (<c>needle</c>).
/// </summary>
internal static class NeedleCommand
{
    const string DefaultFiller = ".cache/data/corpus/test.txt";

    public static Command Create()
    {
        var model = Cli.ModelArgument();
        var task = new Option<string>("--task") { Description = $"One of {string.Join(", ", NeedleTasks.All.Select(NeedleTasks.Name))}.", DefaultValueFactory = _ => "passkey" };
        var lengths = new Option<string?>("--lengths") { Description = $"Prompt lengths in tokens, comma-separated (default: context/4, context/2, context-{NeedleHarness.AnswerTokens}; each + {NeedleHarness.AnswerTokens} answer tokens up to {NeedleHarness.MaxContextFactor}x the context)." };
        var depths = new Option<string>("--depths") { Description = "Needle depths in 0..1, comma-separated.", DefaultValueFactory = _ => "0,0.25,0.5,0.75,1" };
        var trials = new Option<int>("--trials") { Description = "Trials per (length, depth) cell.", DefaultValueFactory = _ => 10 };
        var seed = new Option<ulong>("--seed") { Description = "Seed of the haystacks.", DefaultValueFactory = _ => 1UL };
        var filler = new Option<string>("--filler-text") { Description = $"Text the passkey is hidden in ('classic' = the grass-is-green sentences).", DefaultValueFactory = _ => DefaultFiller };
        var details = new Option<bool>("--details") { Description = "With --json, also list every trial's gold values and answer." };
        var threads = Cli.Threads();
        var kvType = Cli.KvType();
        var kvPolicy = Cli.KvPolicy();
        var kvBudget = Cli.KvBudget();
        var renumber = new Option<string?>("--kv-renumber") { Description = "tokenselect: RoPE over the gathered sequence (on, default, as the reference: length extrapolation) or over true positions (off)." }
            .Check(v => v is "on" or "off", "on or off");
        var scores = new Option<string?>("--kv-scores") { Description = "tokenselect: score the candidates from a 4-bit copy of K (int4, default: an eighth of the bytes), an int8 one (int8: a quarter) or the F32 cache (f32, as the reference); attention over the selection is F32 either way." }
            .Check(v => v is "int8" or "int4" or "f32", "int8, int4 or f32");
        var selCache = Cli.KvSelectionCache();
        var chunk = new Option<int?>("--prefill-chunk") { Description = "Prefill the prompt in chunks of N tokens, each after the first attending to the KV policy's selection (default: one chunk)." };
        var prune = new Option<string>("--prefill-prune") { Description = "Prefill token pruning: none (default) or lazyllm (LazyLLM: defer low-attention prompt tokens layer by layer, revive them before the second token).", DefaultValueFactory = _ => "none" }
            .Check(v => v is "none" or "lazyllm", "none or lazyllm");
        var keep = new Option<string>("--keep") { Description = "With --prefill-prune lazyllm: share of the remaining prompt tokens kept at each pruning layer (--prune-at), in (0, 1]; one value, or one per pruning layer (e.g. 0.9,0.6,0.3: harder in deeper layers).", DefaultValueFactory = _ => "0.5" };
        var lazyWindow = new Option<int>("--lazy-window") { Description = "With --prefill-prune lazyllm: importance from the attention of the last W prompt tokens (observation window, averaged; always kept). 1 = the paper's last token.", DefaultValueFactory = _ => 1 }.AtLeast(1);
        var lazyHeads = new Option<string>("--lazy-heads") { Description = "With --prefill-prune lazyllm: reduce the importance over heads by mean (the paper's) or max.", DefaultValueFactory = _ => "mean" }
            .Check(v => v is "mean" or "max", "mean or max");
        var lazyWindowReduce = new Option<string>("--lazy-window-reduce") { Description = "With --prefill-prune lazyllm and --lazy-window >= 2: reduce over the window's queries by mean (default) or max (a variant: a question token that looks at the needle keeps it).", DefaultValueFactory = _ => "mean" }
            .Check(v => v is "mean" or "max", "mean or max");
        var lazyPool = new Option<int>("--lazy-pool") { Description = "With --prefill-prune lazyllm: max-pool the importance over K neighbouring tokens (odd; SnapKV's kernel; a variant). 1 = none.", DefaultValueFactory = _ => 1 };
        var lazyScore = new Option<string>("--lazy-score") { Description = "With --prefill-prune lazyllm: score a pruning layer by the attention of the layer below (the paper's) or by its own (same: its keys computed for every remaining token first; a variant for models whose look-up layer is the one to prune at).", DefaultValueFactory = _ => "below" }
            .Check(v => v is "below" or "same", "below or same");
        var pruneAt = new Option<string>("--prune-at") { Description = "With --prefill-prune lazyllm: the pruning layers as fractions of the depth in (0, 1), comma-separated (layer = round(fraction x layers)).", DefaultValueFactory = _ => "0.25,0.5,0.75" };
        var compareFull = new Option<bool>("--compare-full") { Description = "With --prefill-prune lazyllm: also time a full prefill of each prompt in the same process (alternating order) and report the median speed-up of the time to first token." };
        var json = Cli.Json();
        var cmd = new Command("needle", "Long-context retrieval (passkey and needle-threading tasks): exact-match accuracy per length and depth, greedy, full KV cache.")
            { model, task, lengths, depths, trials, seed, filler, details, threads, kvType, kvPolicy, kvBudget, renumber, scores, selCache, chunk, prune, keep, pruneAt, lazyWindow, lazyHeads, lazyWindowReduce, lazyPool, lazyScore, compareFull, json };
        cmd.SetAction((r, ct) => Cli.Guard(() =>
        {
            bool asJson = r.GetValue(json);
            var t = NeedleTasks.Parse(r.GetValue(task)!);
            var depthList = ParseList(r.GetValue(depths)!, "--depths", s => double.Parse(s, NumberStyles.Float, CultureInfo.InvariantCulture));
            using var m = Cli.Load(r.GetValue(model)!);
            var tok = m.Tokenizer ?? throw new PareException($"{m.Source}: the model has no tokenizer");
            int ctx = m.Config.ContextLength;
            var lengthList = r.GetValue(lengths) is { } ls ? ParseList(ls, "--lengths", s => int.Parse(s, NumberStyles.Integer, CultureInfo.InvariantCulture))
                : [ctx / 4, ctx / 2, ctx - NeedleHarness.AnswerTokens];
            var options = new NeedleOptions { Task = t, Lengths = lengthList, Depths = depthList, Trials = r.GetValue(trials), Seed = r.GetValue(seed), Threads = r.GetValue(threads), KvType = r.GetValue(kvType),
                KvPolicy = r.GetValue(kvPolicy)!.ToLowerInvariant(), KvBudget = r.GetValue(kvBudget), KvRenumber = r.GetValue(renumber) is { } rn ? rn == "on" : null,
                KvScores = r.GetValue(scores), KvSelectionCache = Cli.SelectionCache(r.GetValue(selCache)), PrefillChunk = r.GetValue(chunk), CompareFullPrefill = r.GetValue(compareFull),
                Lazy = r.GetValue(prune) == "lazyllm" ? KeepShares(ParseList(r.GetValue(keep)!, "--keep", s => double.Parse(s, NumberStyles.Float, CultureInfo.InvariantCulture))) with {
                    Window = r.GetValue(lazyWindow), MaxOverHeads = r.GetValue(lazyHeads) == "max",
                    MaxOverWindow = r.GetValue(lazyWindowReduce) == "max", Pool = r.GetValue(lazyPool), SameLayer = r.GetValue(lazyScore) == "same",
                    PruneAt = ParseList(r.GetValue(pruneAt)!, "--prune-at", s => double.Parse(s, NumberStyles.Float, CultureInfo.InvariantCulture)) } : null };
            if (options.Lazy != null) _ = options.Lazy.Schedule(m.Config.Layers);   // bad input: one line, before any work
            NeedleHarness.Validate(options, ctx);
            if (options.KvRenumber != null || options.KvScores != null || options.KvSelectionCache != null || options.KvPolicy != "full" || options.KvBudget != null)   // bad input: one line, before any work
                _ = Pare.LongContext.KvPolicies.KvPolicy.Create(options.KvPolicy, options.KvBudget, m.Config, lengthList.Max() + NeedleHarness.AnswerTokens, options.KvRenumber, options.KvScores, options.KvSelectionCache);
            var text = new TokenText(tok);
            string fillerName = t == NeedleTask.Passkey ? r.GetValue(filler)! : "none";
            var fill = fillerName == "none" || fillerName == "classic" ? Filler.ClassicFiller(text) : new Filler(FillerTokens(tok, fillerName), text);

            var sw = Stopwatch.StartNew();
            Pare.Models.Kv.IKvPolicy? policy = null;
            var (cells, runs) = Cli.WithProgress(asJson, $"needle {NeedleTasks.Name(t)}", p => NeedleHarness.Run(m, fill, text, options, out policy, p, ct));
            var ts = policy as Pare.LongContext.KvPolicies.TokenSelectPolicy;
            double overall = cells.Average(c => c.Accuracy);
            if (asJson)
            {
                Cli.PrintJson(new
                {
                    model = m.Source, task = NeedleTasks.Name(t), kv_policy = options.KvPolicy, kv_budget = options.KvBudget,
                    kv_renumber = options.KvPolicy == "tokenselect" ? options.KvRenumber ?? true : (bool?)null,
                    kv_scores = options.KvPolicy == "tokenselect" ? options.KvScores ?? "int4" : null,
                    kv_selection_cache = options.KvSelectionCache, selections = ts?.Selections, selection_cache_hits = ts?.CacheHits,
                    selection_cache_hit_rate = ts?.CacheHitRate, selection_cache_layer_hits = ts?.CacheHitRate == null ? null : ts.LayerCacheHits,
                    selection_layer_selections = ts?.CacheHitRate == null ? null : ts.LayerSelections, prefill_chunk = options.PrefillChunk, seed = options.Seed, trials = options.Trials, filler = fillerName, context = ctx,
                    lengths = lengthList, depths = depthList, accuracy = overall, seconds = sw.Elapsed.TotalSeconds,
                    prefill_pruning = options.Lazy == null ? "none" : "lazyllm", keep = options.Lazy == null ? null : options.Lazy.KeepAt ?? [options.Lazy.Keep],
                    lazy_window = options.Lazy?.Window, lazy_heads = options.Lazy == null ? null : options.Lazy.MaxOverHeads ? "max" : "mean",
                    lazy_window_reduce = options.Lazy == null ? null : options.Lazy.MaxOverWindow ? "max" : "mean", lazy_pool = options.Lazy?.Pool,
                    lazy_score = options.Lazy == null ? null : options.Lazy.SameLayer ? "same" : "below",
                    prune_layers = options.Lazy == null ? null : LazyLlm.PruneLayers(options.Lazy, m.Config.Layers).Order().ToArray(),
                    mean_prefill_seconds = runs.Average(x => x.PrefillSeconds),
                    median_prefill_seconds = Median(runs.Select(x => x.PrefillSeconds)),
                    median_full_prefill_seconds = options.CompareFullPrefill && options.Lazy != null ? Median(runs.Select(x => x.FullPrefillSeconds)) : (double?)null,
                    median_ttft_speedup = options.CompareFullPrefill && options.Lazy != null ? Median(runs.Select(x => x.FullPrefillSeconds / x.PrefillSeconds)) : (double?)null,
                    cells = cells.Select(c => new { length = c.Length, depth = c.Depth, trials = c.Trials, accuracy = c.Accuracy, measured_depth = c.MeasuredDepth }),
                    runs = r.GetValue(details) ? runs.Select(x => new { length = x.Length, depth = x.Depth, trial = x.Trial, gold = x.Gold, answer = x.Answer, score = x.Score }) : null,
                });
            }
            else
            {
                Console.Out.WriteLine($"{NeedleTasks.Name(t)}: {options.Trials} trials per cell, seed {options.Seed}, filler {fillerName}; accuracy by length (rows) and depth (columns)");
                Console.Out.WriteLine("length  " + string.Concat(depthList.Select(d => $"{d,7:0.##}")));
                foreach (int l in lengthList)
                    Console.Out.WriteLine($"{l,6}  " + string.Concat(depthList.Select(d => $"{cells.First(c => c.Length == l && c.Depth == d).Accuracy * 100,6:F0}%")));
                Console.Out.WriteLine($"overall {overall * 100:F1}% ({sw.Elapsed.TotalSeconds:F0} s; mean time to first token {runs.Average(x => x.PrefillSeconds) * 1000:F0} ms)");
                if (ts?.CacheHitRate is double hr) Console.Out.WriteLine($"selection cache: {ts.CacheHits} hits of {ts.Selections} selections ({hr * 100:F1}%)");
            }
            return Task.FromResult(0);
        }));
        return cmd;
    }

    static double Median(IEnumerable<double> values)
    {
        var v = values.Order().ToArray();
        return v.Length % 2 == 1 ? v[v.Length / 2] : (v[v.Length / 2 - 1] + v[v.Length / 2]) / 2;
    }

    /// <summary>One --keep share for every pruning layer, or one per layer.</summary>
    static LazyLlmOptions KeepShares(double[] keep)
    {
        foreach (double k in keep)
            if (!(k > 0 && k <= 1)) throw new PareException($"--keep must be in (0, 1] (got {k.ToString(CultureInfo.InvariantCulture)})");
        return keep.Length == 1 ? new LazyLlmOptions { Keep = keep[0] } : new LazyLlmOptions { KeepAt = keep };
    }

    static int[] FillerTokens(ITokenizer tok, string path)
    {
        if (!File.Exists(path)) throw new PareException($"filler text not found: {path} (run 'pare data fetch', or use --filler-text classic)");
        return tok is Gpt2BpeTokenizer g ? TokenizerFiles.EncodeFileCached(g, path) : tok.Encode(File.ReadAllText(path), addSpecial: false);
    }

    static T[] ParseList<T>(string s, string name, Func<string, T> parse)
    {
        try { return [.. s.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).Select(parse)]; }
        catch (FormatException) { throw new PareException($"{name}: '{s}' is not a comma-separated list of numbers"); }
        catch (OverflowException) { throw new PareException($"{name}: '{s}' has a number out of range"); }
    }
}
