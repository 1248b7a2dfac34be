using System.CommandLine;
using Pare.Rag;

namespace Pare.Cli.Commands;

/// <summary><c>pare rag-train -o HEAD</c>: trains the Provence head on cloze questions from the corpus's train split.</summary>
internal static class RagTrainCommand
{
    public static Command Create()
    {
        var output = new Option<string>("--output", "-o") { Description = "Head file to write (JSON).", DefaultValueFactory = _ => RagCommand.DefaultHead };
        var text = new Option<string>("--text-file") { Description = "Training text (blocks between blank lines are documents).", DefaultValueFactory = _ => ".cache/data/corpus/train.txt" };
        var questions = new Option<int>("--questions") { Description = "Training questions (each: one positive and one negative joint pass).", DefaultValueFactory = _ => 300 }.AtLeast(4);
        var steps = new Option<int>("--steps") { Description = "Adam steps of each logistic head.", DefaultValueFactory = _ => 400 }.AtLeast(1);
        var seed = new Option<ulong>("--seed") { Description = "Seed of the question draw.", DefaultValueFactory = _ => 11UL };
        var encoder = IndexCommand.EncoderOption();
        var threads = Cli.Threads();
        var json = Cli.Json();
        var cmd = new Command("rag-train", "Train the Provence-style sentence-relevance and rerank head on the frozen encoder (cloze questions from the train split).") { output, text, questions, steps, seed, encoder, threads, json };
        cmd.SetAction((r, ct) => Cli.Guard(() =>
        {
            string path = r.GetValue(text)!;
            if (!File.Exists(path)) throw new PareException($"text file not found: {path} (run 'pare data fetch')");
            var e = new Embedder(IndexCommand.LoadEncoder(r.GetValue(encoder)!), r.GetValue(threads));
            var sw = System.Diagnostics.Stopwatch.StartNew();
            var res = Cli.WithProgress(r.GetValue(json), "rag-train", p => ProvenceTraining.Train(e, PassageIndex.ReadText(path),
                new ProvenceTrainingOptions { Questions = r.GetValue(questions), Steps = r.GetValue(steps), Seed = r.GetValue(seed) }, p, ct));
            res.Head.Save(r.GetValue(output)!);
            if (r.GetValue(json)) Cli.PrintJson(new { output = r.GetValue(output), passages = res.Examples, sentences = res.SentenceExamples, sentence_train_accuracy = res.SentenceAccuracy, rerank_train_accuracy = res.RerankAccuracy, seconds = sw.Elapsed.TotalSeconds });
            else Console.Out.WriteLine($"{r.GetValue(output)}: {res.Examples} passages, {res.SentenceExamples} sentences; train accuracy sentence {res.SentenceAccuracy:F3}, rerank {res.RerankAccuracy:F3} ({sw.Elapsed.TotalSeconds:F0} s)");
            return Task.FromResult(0);
        }));
        return cmd;
    }
}
