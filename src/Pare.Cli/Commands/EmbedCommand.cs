using System.CommandLine;
using System.Globalization;
using Pare.Models.Bert;
using Pare.Pruning.Tokens;

namespace Pare.Cli.Commands;

/// <summary><c>pare embed MODEL --text-file F [--json]</c>: one sentence vector per line of input.</summary>
internal static class EmbedCommand
{
    public static Command Create()
    {
        var model = new Argument<string>("model") { Description = "BERT encoder: a sentence-transformers folder, a 'bert' GGUF, or an ONNX file with vocab.txt beside it." };
        var file = new Option<FileInfo>("--text-file", "-f") { Description = "UTF-8 text, one input per line (no empty lines).", Required = true };
        var batch = new Option<int>("--batch") { Description = "Sentences per forward pass.", DefaultValueFactory = _ => 32 };
        var threads = Cli.Threads();
        var json = Cli.Json();
        var prune = new Option<string?>("--token-prune") { Description = "Prune or merge tokens inside the encoder: " + string.Join(", ", TokenPruners.Methods) + "." };
        prune.AcceptOnlyFromAmong(TokenPruners.Methods);
        var keep = new Option<float>("--keep") { Description = "With --token-prune: fraction of tokens ([CLS]/[SEP] aside) kept after the last pruning layer.", DefaultValueFactory = _ => 0.5f }
            .Check(v => float.IsFinite(v) && v > 0 && v <= 1, "in (0, 1]");
        var layers = new Option<int[]>("--prune-layer") { Description = "With --token-prune: 0-based block(s) after whose attention tokens are reduced (repeat for several).", DefaultValueFactory = _ => [3] };
        var cmd = new Command("embed", "Sentence embeddings with a BERT encoder (pooling and normalization as its sentence-transformers config says).") { model, file, batch, threads, json, prune, keep, layers };
        cmd.SetAction((r, ct) => Cli.Guard(() =>
        {
            var f = r.GetValue(file)!;
            if (!f.Exists) throw new PareException($"text file not found: {f.FullName}");
            var lines = File.ReadAllLines(f.FullName);
            if (lines.Length == 0) throw new PareException($"{f.FullName}: no lines to embed");
            for (int i = 0; i < lines.Length; i++)
                if (string.IsNullOrWhiteSpace(lines[i])) throw new PareException($"{f.FullName}: line {i + 1} is empty; give one text per line");
            string? method = r.GetValue(prune);
            var layerList = r.GetValue(layers) ?? [3];
            if (method == null && (r.GetResult(keep) is { Implicit: false } || r.GetResult(layers) is { Implicit: false }))
                throw new PareException("--keep and --prune-layer need --token-prune METHOD");
            var m = BertModel.Load(r.GetValue(model)!);
            foreach (int l in layerList)
                if (l < 0 || l >= m.Config.Layers) throw new PareException($"--prune-layer must be between 0 and {m.Config.Layers - 1} for this model (got {l})");
            var reducer = method == null ? null : TokenPruners.Create(method, new TokenPruneOptions { Keep = r.GetValue(keep), Layers = layerList });
            var res = m.Embed(lines, new EmbedOptions { Threads = r.GetValue(threads), BatchSize = r.GetValue(batch), TokenReducer = reducer }, ct);
            if (res.Truncated.Count > 0)
                Console.Error.WriteLine($"pare: warning: {res.Truncated.Count} line(s) longer than {m.Config.SeqLimit} tokens were truncated (first: line {res.Truncated[0] + 1})");
            bool asJson = r.GetValue(json);
            using var w = new StreamWriter(Console.OpenStandardOutput()) { AutoFlush = false };
            for (int i = 0; i < lines.Length; i++)
            {
                string vec = string.Join(asJson ? "," : " ", res.Vectors[i].Select(v => v.ToString("R", CultureInfo.InvariantCulture)));
                w.WriteLine(asJson ? $"{{\"line\":{i + 1},\"tokens\":{res.TokenIds[i].Length},\"embedding\":[{vec}]}}" : vec);
            }
            return Task.FromResult(0);
        }));
        return cmd;
    }
}
