using System.CommandLine;
using Pare.Models.Bert;
using Pare.Rag;

namespace Pare.Cli.Commands;

/// <summary><c>pare index DIR -o INDEX</c>: passages of the folder's text files embedded with a sentence encoder (brute-force cosine index).</summary>
internal static class IndexCommand
{
    public const string DefaultEncoder = ".cache/models/all-MiniLM-L6-v2/model.onnx";

    public static Option<string> EncoderOption() => new("--encoder") { Description = "Sentence encoder (ONNX with vocab.txt beside it, sentence-transformers folder, or 'bert' GGUF; 'pare data models' extracts the default).", DefaultValueFactory = _ => DefaultEncoder };

    public static BertModel LoadEncoder(string path)
    {
        if (!File.Exists(path) && !Directory.Exists(path)) throw new PareException($"encoder not found: {path} (run 'pare data models')");
        return BertModel.Load(path);
    }

    public static Command Create()
    {
        var dir = new Argument<string>("dir") { Description = "Folder of UTF-8 text files (*.txt, *.md, searched recursively)." };
        var output = new Option<string>("--output", "-o") { Description = "Index file to write.", Required = true };
        var encoder = EncoderOption();
        var sentences = new Option<int>("--passage-sentences") { Description = "Sentences per passage.", DefaultValueFactory = _ => 5 }.AtLeast(1);
        var threads = Cli.Threads();
        var json = Cli.Json();
        var cmd = new Command("index", "Index a folder of text for 'pare rag': passages of a few sentences, embedded with a sentence encoder.") { dir, output, encoder, sentences, threads, json };
        cmd.SetAction((r, ct) => Cli.Guard(() =>
        {
            string d = r.GetValue(dir)!, o = r.GetValue(output)!;
            if (!Directory.Exists(d)) throw new PareException($"folder not found: {d}");
            if (Directory.Exists(o)) throw new PareException($"--output {o} is a folder");
            var e = new Embedder(LoadEncoder(r.GetValue(encoder)!), r.GetValue(threads));
            var index = PassageIndex.Build(e, r.GetValue(encoder)!, d, new IndexOptions { PassageSentences = r.GetValue(sentences) }, ct);
            index.Save(o);
            if (r.GetValue(json)) Cli.PrintJson(new { index = o, passages = index.Passages.Count, files = index.Passages.Select(p => p.Source).Distinct().Count(), dim = e.Dim });
            else Console.Out.WriteLine($"{o}: {index.Passages.Count} passages from {index.Passages.Select(p => p.Source).Distinct().Count()} files, {e.Dim}-dim vectors");
            return Task.FromResult(0);
        }));
        return cmd;
    }
}
