using System.CommandLine;
using Pare.Data;
using Pare.Evaluation;
using Pare.Tokenizers;

namespace Pare.Cli.Commands;

/// <summary>
/// <c>pare ppl MODEL --text-file F [--ctx N] [--stride S]</c>: perplexity of a model on a text (see <see cref="Perplexity"/>);
/// <c>pare ngram --model M --train F --test F</c>: the interpolated Kneser-Ney trigram baseline with M's tokenizer.
/// </summary>
internal static class PplCommand
{
    public static Command Create()
    {
        var model = Cli.ModelArgument();
        var file = new Option<FileInfo>("--text-file", "-f") { Description = "UTF-8 text to score (e.g. .cache/data/corpus/test.txt).", Required = true };
        var ctx = new Option<int?>("--ctx") { Description = "Window length in tokens (default: the model's context length); past the trained context it warns." }.Between(2, 1 << 20);
        var stride = new Option<int?>("--stride") { Description = "Distance between window starts (default: the window length, no overlap)." }.AtLeast(1);
        var threads = Cli.Threads();
        var kvType = Cli.KvType();
        var kvPolicy = Cli.KvPolicy();
        var kvBudget = Cli.KvBudget();
        var selCache = Cli.KvSelectionCache();
        var json = Cli.Json();
        var cmd = new Command("ppl", "Perplexity of a model on a text: windows of the context length, predicting tokens 1..L-1 of each.") { model, file, ctx, stride, threads, kvType, kvPolicy, kvBudget, selCache, json };
        cmd.SetAction((r, ct) => Cli.Guard(() =>
        {
            bool asJson = r.GetValue(json);
            string text = ReadText(r.GetValue(file)!);
            using var m = Cli.Load(r.GetValue(model)!);
            var tok = m.Tokenizer ?? throw new PareException($"{m.Source}: the model has no tokenizer");
            var ids = Cli.Abandonable(() => tok.Encode(text, addSpecial: true), ct);
            Cli.CheckContext(r.GetValue(ctx), m);
            int window = r.GetValue(ctx) ?? m.Config.ContextLength;
            string policyName = r.GetValue(kvPolicy)!;
            int? budget = r.GetValue(kvBudget);
            double? cache = Cli.SelectionCache(r.GetValue(selCache));
            _ = Cli.MakeKvPolicy(policyName, budget, m, window, cache);   // bad input fails here, before any work
            Func<int, Pare.Models.Kv.IKvPolicy>? factory = policyName == "full" && budget == null && cache == null ? null
                : c => Pare.LongContext.KvPolicies.KvPolicy.Create(policyName, Math.Min(budget ?? c, c), m.Config, c, selectionCache: cache);
            var options = new PerplexityOptions { Context = r.GetValue(ctx), Stride = r.GetValue(stride), Threads = r.GetValue(threads), KvType = r.GetValue(kvType), KvPolicy = factory };
            var res = Cli.WithProgress(asJson, "perplexity", p => Perplexity.Evaluate(m, ids, options, p, ct));
            if (asJson) Cli.PrintJson(new { ppl = res.Ppl, tokens = res.Tokens, windows = res.Windows, nll = res.MeanNll });
            else Console.Out.WriteLine($"ppl {res.Ppl:F3} over {res.Tokens} tokens in {res.Windows} windows (mean NLL {res.MeanNll:F4} nats)");
            return Task.FromResult(0);
        }));
        return cmd;
    }

    public static Command CreateNgram()
    {
        var model = new Option<string>("--model", "-m") { Description = "GGUF whose tokenizer to use (a model or a tokenizer-only file).", Required = true };
        var train = new Option<FileInfo>("--train") { Description = "Training text (e.g. .cache/data/corpus/train.txt).", Required = true };
        var test = new Option<FileInfo>("--test") { Description = "Text to score (e.g. .cache/data/corpus/test.txt).", Required = true };
        var json = Cli.Json();
        var cmd = new Command("ngram", "Perplexity of an interpolated Kneser-Ney token trigram model (the baseline of the reference models).") { model, train, test, json };
        cmd.SetAction(r => Cli.Guard(() =>
        {
            var spec = TokenizerFiles.Load(r.GetValue(model)!);
            var tok = TokenizerFactory.FromSpec(spec);
            string trainPath = r.GetValue(train)!.FullName;
            if (!File.Exists(trainPath)) throw new PareException($"text file not found: {trainPath}");
            int[] trainIds = tok is Gpt2BpeTokenizer g ? TokenizerFiles.EncodeFileCached(g, trainPath) : tok.Encode(File.ReadAllText(trainPath), addSpecial: false);
            if (trainIds.Length < 3) throw new PareException($"{trainPath}: {trainIds.Length} tokens, too few to train a trigram model");
            var testIds = tok.Encode(ReadText(r.GetValue(test)!), addSpecial: true);
            if (testIds.Count(id => id != tok.BosId) < 2) throw new PareException($"{r.GetValue(test)!.FullName}: too few tokens to score");
            var kn = new KneserNey(trainIds, tok.VocabSize);
            var res = kn.Evaluate(testIds);
            if (r.GetValue(json)) Cli.PrintJson(new { ppl = res.Ppl, tokens = res.Tokens, nll = res.MeanNll, train_tokens = trainIds.Length, discounts = new[] { kn.D1, kn.D2, kn.D3 } });
            else Console.Out.WriteLine($"3-gram KN ppl {res.Ppl:F3} over {res.Tokens} tokens (trained on {trainIds.Length} tokens; D = {kn.D1:F3}, {kn.D2:F3}, {kn.D3:F3})");
            return 0;
        }));
        return cmd;
    }

    static string ReadText(FileInfo f) => f.Exists ? File.ReadAllText(f.FullName) : throw new PareException($"text file not found: {f.FullName}");
}
