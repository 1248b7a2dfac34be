using System.CommandLine;
using Pare.Rag;

namespace Pare.Cli.Commands;

/// <summary><c>pare rag INDEX --question Q [--pruner P] [--budget N]</c>: retrieve, prune the context, print the reader's prompt.</summary>
internal static class RagCommand
{
    public static readonly string[] Pruners = ["none", "top-k", "similarity", "provence", "crag", "coarse-to-fine"];
    public const string DefaultHead = "models/provence-minilm.json";

    public static IContextPruner Create(string name, Embedder e, string headPath) => name switch
    {
        "none" => new NoPruning(),
        "top-k" => new TopKPassages(),
        "similarity" => new SimilarityThreshold(e),
        "provence" => new ProvencePruner(e, ProvenceHead.Load(headPath)),
        "crag" => new CragPruner(e),
        "coarse-to-fine" => new CoarseToFine(e),
        _ => throw new PareException($"unknown pruner '{name}'"),
    };

    public static Option<string> HeadOption() => new("--head") { Description = "Provence head (JSON from 'pare rag-train').", DefaultValueFactory = _ => DefaultHead };

    public static Command Create()
    {
        var index = new Argument<string>("index") { Description = "Index file from 'pare index'." };
        var question = new Option<string>("--question", "-q") { Description = "The question.", Required = true };
        var pruner = new Option<string>("--pruner") { Description = "Context pruner: " + string.Join(", ", Pruners) + ".", DefaultValueFactory = _ => "provence" };
        pruner.AcceptOnlyFromAmong(Pruners);
        var topK = new Option<int>("--top-k", "-k") { Description = "Passages retrieved.", DefaultValueFactory = _ => 8 }.AtLeast(1);
        var budget = new Option<int?>("--budget") { Description = "Most context tokens (encoder tokens) kept; default: the pruner's own amount." }.AtLeast(1);
        var head = HeadOption();
        var encoder = IndexCommand.EncoderOption();
        var threads = Cli.Threads();
        var json = Cli.Json();
        var cmd = new Command("rag", "Retrieve passages for a question from an index, prune them, and print the reader's prompt.") { index, question, pruner, topK, budget, head, encoder, threads, json };
        cmd.SetAction((r, ct) => Cli.Guard(() =>
        {
            var idx = PassageIndex.Load(r.GetValue(index)!);
            var e = new Embedder(IndexCommand.LoadEncoder(r.GetValue(encoder)!), r.GetValue(threads));
            string q = r.GetValue(question)!;
            e.CheckQuestion(q);
            var p = Create(r.GetValue(pruner)!, e, r.GetValue(head)!);
            var cands = idx.Search(e.Embed([q], null, ct)[0], r.GetValue(topK));
            var req = new PruneRequest(q, cands, r.GetValue(budget) ?? int.MaxValue, s => e.Pieces(s).Length);
            var pc = p.Prune(req, ct);
            string prompt = ReaderPrompt.Build(q, pc.Texts(req));
            if (r.GetValue(json))
                Cli.PrintJson(new
                {
                    question = q, pruner = p.Name, tokens_before = req.TotalTokens, tokens_kept = pc.TokensKept,
                    passages = cands.Select((c, i) => new { source = c.Passage.Source, score = c.Score, rerank = pc.PassageScores[i],
                        kept = pc.Kept.Where(k => k.Candidate == i).Select(k => k.Sentence) }),
                    prompt,
                });
            else
            {
                Console.Out.WriteLine(prompt);
                Console.Error.WriteLine($"pare: {p.Name} kept {pc.TokensKept} of {req.TotalTokens} context tokens ({pc.Kept.Count} sentences of {cands.Count} passages)");
            }
            return Task.FromResult(0);
        }));
        return cmd;
    }
}
