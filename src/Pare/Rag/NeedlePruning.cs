using System.Diagnostics;
using Pare.LongContext;
using Pare.Models;

namespace Pare.Rag;

/// <summary>Options of <see cref="NeedlePruning.Run"/>.</summary>
public sealed record NeedlePruneOptions
{
    /// <summary>The needle run (task, one or more lengths, depths, trials, seed, threads).</summary>
    public NeedleOptions Needle { get; init; } = new();
    /// <summary>Fraction of the haystack's tokens removed by the pruners. Default 0.75.</summary>
    public double Rate { get; init; } = 0.75;
    /// <summary>Haystack units (sentences or lines) per passage handed to the pruners. Default 8.</summary>
    public int UnitsPerPassage { get; init; } = 8;
}

/// <summary>One method's result on the needle tasks: accuracy, prompt tokens, time to first token (the reader's
/// prefill and first logits) and the pruner's own time, both means per trial; NeedleKept: share of trials whose pruned
/// prompt still holds every gold value (what the pruner can be judged by when the reader does not retrieve).</summary>
public sealed record NeedlePruneRow(string Method, double Accuracy, double NeedleKept, double PromptTokens, double TtftMs, double PruneMs, int Trials);

/// <summary>
/// Set (b) of issue #19: the long-context harness's needle tasks with the haystack pruned before the reader sees it.
/// The haystack's tokens are cut into units after each token that ends a sentence or a line; the units, decoded, are the
/// sentences of passages of <see cref="NeedlePruneOptions.UnitsPerPassage"/> units, and the question the pruners see is
/// the task's question. The kept units' original token ids, in order, replace the haystack; intro and question stay.
/// The reader answers greedily as in <see cref="NeedleHarness"/>; "full" is the unpruned prompt.
/// </summary>
public static class NeedlePruning
{
    public static List<NeedlePruneRow> Run(LlamaModel reader, TokenText text, Filler filler, IReadOnlyList<IContextPruner> pruners,
        NeedlePruneOptions o, IProgress<double>? progress = null, CancellationToken ct = default)
    {
        NeedleHarness.Validate(o.Needle, reader.Config.ContextLength);
        var session = reader.CreateSession(new SessionOptions { ContextLength = o.Needle.Lengths.Max() + NeedleHarness.AnswerTokens, Threads = o.Needle.Threads });
        var ends = new bool[text.Tokenizer.VocabSize];
        for (int id = 0; id < ends.Length; id++) { var b = text.Tokenizer.TokenBytes(id); ends[id] = b.Length > 0 && b[^1] is (byte)'.' or (byte)'\n' or (byte)'!' or (byte)'?'; }
        var methods = new List<string> { "full" };
        methods.AddRange(pruners.Select(p => p.Name));
        var acc = methods.ToDictionary(m => m, _ => (Score: 0.0, Kept: 0.0, Tokens: 0.0, Ttft: 0.0, Prune: 0.0));
        int trials = 0, total = o.Needle.Lengths.Count * o.Needle.Depths.Count * o.Needle.Trials, done = 0;
        string question = o.Needle.Task == NeedleTask.Passkey ? "What is the pass key?" : "";
        foreach (int length in o.Needle.Lengths)
            foreach (double depth in o.Needle.Depths)
                for (int t = 0; t < o.Needle.Trials; t++)
                {
                    ct.ThrowIfCancellationRequested();
                    var s = NeedleHarness.Sample(o.Needle, text, filler, length, depth, t);
                    int hs = s.HaystackStart, he = s.HaystackStart + s.HaystackLength;
                    string q = question.Length > 0 ? question : text.Decode(s.Prompt.AsSpan(he)).Trim();
                    // Units of the haystack.
                    var units = new List<int[]>();
                    for (int i = hs, start = hs; i < he; i++)
                        if (ends[s.Prompt[i]] || i == he - 1) { units.Add(s.Prompt[start..(i + 1)]); start = i + 1; }
                    var unitText = units.Select(u => text.Decode(u).Trim()).ToList();
                    var cands = new List<Candidate>();
                    for (int u0 = 0; u0 < units.Count; u0 += o.UnitsPerPassage)
                    {
                        var idx = Enumerable.Range(u0, Math.Min(o.UnitsPerPassage, units.Count - u0)).ToList();
                        cands.Add(new Candidate(new Passage("haystack", [.. idx.Select(i => unitText[i].Length == 0 ? "." : unitText[i])]), 0));
                    }
                    foreach (var m in methods)
                    {
                        int[] prompt;
                        double pruneMs = 0;
                        if (m == "full") prompt = s.Prompt;
                        else
                        {
                            var p = pruners.First(x => x.Name == m);
                            var sw = Stopwatch.StartNew();
                            var unitTokens = new Dictionary<string, int>(StringComparer.Ordinal);
                            for (int c = 0; c < cands.Count; c++)
                                for (int k = 0; k < cands[c].Passage.Sentences.Count; k++)
                                    unitTokens[cands[c].Passage.Sentences[k]] = Math.Max(unitTokens.GetValueOrDefault(cands[c].Passage.Sentences[k]), units[c * o.UnitsPerPassage + k].Length);
                            int budget = Math.Max(1, (int)Math.Round((1 - o.Rate) * (he - hs)));
                            var pc = p.Prune(new PruneRequest(q, cands, budget, x => unitTokens.GetValueOrDefault(x, 1)), ct);
                            pruneMs = sw.Elapsed.TotalMilliseconds;
                            var kept = new List<int>(s.Prompt[..hs]);
                            foreach (var (c, k) in pc.Kept.OrderBy(x => x.Candidate).ThenBy(x => x.Sentence)) kept.AddRange(units[c * o.UnitsPerPassage + k]);
                            kept.AddRange(s.Prompt[he..]);
                            prompt = [.. kept];
                        }
                        var (answer, ttft) = Answer(session, text, prompt, ct);
                        var a = acc[m];
                        string hay = text.Decode(prompt.AsSpan(0, prompt.Length - (s.Prompt.Length - he)));
                        double holds = s.Gold.All(g => hay.Contains(g, StringComparison.Ordinal)) ? 1 : 0;
                        acc[m] = (a.Score + NeedleScoring.Score(o.Needle.Task, answer, s.Gold), a.Kept + holds, a.Tokens + prompt.Length, a.Ttft + ttft, a.Prune + pruneMs);
                    }
                    trials++;
                    progress?.Report(++done / (double)total);
                }
        return [.. methods.Select(m => new NeedlePruneRow(m, acc[m].Score / trials, acc[m].Kept / trials, acc[m].Tokens / trials, acc[m].Ttft / trials, acc[m].Prune / trials, trials))];
    }

    /// <summary>Greedy answer as <see cref="NeedleHarness.Answer"/>, and the milliseconds to the first token (prefill + argmax).</summary>
    static (string Answer, double TtftMs) Answer(InferenceSession session, TokenText text, int[] prompt, CancellationToken ct)
    {
        var sw = Stopwatch.StartNew();
        session.Reset();
        var logits = session.Forward(prompt);
        int next = NeedleHarness.ArgMax(logits);
        double ttft = sw.Elapsed.TotalMilliseconds;
        var ids = new List<int>();
        for (int i = 0; i < NeedleHarness.AnswerTokens; i++)
        {
            ct.ThrowIfCancellationRequested();
            if (i > 0) next = NeedleHarness.ArgMax(logits);
            if (text.Tokenizer.EosId == next || text.Tokenizer.IsControl(next)) break;
            ids.Add(next);
            if (text.Decode([next]).Contains('\n')) break;
            if (i + 1 < NeedleHarness.AnswerTokens) logits = session.Forward([next]);
        }
        return (text.Decode([.. ids]), ttft);
    }
}
