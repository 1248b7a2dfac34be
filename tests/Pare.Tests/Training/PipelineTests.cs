using Pare.Data;
using Pare.Tests.TestSupport;

namespace Pare.Tests.Training;

/// <summary>The reference-model pipeline end to end through the CLI, small: fetch, tokenizer, a few training steps, ppl, baseline.</summary>
public class PipelineTests
{
    [Fact]
    public void Fetch_tokenizer_train_ppl_and_ngram_run_through_the_cli()
    {
        string cache = TestCorpus.CacheDir;
        var fetch = PareCli.Run("data", "fetch", "--cache", cache, "--json");
        Assert.True(fetch.ExitCode == 0, fetch.Stderr);
        Assert.Equal(44, fetch.Json.GetProperty("documents").GetProperty("test").GetInt32());
        var info = CorpusFetcher.Fetch(new FetchOptions { CacheDir = cache });
        Assert.Equal(info.TestPath, fetch.Json.GetProperty("test").GetString());
        // A small slice of the real splits keeps the run short.
        string dir = Directory.CreateTempSubdirectory("pare-pipeline-").FullName;
        string small = Path.Combine(dir, "data");
        Directory.CreateDirectory(Path.Combine(small, "corpus"));
        File.WriteAllText(Path.Combine(small, "corpus", "train.txt"), File.ReadAllText(info.TrainPath)[..400_000]);
        File.WriteAllText(Path.Combine(small, "corpus", "valid.txt"), File.ReadAllText(info.ValidPath)[..40_000]);
        File.WriteAllText(Path.Combine(small, "corpus", "test.txt"), File.ReadAllText(info.TestPath)[..20_000]);

        var tok = PareCli.Run("data", "tokenizer", "--cache", small, "--vocab", "600", "--json");
        Assert.True(tok.ExitCode == 0, tok.Stderr);
        string tokPath = tok.Json.GetProperty("path").GetString()!;
        Assert.Equal(600, tok.Json.GetProperty("vocab").GetInt32());

        string config = Path.Combine(dir, "tiny.json");
        File.WriteAllText(config, $$"""
            { "name": "tiny", "model": { "dim": 64, "layers": 2, "heads": 4, "kv_heads": 2, "ffn_dim": 128, "context_length": 64 },
              "tokenizer": "{{tokPath}}", "train_text": "{{small}}/corpus/train.txt", "valid_text": "{{small}}/corpus/valid.txt",
              "out_dir": "{{dir}}/run", "steps": 4, "batch_size": 4, "micro_batch": 2, "seq_len": 64, "warmup_steps": 1,
              "eval_every": 2, "eval_sequences": 4, "checkpoint_every": 2, "threads": 2 }
            """);
        var first = PareCli.Run("train", "--config", config, "--steps", "2", "--json");
        Assert.True(first.ExitCode == 0, first.Stderr);
        Assert.Equal(2, first.Json.GetProperty("step").GetInt32());
        var rest = PareCli.Run("train", "--config", config, "--resume", "--json");
        Assert.True(rest.ExitCode == 0, rest.Stderr);
        Assert.Equal(4, rest.Json.GetProperty("step").GetInt32());
        Assert.True(rest.Json.GetProperty("tok_s").GetDouble() > 0);
        string model = rest.Json.GetProperty("exported").GetString()!;
        Assert.True(File.Exists(model));

        string test = Path.Combine(small, "corpus", "test.txt");
        var ppl = PareCli.Run("ppl", model, "--text-file", test, "--json");
        Assert.True(ppl.ExitCode == 0, ppl.Stderr);
        double p = ppl.Json.GetProperty("ppl").GetDouble();
        Assert.InRange(p, 1, 600 * 3); // barely trained: near the vocabulary size, not absurd
        Assert.True(ppl.Json.GetProperty("windows").GetInt32() > 0);

        var ngram = PareCli.Run("ngram", "--model", model, "--train", Path.Combine(small, "corpus", "train.txt"), "--test", test, "--json");
        Assert.True(ngram.ExitCode == 0, ngram.Stderr);
        Assert.InRange(ngram.Json.GetProperty("ppl").GetDouble(), 2, 600);

        var missing = PareCli.Run("train", "--config", Path.Combine(dir, "nope.json"));
        Assert.Equal(1, missing.ExitCode);
        Assert.StartsWith("pare: error:", missing.Stderr, StringComparison.Ordinal);
    }
}
