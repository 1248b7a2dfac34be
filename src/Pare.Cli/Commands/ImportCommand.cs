using System.CommandLine;
using Pare.Models.Bert;

namespace Pare.Cli.Commands;

/// <summary><c>pare import onnx MODEL.onnx -o DIR|FILE.gguf</c>: a BERT encoder from ONNX to safetensors or GGUF.</summary>
internal static class ImportCommand
{
    public static Command Create()
    {
        var model = new Argument<string>("model") { Description = "ONNX file of a BERT encoder; vocab.txt (and the sentence-transformers files, if any) beside it." };
        var output = new Option<string>("--out", "-o") { Description = "Output: FILE.gguf (llama.cpp 'bert' layout) or a folder (model.safetensors, config.json, vocab.txt, pooling config).", Required = true };
        var json = Cli.Json();
        var onnx = new Command("onnx", "Import a BERT encoder from ONNX (e.g. the sentence-transformers NuGet packages, see 'pare data models').") { model, output, json };
        onnx.SetAction(r => Cli.Guard(() =>
        {
            string src = r.GetValue(model)!, dst = r.GetValue(output)!;
            var sw = System.Diagnostics.Stopwatch.StartNew();
            var (c, t, vocab) = BertFiles.LoadOnnx(src);
            bool gguf = dst.EndsWith(".gguf", StringComparison.OrdinalIgnoreCase);
            if (gguf) BertFiles.SaveGguf(c, t, vocab, dst);
            else
            {
                // Written beside the target and moved into place: a failure leaves no half-written folder.
                string full = Path.GetFullPath(dst).TrimEnd(Path.DirectorySeparatorChar);
                string tmp = full + ".tmp-" + Environment.ProcessId;
                if (Directory.Exists(tmp)) Directory.Delete(tmp, true);
                BertFiles.SaveHf(c, t, vocab, tmp);
                if (Directory.Exists(full)) Directory.Delete(full, true);
                Directory.Move(tmp, full);
            }
            if (r.GetValue(json))
                Cli.PrintJson(new { output = dst, format = gguf ? "gguf" : "safetensors", layers = c.Layers, hidden = c.Dim, heads = c.Heads, ffn = c.FfnDim, vocab = c.VocabSize, positions = c.MaxPositions, pooling = c.Pooling.ToString().ToLowerInvariant(), normalize = c.Normalize, max_seq_length = c.SeqLimit, seconds = sw.Elapsed.TotalSeconds });
            else
                Console.Out.WriteLine($"{dst}: BERT {c.Layers} layers, hidden {c.Dim}, {c.Heads} heads, ffn {c.FfnDim}, vocab {c.VocabSize}, {c.Pooling.ToString().ToLowerInvariant()} pooling{(c.Normalize ? ", normalized" : "")}, max {c.SeqLimit} tokens ({sw.Elapsed.TotalSeconds:F1} s)");
            return 0;
        }));
        return new Command("import", "Convert models from other formats.") { onnx };
    }
}
