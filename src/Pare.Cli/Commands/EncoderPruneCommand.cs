using System.CommandLine;
using System.Globalization;
using Pare.Data;
using Pare.Models.Bert;
using Pare.Pruning;

namespace Pare.Cli.Commands;

/// <summary><c>pare prune-encoder MODEL --method M --sparsity S [--pattern N:M] -o OUT</c>: weight pruning of a BERT encoder.</summary>
internal static class EncoderPruneCommand
{
    public static Command Create()
    {
        var model = new Argument<string>("model") { Description = "BERT encoder: a sentence-transformers folder, a 'bert' GGUF, or an ONNX file with vocab.txt beside it." };
        var method = new Option<string>("--method", "-m") { Description = "magnitude, wanda, sparsegpt or obert (block-wise OBS, empirical Fisher of per-sentence gradients; block 50, dampening 1e-5 x mean diagonal).", DefaultValueFactory = _ => "sparsegpt" };
        var sparsity = new Option<double>("--sparsity", "-s") { Description = "Fraction of each linear layer's weights removed, in [0, 1).", DefaultValueFactory = _ => 0.5 };
        var pattern = new Option<string?>("--pattern") { Description = "'unstructured' (default) or N:M, e.g. 2:4 (N kept of every M inputs)." };
        var calibFile = new Option<string>("--calib-file") { Description = "Calibration text, one or more sentences per line (a training split, never the test split).", DefaultValueFactory = _ => Path.Combine(".cache", "data", "corpus", "train.txt") };
        var samples = new Option<int>("--samples") { Description = "Calibration sentences drawn from the file.", DefaultValueFactory = _ => 128 };
        var threads = Cli.Threads();
        var output = new Option<string>("--output", "-o") { Description = "Output: FILE.gguf (llama.cpp 'bert' layout, zeros stored) or a sentence-transformers folder.", Required = true };
        var json = Cli.Json();
        var cmd = new Command("prune-encoder", "Prune the linear layers of a BERT sentence encoder (calibration sentences run through the blocks in order).") { model, method, sparsity, pattern, calibFile, samples, threads, output, json };
        cmd.SetAction((r, ct) => Cli.Guard(() =>
        {
            var m = r.GetValue(method)!.ToLowerInvariant() switch
            {
                "magnitude" => PruneMethod.Magnitude,
                "wanda" => PruneMethod.Wanda,
                "sparsegpt" => PruneMethod.SparseGpt,
                "obert" => PruneMethod.OBert,
                var other => throw new PareException($"unknown method '{other}' (magnitude, wanda, sparsegpt, obert)"),
            };
            double s = r.GetValue(sparsity);
            if (!(s >= 0 && s < 1)) throw new PareException($"sparsity {s.ToString(CultureInfo.InvariantCulture)} is not in [0, 1)");
            var pat = SparsityPattern.Parse(r.GetValue(pattern), s);
            var dense = BertModel.Load(r.GetValue(model)!);
            int[][] calib = [];
            if (m != PruneMethod.Magnitude)
            {
                string f = r.GetValue(calibFile)!;
                if (!File.Exists(f)) throw new PareException($"calibration file not found: {f} (give --calib-file, or run 'pare data fetch')");
                int n = r.GetValue(samples);
                if (n < 1) throw new PareException($"--samples {n} must be at least 1");
                calib = [.. SentenceSample.Draw(File.ReadAllText(f), n, seed: 1).Select(t => dense.Tokenize(t).Ids)];
            }
            var sw = System.Diagnostics.Stopwatch.StartNew();
            var pruned = Cli.WithProgress(r.GetValue(json), "pruning", p => BertPruner.Prune(dense, calib, new BertPruneOptions { Method = m, Pattern = pat, Threads = r.GetValue(threads) }, p, ct));
            string dst = r.GetValue(output)!;
            var c = dense.Config;
            if (dst.EndsWith(".gguf", StringComparison.OrdinalIgnoreCase)) BertFiles.SaveGguf(c, pruned, dense.Tokenizer.Vocab, dst);
            else
            {
                string full = Path.GetFullPath(dst).TrimEnd(Path.DirectorySeparatorChar);
                string tmp = full + ".tmp-" + Environment.ProcessId;
                if (Directory.Exists(tmp)) Directory.Delete(tmp, true);
                BertFiles.SaveHf(c, pruned, dense.Tokenizer.Vocab, tmp);
                if (Directory.Exists(full)) Directory.Delete(full, true);
                Directory.Move(tmp, full);
            }
            double got = BertPruner.Sparsity(c, pruned);
            if (r.GetValue(json)) Cli.PrintJson(new { output = dst, method = m.ToString().ToLowerInvariant(), pattern = pat.ToString(), sparsity = got, calibration_sentences = calib.Length, seconds = sw.Elapsed.TotalSeconds });
            else Console.Out.WriteLine($"{dst}: {m.ToString().ToLowerInvariant()} {pat}, linear layers {got:P1} zero, {calib.Length} calibration sentences, {sw.Elapsed.TotalSeconds:F1} s");
            return Task.FromResult(0);
        }));
        return cmd;
    }
}
