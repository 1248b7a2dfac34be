using System.Diagnostics;
using Pare.Models;
using Pare.Speculative;

namespace Pare.Benchmarks;

/// <summary>
/// `draft-cost DRAFT_MODEL [threads]`: T_draft per drafted node of the tree drafters (fixed tree, DySpec) with the draft
/// session evaluating each level's new nodes only (incremental, the default) against re-evaluating the whole tree at
/// every level (the earlier behaviour), interleaved in one process; and the draft tokens evaluated per drafted node.
/// </summary>
static class DraftCost
{
    public static void Run(string[] args)
    {
        string path = args.Length > 0 ? args[0] : "models/pare-ref-draft.gguf";
        int threads = args.Length > 1 ? int.Parse(args[1], System.Globalization.CultureInfo.InvariantCulture) : 2;
        using var m = LlamaModel.Load(path);
        var tok = m.Tokenizer!;
        var ids = tok.Encode("The old lighthouse keeper walked along the shore every morning, counting the boats that came back from the sea. ");
        var history = Enumerable.Repeat(ids, 3).SelectMany(x => x).ToList();
        Console.WriteLine($"draft model {path}, {threads} threads, history {history.Count} tokens; median of 15 drafts after 5 warm-up");
        Console.WriteLine("drafter  budget  mode         ms/draft  us/node  draft tokens/node  passes/draft");
        foreach (int budget in new[] { 6, 12, 32 })
            foreach (string kind in new[] { "tree", "dyspec" })
                foreach (bool incremental in new[] { false, true })
                {
                    var runner = new DraftModelRunner(m, 512, threads) { Incremental = incremental };
                    IModelDrafter d = kind == "tree" ? new FixedDraftTree(runner) : new DySpec(runner);
                    d.Start(history, [], m.Config.VocabSize);
                    runner.Sync(history); // the prefix is cached, as between steps; timed drafts cost their tree only
                    var times = new List<double>();
                    long tokens = 0, passes = 0, nodes = 0;
                    for (int rep = 0; rep < 20; rep++)
                    {
                        long t0 = runner.TokensEvaluated, p0 = runner.Passes;
                        var sw = Stopwatch.StartNew();
                        var tree = d.Draft(history, budget);
                        double s = sw.Elapsed.TotalSeconds;
                        if (rep < 5) continue;
                        times.Add(s);
                        tokens += runner.TokensEvaluated - t0; passes += runner.Passes - p0; nodes += tree.Count - 1;
                    }
                    times.Sort();
                    double med = times[times.Count / 2];
                    int perDraft = (int)(nodes / times.Count);
                    Console.WriteLine($"{kind,-8} {budget,6}  {(incremental ? "incremental" : "whole tree"),-11} {med * 1e3,9:F2} {med * 1e6 / Math.Max(1, perDraft),8:F0} {(double)tokens / nodes,18:F2} {(double)passes / times.Count,13:F1}");
                }
    }
}
