using System.CommandLine;
using System.Globalization;
using Pare.Models.Bert;

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
        var cmd = new Command("embed", "Sentence embeddings with a BERT encoder (pooling and normalization as its sentence-transformers config says).") { model, file, batch, threads, json };
        cmd.SetAction((r, ct) => Cli.Guard(() =>
        {
            var f = r.GetValue(file)!;
            if (!f.Exists) throw new PareException($"text file not found: {f.FullName}");
            var lines = File.ReadAllLines(f.FullName);
            if (lines.Length == 0) throw new PareException($"{f.FullName}: no lines to embed");
            for (int i = 0; i < lines.Length; i++)
                if (string.IsNullOrWhiteSpace(lines[i])) throw new PareException($"{f.FullName}: line {i + 1} is empty; give one text per line");
            var m = BertModel.Load(r.GetValue(model)!);
            var res = m.Embed(lines, new EmbedOptions { Threads = r.GetValue(threads), BatchSize = r.GetValue(batch) }, ct);
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
