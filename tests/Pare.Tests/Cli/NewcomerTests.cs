using System.Globalization;
using Pare.Formats.Gguf;
using Pare.Models;
using Pare.Tensors;
using Pare.Tests.Pruning;
using Pare.Tests.TestSupport;
using Pare.Tokenizers;

namespace Pare.Tests.Cli;

/// <summary>The defects a newcomer's first run found (issue 17), one test each: each of these failed before its fix.</summary>
public class NewcomerTests
{
    static string Model() => TestModels.Get("cli", TestModels.OracleShapes[1].Config, GgmlType.F32);
    static string Inv(double v) => v.ToString(CultureInfo.InvariantCulture);

    static void AssertOneLineError(PareCli.Result r, string contains)
    {
        Assert.True(r.ExitCode == 1, $"exit {r.ExitCode}: {r.Stdout} {r.Stderr}");
        Assert.True(r.ErrorLines.Length == 1, r.Stderr);
        Assert.StartsWith("pare: error:", r.ErrorLines[0]);
        Assert.Contains(contains, r.ErrorLines[0]);
        Assert.Equal("", r.Stdout);
    }

    // 1. Text that is not markup: tensor shapes ("[64, 512]"), file names, prompt categories.
    [Fact]
    public void Info_lists_tensors_in_text_mode_and_takes_any_file_name()
    {
        string dir = Directory.CreateTempSubdirectory("info-").FullName, odd = Path.Combine(dir, "model [v1] [b].gguf");
        File.Copy(Model(), odd);
        var r = PareCli.Run("info", odd, "--tensors");
        Assert.True(r.ExitCode == 0, r.Stderr);
        Assert.Contains("[64, 512]", r.Stdout);
        Assert.Contains("blk.2.ffn_down.weight", r.Stdout);
        Assert.Contains("[v1]", r.Stdout);
    }

    [Fact]
    public void Bench_spec_prints_any_category_name()
    {
        string f = Path.Combine(Directory.CreateTempSubdirectory("spec-").FullName, "p.jsonl");
        File.WriteAllLines(f, ["{\"category\":\"[bold]tricky[/] [x]\",\"prompt\":\"ab ab ab ab\"}"]);
        var r = PareCli.Run("bench-spec", Model(), "--prompts", f, "-n", "4", "--max-tree", "4", "--drafters", "pld");
        Assert.True(r.ExitCode == 0, r.Stderr);
        Assert.Contains("[bold]tricky[/] [x]", r.Stdout);
    }

    // 3-5. Values out of range: one line, exit 1, before any work.
    [Theory]
    [InlineData("--vocab", "10")]
    [InlineData("--vocab", "-5")]
    public void Data_tokenizer_refuses_a_vocabulary_too_small(string option, string value) =>
        AssertOneLineError(PareCli.Run("data", "tokenizer", option, value, "--out", Path.Combine(Path.GetTempPath(), "never.gguf")), "--vocab must be between 258");

    [Theory]
    [InlineData("--max-tokens", "0", "at least 1")]
    [InlineData("--max-tokens", "-1", "at least 1")]
    [InlineData("--temp", "-1", "between 0 and 100")]
    [InlineData("--temp", "NaN", "between 0 and 100")]
    [InlineData("--threads", "1000", "--threads must be between 1 and")]
    [InlineData("--ctx", "0", "--ctx must be between 2")]
    public void Run_refuses_out_of_range_values(string option, string value, string message) =>
        AssertOneLineError(PareCli.Run("run", Model(), "-p", "hi", option, value), message);

    [Fact]
    public void Bench_refuses_a_thread_count_past_four_per_core() =>
        AssertOneLineError(PareCli.Run("bench", Model(), "--threads", "1000"), $"between 1 and {4 * Environment.ProcessorCount}");

    // 6. Past the trained context: a warning, and the run goes on.
    [Fact]
    public void Ppl_and_run_warn_past_the_trained_context()
    {
        string text = Path.Combine(Directory.CreateTempSubdirectory("ctx-").FullName, "t.txt");
        File.WriteAllText(text, string.Concat(Enumerable.Repeat("abc def ghi ", 80)));
        var ppl = PareCli.Run("ppl", Model(), "--text-file", text, "--ctx", "512", "--json");
        Assert.True(ppl.ExitCode == 0, ppl.Stderr);
        Assert.Contains("pare: warning: --ctx 512 is past the model's trained context of 256 tokens", ppl.Stderr);
        var within = PareCli.Run("ppl", Model(), "--text-file", text, "--ctx", "256", "--json");
        Assert.Equal("", within.Stderr);
        var run = PareCli.Run("run", Model(), "-p", "hi", "-n", "2", "--ctx", "300", "--json");
        Assert.True(run.ExitCode == 0, run.Stderr);
        Assert.Contains("pare: warning: --ctx 300 is past", run.Stderr);
        // One whose KV cache would not fit in memory is refused before anything is allocated.
        using var m = LlamaModel.Load(Model());
        var e = Assert.Throws<PareException>(() => Pare.Cli.Commands.Cli.CheckContext(1_000_000, m, availableBytes: 100L << 20));
        Assert.Contains("--ctx 1000000 needs 0.4 GiB of KV cache, more than half of the 0.1 GiB available", e.Message);
    }

    // 7. The compact format: info reports the matrices it holds; pruning it says what it is; --repack gives a dense file back.
    [Theory]
    [InlineData(GgmlType.F16)]
    [InlineData(GgmlType.Q8_0)]
    public void Compact_files_are_reported_as_matrices_and_convert_back_to_dense(GgmlType type)
    {
        string model = TestModels.Get("gqa-untied", PruneTestSupport.Gqa, type), dir = PruneTestSupport.NewDir();
        string dense = Path.Combine(dir, "dense.gguf"), compact = Path.Combine(dir, "compact.gguf"), back = Path.Combine(dir, "back.gguf");
        Assert.Equal(0, PareCli.Run("prune", model, "--method", "magnitude", "--sparsity", "0.6", "-o", dense, "--json").ExitCode);
        Assert.Equal(0, PareCli.Run("prune", model, "--method", "magnitude", "--sparsity", "0.6", "--sparse-format", "bitmask", "-o", compact, "--json").ExitCode);

        var di = PareCli.Run("info", dense, "--json", "--tensors").Json;
        var ci = PareCli.Run("info", compact, "--json", "--tensors").Json;
        Assert.Equal(di.GetProperty("parameters").GetInt64(), ci.GetProperty("parameters").GetInt64());
        var types = ci.GetProperty("weight_types").EnumerateObject().ToDictionary(p => p.Name, p => p.Value.GetInt64());
        Assert.DoesNotContain("I8", types.Keys);
        Assert.Equal(di.GetProperty("weight_types").EnumerateObject().Sum(p => p.Value.GetInt64()), types.Values.Sum());
        // 3 blocks x 7 matrices, each counted as its rows x cols under "TYPE compact".
        Assert.Equal(21, ci.GetProperty("tensors").EnumerateArray().Count(t => t.GetProperty("type").GetString() == $"{type} compact"));
        Assert.True(types[$"{type} compact"] > 0);
        foreach (var t in ci.GetProperty("tensors").EnumerateArray())
        {
            var d = di.GetProperty("tensors").EnumerateArray().Single(x => x.GetProperty("name").GetString() == t.GetProperty("name").GetString());
            Assert.Equal(d.GetProperty("shape").ToString(), t.GetProperty("shape").ToString());
        }
        Assert.Equal(0, PareCli.Run("info", compact, "--tensors").ExitCode);

        var again = PareCli.Run("prune", compact, "--method", "magnitude", "-o", Path.Combine(dir, "x.gguf"));
        AssertOneLineError(again, "compact sparse format");
        Assert.Contains("--repack", again.Stderr);

        var r = PareCli.Run("prune", compact, "--repack", "-o", back, "--json");
        Assert.True(r.ExitCode == 0, r.Stderr);
        Assert.Equal(21, r.Json.GetProperty("converted").GetInt32());
        using var a = GgufFile.Open(dense);
        using var b = GgufFile.Open(back);
        Assert.False(b.Has(Pare.Kernels.Sparse.SparseMatrix.FormatKey));
        foreach (var t in a.Tensors)
        {
            var u = b.GetTensor(t.Name);
            Assert.Equal(t.Type, u.Type);
            Assert.Equal(t.Dims, u.Dims);
            Assert.True(a.TensorBytes(t).SequenceEqual(b.TensorBytes(u)), t.Name);
        }
    }

    // 8. Nothing to work on is an error, not a success with an empty or needless result.
    [Fact]
    public void Ngram_refuses_an_empty_training_text()
    {
        string dir = Directory.CreateTempSubdirectory("ngram-").FullName, empty = Path.Combine(dir, "empty.txt"), test = Path.Combine(dir, "test.txt");
        File.WriteAllText(empty, "");
        File.WriteAllText(test, "some text to score here");
        AssertOneLineError(PareCli.Run("ngram", "--model", Model(), "--train", empty, "--test", test), "too few to train");
    }

    [Fact]
    public void Repack_of_an_unpruned_model_writes_nothing()
    {
        string dir = PruneTestSupport.NewDir();
        var r = PareCli.Run("prune", TestModels.Get("gqa-untied", PruneTestSupport.Gqa, GgmlType.F16), "--repack", "-o", Path.Combine(dir, "o.gguf"));
        AssertOneLineError(r, "is the model pruned?");
        Assert.Empty(Directory.GetFileSystemEntries(dir));
    }

    // 9-10. The prune summary says what was removed and from what; magnitude calibrates only when the error report is asked for.
    [Fact]
    public void Prune_json_counts_removed_weights_and_keeps_the_calibration_path()
    {
        string dir = PruneTestSupport.NewDir(), calib = Path.Combine(dir, "calib.txt");
        File.WriteAllText(calib, string.Concat(Enumerable.Repeat("the quick brown fox jumps over the lazy dog and keeps running far away. ", 200)));
        var j = PareCli.Run("prune", TestModels.Get("gqa-untied", PruneTestSupport.Gqa, GgmlType.F16), "--method", "wanda", "--sparsity", "0.25",
            "--calib-file", calib, "--samples", "4", "--seqlen", "32", "-o", Path.Combine(dir, "o.gguf"), "--json").Json;
        long matrix = j.GetProperty("layers").EnumerateArray().Sum(l => l.GetProperty("weights").GetInt64());
        long zeros = j.GetProperty("layers").EnumerateArray().Sum(l => l.GetProperty("zeros").GetInt64());
        Assert.Equal(zeros, j.GetProperty("pruned_weights").GetInt64());
        Assert.Equal(matrix, j.GetProperty("matrix_weights").GetInt64());
        Assert.InRange(zeros, (long)(0.24 * matrix), (long)(0.26 * matrix));
        Assert.Equal(calib, j.GetProperty("calibration").GetString());
    }

    [Fact]
    public void Magnitude_calibrates_only_for_the_error_report()
    {
        string model = TestModels.Get("gqa-untied", PruneTestSupport.Gqa, GgmlType.F16), dir = PruneTestSupport.NewDir();
        var plain = PareCli.Run("prune", model, "--method", "magnitude", "--calib-random", "-o", Path.Combine(dir, "a.gguf"), "--json").Json;
        Assert.Equal(0, plain.GetProperty("samples").GetInt32());
        Assert.All(plain.GetProperty("layers").EnumerateArray(), l => Assert.Equal(System.Text.Json.JsonValueKind.Null, l.GetProperty("relative_error").ValueKind));
        var report = PareCli.Run("prune", model, "--method", "magnitude", "--calib-random", "--samples", "4", "--seqlen", "32", "--report-error",
            "-o", Path.Combine(dir, "b.gguf"), "--json").Json;
        Assert.Equal(4, report.GetProperty("samples").GetInt32());
        Assert.All(report.GetProperty("layers").EnumerateArray(), l => Assert.True(l.GetProperty("relative_error").GetDouble() > 0));
        // The same weights either way: the report only measures.
        using var a = GgufFile.Open(Path.Combine(dir, "a.gguf"));
        using var b = GgufFile.Open(Path.Combine(dir, "b.gguf"));
        foreach (var t in a.Tensors) Assert.True(a.TensorBytes(t).SequenceEqual(b.TensorBytes(b.GetTensor(t.Name))), t.Name);
    }

    // 11. Everything the tests write goes to the run's own temp folder, deleted when the run ends.
    [Fact]
    public void Test_files_go_to_the_runs_own_temp_folder()
    {
        Assert.StartsWith(TempFolder.Dir, Path.GetTempPath());
        Assert.StartsWith(TempFolder.Dir, TestModels.Dir);
        Assert.StartsWith(TempFolder.Dir, PruneTestSupport.NewDir());
        Assert.Contains("pare-test-run-", TempFolder.Dir);
    }

    // 12. --stop: the text and the token ids both end before the stop sequence.
    [Fact]
    public void Stop_sequence_ends_text_and_tokens_alike()
    {
        string model = ReferenceModels.Require(ReferenceModels.PareRef);
        string[] common = ["run", model, "-p", "The ship sailed out of the harbour and", "-n", "48", "--temp", "0", "--draft", "none", "--json"];
        var plain = PareCli.Run(common).Json;
        string text = plain.GetProperty("text").GetString()!;
        int[] ids = [.. plain.GetProperty("tokens").EnumerateArray().Select(e => e.GetInt32())];
        // A stop sequence that starts inside the text, at its first occurrence.
        int at = text.IndexOf(' ', 12);
        string stop = text.Substring(at, 3);
        Assert.Equal(at, text.IndexOf(stop, StringComparison.Ordinal));

        var stopped = PareCli.Run([.. common, "--stop", stop]).Json;
        string cut = stopped.GetProperty("text").GetString()!;
        int[] kept = [.. stopped.GetProperty("tokens").EnumerateArray().Select(e => e.GetInt32())];
        Assert.Equal(text[..at], cut);
        Assert.Equal(ids[..kept.Length], kept);
        using var m = LlamaModel.Load(model);
        var decoder = new StreamingDecoder(m.Tokenizer!);
        string spelled = string.Concat(kept.Select(decoder.Push));
        Assert.True(cut.StartsWith(spelled, StringComparison.Ordinal), $"'{spelled}' is not the start of '{cut}'");
        // ... and it is the longest such prefix: the next token reaches into the stop sequence.
        Assert.True(spelled.Length + decoder.Push(ids[kept.Length]).Length > cut.Length);
    }

    // Found by the option fuzz: an argument starting with '@' was read as a response file (and "@./" crashed the parser).
    [Fact]
    public void An_argument_starting_with_at_is_text_not_a_response_file()
    {
        var r = PareCli.Run("run", Model(), "-p", "@alice hello", "-n", "2", "--temp", "0", "--json");
        Assert.True(r.ExitCode == 0, r.Stderr);
        AssertOneLineError(PareCli.Run("prune", Model(), "--seqlen", "@./", "-o", "x.gguf"), "--seqlen");
    }

    // 12. Peak memory is the model's, not the bandwidth test's buffer.
    [Fact]
    public void Bench_roofline_reports_the_models_memory()
    {
        var j = PareCli.Run("bench", Model(), "--prefill", "8", "--decode", "2", "--runs", "1", "--roofline", "--json").Json;
        Assert.True(j.GetProperty("memory_gb_s").GetDouble() > 0);
        Assert.True(j.GetProperty("peak_rss_mb").GetDouble() < 300, $"peak RSS {j.GetProperty("peak_rss_mb").GetDouble()} MiB for a {j.GetProperty("file_mb").GetDouble():F1} MiB model");
    }

    // 13. What bench reports follows from the file: the bytes of weights each decoded token reads, and the traffic they make.
    [Fact]
    public void Bench_reports_the_weight_bytes_the_file_holds()
    {
        var j = PareCli.Run("bench", Model(), "--prefill", "16", "--decode", "4", "--runs", "1", "--json").Json;
        using var f = GgufFile.Open(Model());
        string[] read = ["attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down"];
        long expected = f.Tensors.Where(t => t.Name == "output.weight" || read.Any(s => t.Name.EndsWith($".{s}.weight", StringComparison.Ordinal))).Sum(t => t.ByteSize);
        Assert.Equal(expected, j.GetProperty("weight_bytes_per_token").GetInt64());
        double tokS = j.GetProperty("decode_tok_s").GetDouble();
        Assert.True(tokS > 0);
        Assert.Equal(tokS * expected / 1e9, j.GetProperty("decode_gb_s").GetDouble(), 9);
        Assert.Equal(16, j.GetProperty("prefill_tokens").GetInt32());
        Assert.Equal(4, j.GetProperty("decode_tokens").GetInt32());
    }
}
