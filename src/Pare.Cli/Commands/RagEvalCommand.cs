using System.CommandLine;
using System.Globalization;
using Pare.Data;
using Pare.LongContext;
using Pare.Models.Bert;
using Pare.Pruning.Tokens;
using Pare.Rag;
using Pare.Tokenizers;

namespace Pare.Cli.Commands;

/// <summary>
/// <c>pare rag-eval --set cloze|needle</c>: the context-pruning measurements of issue #19 (docs/context-pruning.md).
/// cloze: answer-sentence recall per pruner and removal rate, reranking MRR and IDCM latency, XTR vs single-vector.
/// needle: the long-context needle tasks with the haystack pruned before the reader (accuracy, time to first token).
/// </summary>
internal static class RagEvalCommand
{
    public static Command Create()
    {
        var set = new Option<string>("--set") { Description = "cloze (set a), idcm (the IDCM latency/MRR sweep on set a) or needle (set b).", DefaultValueFactory = _ => "cloze" };
        set.AcceptOnlyFromAmong("cloze", "idcm", "needle");
        var text = new Option<string>("--text-file") { Description = "cloze: the split the questions come from.", DefaultValueFactory = _ => ".cache/data/corpus/test.txt" };
        var pool = new Option<int>("--pool") { Description = "cloze: passages in the pool.", DefaultValueFactory = _ => 300 }.AtLeast(2);
        var questions = new Option<int>("--questions") { Description = "cloze: questions.", DefaultValueFactory = _ => 40 }.AtLeast(1);
        var candidates = new Option<int>("--candidates") { Description = "cloze: candidates per question (gold + distractors).", DefaultValueFactory = _ => 8 }.AtLeast(2);
        var rescore = new Option<int>("--rescore") { Description = "cloze: candidates the IDCM cascade rescores with the full encoder.", DefaultValueFactory = _ => 3 }.AtLeast(1);
        var cascadePrune = new Option<string>("--cascade-prune") { Description = "cloze: token pruning of the cascade's cheap first stage: " + string.Join(", ", TokenPruners.Methods) + ".", DefaultValueFactory = _ => "zero-tprune" };
        cascadePrune.AcceptOnlyFromAmong([.. TokenPruners.Methods]);
        var cascadeKeep = new Option<float>("--cascade-keep") { Description = "cloze: tokens kept by the first stage after its pruning layer.", DefaultValueFactory = _ => 0.3f }
            .Check(v => float.IsFinite(v) && v > 0 && v <= 1, "in (0, 1]");
        var etm = new Option<string>("--etm") { Description = "idcm: the full model: sentence (MiniLM best-sentence cosine) or provence (joint pass, head's best sentence).", DefaultValueFactory = _ => "sentence" };
        etm.AcceptOnlyFromAmong("sentence", "provence");
        var esms = new Option<string>("--first-stages") { Description = "idcm: cheap first stages, comma-separated: bi-encoder, layers-N (MiniLM cut to N blocks), tokens (MiniLM token-pruned by --cascade-prune/--cascade-keep), provence-cls, sentences-K (1-block MiniLM picks K sentences per candidate, the full MiniLM scores them: a whole ranker, use with --rescores 1), bm25 (best sentence by BM25), bm25-sentences-K (BM25 picks the K sentences instead), or A+B (the sum of two stages' scores).", DefaultValueFactory = _ => "bi-encoder,layers-1,layers-2,tokens" };
        var rescores = new Option<string>("--rescores") { Description = "idcm: candidate counts the full model rescores, comma-separated.", DefaultValueFactory = _ => "1,2,3,4,5,6,7" };
        var xtrTokens = new Option<int>("--xtr-tokens") { Description = "cloze: XTR document tokens retrieved per query token (k').", DefaultValueFactory = _ => 100 }.AtLeast(1);
        var seed = new Option<ulong>("--seed") { Description = "Seed of the set.", DefaultValueFactory = _ => 7UL };
        var reader = new Option<string>("--reader") { Description = "needle: the reader model (GGUF).", DefaultValueFactory = _ => "models/pare-long.gguf" };
        var task = new Option<string>("--task") { Description = "needle: " + string.Join(", ", NeedleTasks.All.Select(NeedleTasks.Name)) + ".", DefaultValueFactory = _ => "passkey" };
        var lengths = new Option<string>("--lengths") { Description = "needle: prompt lengths, comma-separated.", DefaultValueFactory = _ => "2000" };
        var depths = new Option<string>("--depths") { Description = "needle: depths in 0..1, comma-separated.", DefaultValueFactory = _ => "0,0.5,1" };
        var trials = new Option<int>("--trials") { Description = "needle: trials per (length, depth).", DefaultValueFactory = _ => 4 }.AtLeast(1);
        var rate = new Option<float>("--rate") { Description = "needle: fraction of the haystack's tokens removed.", DefaultValueFactory = _ => 0.75f }
            .Check(v => float.IsFinite(v) && v > 0 && v < 1, "in (0, 1)");
        var pruners = new Option<string>("--pruners") { Description = "needle: pruners, comma-separated (" + string.Join(", ", RagCommand.Pruners) + ").", DefaultValueFactory = _ => "similarity,provence,coarse-to-fine" };
        var head = RagCommand.HeadOption();
        var encoder = IndexCommand.EncoderOption();
        var threads = Cli.Threads();
        var json = Cli.Json();
        var cmd = new Command("rag-eval", "Measure the context pruners: cloze set (answer-sentence recall, MRR, IDCM, XTR) or needle tasks with pruned haystacks.")
            { set, text, pool, questions, candidates, rescore, cascadePrune, cascadeKeep, etm, esms, rescores, xtrTokens, seed, reader, task, lengths, depths, trials, rate, pruners, head, encoder, threads, json };
        cmd.SetAction((r, ct) => Cli.Guard(() =>
        {
            bool asJson = r.GetValue(json);
            var e = new Embedder(IndexCommand.LoadEncoder(r.GetValue(encoder)!), r.GetValue(threads));
            if (r.GetValue(set) == "idcm")
            {
                int nc = r.GetValue(candidates);
                var ns = Parse(r.GetValue(rescores)!, "--rescores", int.Parse);
                if (ns.Length == 0 || ns.Any(n => n < 1 || n > nc)) throw new PareException($"--rescores: every count must be between 1 and --candidates ({nc})");
                string tp = r.GetValue(cascadePrune)!;
                float keep = r.GetValue(cascadeKeep);
                string tpName = $"{tp} keep {keep.ToString(CultureInfo.InvariantCulture)} after block 1";
                ITokenReducer Reducer() => TokenPruners.Create(tp, new TokenPruneOptions { Keep = keep, Layers = [1] });
                ProvenceHead? ph = null;
                ProvenceHead Head() => ph ??= ProvenceHead.Load(r.GetValue(head)!);
                int th = r.GetValue(threads), layers = e.Model.Config.Layers;
                IPassageScorer Stage(string n) => n switch
                {
                    _ when n.Contains('+') => new SumStage(Stage(n[..n.IndexOf('+')].Trim()), Stage(n[(n.IndexOf('+') + 1)..].Trim())),
                    "bi-encoder" => new BiEncoderStage(),
                    _ when n.StartsWith("sentences-", StringComparison.Ordinal) && int.TryParse(n[10..], CultureInfo.InvariantCulture, out int k) && k >= 1
                        => new SentenceCascadeStage(new BestSentenceStage(e.Model, th, 1), new BestSentenceStage(e.Model, th), k),
                    _ when n.StartsWith("bm25-sentences-", StringComparison.Ordinal) && int.TryParse(n[15..], CultureInfo.InvariantCulture, out int kb) && kb >= 1
                        => new SentenceCascadeStage(new Bm25Sentences(), new BestSentenceStage(e.Model, th), kb),
                    "bm25" => new Bm25Sentences(),
                    "tokens" => new BestSentenceStage(e.Model, th, 0, Reducer(), tpName),
                    "provence-cls" => new ProvenceClsStage(e, Head(), Reducer(), tpName),
                    _ when n.StartsWith("layers-", StringComparison.Ordinal) && int.TryParse(n[7..], CultureInfo.InvariantCulture, out int l) && l >= 1 && l <= layers
                        => (IPassageScorer)new BestSentenceStage(e.Model, th, l),
                    _ => throw new PareException($"--first-stages: unknown stage '{n}' (bi-encoder, layers-1..layers-{layers}, tokens, provence-cls, sentences-K, bm25, bm25-sentences-K, or A+B: the sum of two)"),
                };
                var stages = r.GetValue(esms)!.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).Select(Stage).ToList();
                if (stages.Count == 0) throw new PareException("--first-stages: no stage given");
                string path = r.GetValue(text)!;
                if (!File.Exists(path)) throw new PareException($"text file not found: {path} (run 'pare data fetch')");
                IPassageScorer full = r.GetValue(etm) == "provence" ? new ProvenceStage(e, Head()) : new BestSentenceStage(e.Model, th);
                var cs = ClozeSets.Build(PassageIndex.ReadText(path), new ClozeOptions { PoolSize = r.GetValue(pool), Questions = r.GetValue(questions), Seed = r.GetValue(seed) });
                var rep = Cli.WithProgress(asJson, "rag-eval idcm", p => IdcmSweep.Run(e, cs, full, stages, new IdcmSweepOptions { Candidates = nc, Rescore = ns }, p, ct));
                if (asJson) Cli.PrintJson(rep);
                else
                {
                    Console.Out.WriteLine($"IDCM on the cloze set: {rep.Questions} questions, {rep.Candidates} candidates; full model = {rep.Effective}: MRR {rep.FullMrr:F3}, {rep.FullMs:F0} ms/query");
                    foreach (var x in rep.Stages) Console.Out.WriteLine($"  stage alone: MRR {x.Mrr:F3} {x.MsPerQuery,8:F1} ms/query  {x.Stage}");
                    foreach (var x in rep.Points) Console.Out.WriteLine($"  top {x.Rescore}: MRR {x.Mrr:F3} (gold in top {x.Recall:P0}) {x.MsPerQuery,8:F1} ms/query  {x.Selection}");
                    Console.Out.WriteLine(rep.Cheapest is { } c
                        ? $"cheapest within {rep.Tolerance}: {c.Selection} -> full on top {c.Rescore}: MRR {c.Mrr:F3} vs {rep.FullMrr:F3}, {c.MsPerQuery:F0} vs {rep.FullMs:F0} ms/query ({rep.FullMs / c.MsPerQuery:F2}x)"
                        : $"no cascade within {rep.Tolerance} of the full model's MRR");
                }
                return Task.FromResult(0);
            }
            if (r.GetValue(set) == "cloze")
            {
                string path = r.GetValue(text)!;
                if (!File.Exists(path)) throw new PareException($"text file not found: {path} (run 'pare data fetch')");
                var h = ProvenceHead.Load(r.GetValue(head)!);
                var cs = ClozeSets.Build(PassageIndex.ReadText(path), new ClozeOptions { PoolSize = r.GetValue(pool), Questions = r.GetValue(questions), Seed = r.GetValue(seed) });
                string tp = r.GetValue(cascadePrune)!;
                float keep = r.GetValue(cascadeKeep);
                var reducer = TokenPruners.Create(tp, new TokenPruneOptions { Keep = keep, Layers = [1] });
                var rep = Cli.WithProgress(asJson, "rag-eval cloze", p => RagEvaluation.Run(e, h, cs, new RagEvalOptions
                {
                    Candidates = r.GetValue(candidates), CascadeRescore = r.GetValue(rescore), CascadeReducer = reducer,
                    CascadeReducerName = $"{tp} keep {keep.ToString(CultureInfo.InvariantCulture)} after block 1", XtrTokens = r.GetValue(xtrTokens),
                }, p, ct));
                if (asJson) Cli.PrintJson(rep);
                else Print(rep);
                return Task.FromResult(0);
            }
            var t = NeedleTasks.Parse(r.GetValue(task)!);
            var rd = r.GetValue(reader)!;
            if (!File.Exists(rd)) throw new PareException($"reader model not found: {rd}");
            using var m = Cli.Load(rd);
            var tok = m.Tokenizer ?? throw new PareException($"{rd}: the model has no tokenizer");
            var tt = new TokenText(tok);
            const string filler = ".cache/data/corpus/test.txt";
            if (!File.Exists(filler)) throw new PareException($"filler text not found: {filler} (run 'pare data fetch')");
            var fill = new Filler(tok is Gpt2BpeTokenizer g ? TokenizerFiles.EncodeFileCached(g, filler) : tok.Encode(File.ReadAllText(filler), addSpecial: false), tt);
            var names = r.GetValue(pruners)!.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
            var list = names.Select(n => RagCommand.Pruners.Contains(n) ? RagCommand.Create(n, e, r.GetValue(head)!) : throw new PareException($"--pruners: unknown pruner '{n}'")).ToList();
            var o = new NeedlePruneOptions
            {
                Needle = new NeedleOptions { Task = t, Lengths = Parse(r.GetValue(lengths)!, "--lengths", int.Parse), Depths = Parse(r.GetValue(depths)!, "--depths", s => double.Parse(s, CultureInfo.InvariantCulture)),
                    Trials = r.GetValue(trials), Seed = r.GetValue(seed), Threads = r.GetValue(threads) },
                Rate = r.GetValue(rate),
            };
            NeedleHarness.Validate(o.Needle, m.Config.ContextLength);
            var rows = Cli.WithProgress(asJson, "rag-eval needle", p => NeedlePruning.Run(m, tt, fill, list, o, p, ct));
            if (asJson) Cli.PrintJson(new { reader = rd, task = NeedleTasks.Name(t), rate = o.Rate, lengths = o.Needle.Lengths, depths = o.Needle.Depths, trials = o.Needle.Trials, rows });
            else
            {
                Console.Out.WriteLine($"{NeedleTasks.Name(t)} with {rd}, {rows[0].Trials} trials, {o.Rate:P0} of the haystack removed by the pruners");
                Console.Out.WriteLine($"{"method",-16} {"accuracy",9} {"needle kept",12} {"prompt tok",11} {"TTFT ms",9} {"prune ms",9}");
                foreach (var x in rows) Console.Out.WriteLine($"{x.Method,-16} {x.Accuracy,9:P0} {x.NeedleKept,12:P0} {x.PromptTokens,11:F0} {x.TtftMs,9:F0} {x.PruneMs,9:F0}");
            }
            return Task.FromResult(0);
        }));
        return cmd;
    }

    static void Print(RagEvalReport rep)
    {
        Console.Out.WriteLine($"cloze set: {rep.Questions} questions, {rep.Candidates} candidates each (mean {rep.MeanContextTokens:F0} encoder tokens), pool {rep.Pool} passages");
        var rates = rep.Recall.Select(x => x.Rate).Distinct().Order().ToList();
        Console.Out.WriteLine($"{"method",-16}" + string.Concat(rates.Select(x => $"  {x,8:P0} rm")) + "   own amount (recall @ kept)");
        foreach (var m in rep.Recall.Select(x => x.Method).Distinct())
        {
            var own = rep.OwnAmount.First(x => x.Method == m);
            Console.Out.WriteLine($"{m,-16}" + string.Concat(rates.Select(x => $"  {rep.Recall.First(y => y.Method == m && y.Rate == x).Recall,11:F3}")) + $"   {own.Recall:F3} @ {own.TokensKept:P0}");
        }
        foreach (var x in rep.Rerank) Console.Out.WriteLine($"MRR {x.Mrr:F3}  {x.MsPerQuery,8:F0} ms/query  {x.Method}");
        Console.Out.WriteLine($"recall@10 over the pool: single-vector {rep.SingleRecallAt10:F3} ({rep.SingleIndexBytes / 1024.0:F0} KiB), XTR {rep.XtrRecallAt10:F3} ({rep.XtrIndexBytes / 1024.0:F0} KiB, {rep.XtrTokens} tokens)");
        Console.Out.WriteLine($"{rep.Seconds:F0} s");
    }

    static T[] Parse<T>(string s, string name, Func<string, T> parse)
    {
        try { return [.. s.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).Select(parse)]; }
        catch (FormatException) { throw new PareException($"{name}: '{s}' is not a comma-separated list of numbers"); }
        catch (OverflowException) { throw new PareException($"{name}: '{s}' has a number out of range"); }
    }
}
