using System.Text.Json;
using Pare.Models;
using Pare.Tensors;
using Pare.Tests.TestSupport;

namespace Pare.Tests.Cli;

/// <summary>The `pare` verbs as external automation uses them: exit codes, --json shapes, one-line errors.</summary>
public class CliTests
{
    static string Model() => TestModels.Get("cli", TestModels.OracleShapes[1].Config, GgmlType.F32);

    [Fact]
    public void Info_json_reports_shapes()
    {
        var r = PareCli.Run("info", Model(), "--json");
        Assert.Equal(0, r.ExitCode);
        var j = r.Json;
        Assert.Equal("llama", j.GetProperty("architecture").GetString());
        Assert.Equal(8, j.GetProperty("heads").GetInt32());
        Assert.Equal(2, j.GetProperty("kv_heads").GetInt32());
        using var m = LlamaModel.Load(Model());
        Assert.Equal(m.ParameterCount, j.GetProperty("parameters").GetInt64());
    }

    [Fact]
    public void Logits_json_equals_library()
    {
        var r = PareCli.Run("logits", Model(), "--tokens", "1,2,3,300", "--json", "--threads", "1");
        Assert.Equal(0, r.ExitCode);
        var logits = r.Json.GetProperty("logits").EnumerateArray().Select(e => e.GetSingle()).ToArray();
        using var m = LlamaModel.Load(Model());
        var expected = m.CreateSession(new SessionOptions { Threads = 1 }).Forward([1, 2, 3, 300]);
        Assert.Equal(expected, logits);
    }

    [Fact]
    public void Run_json_greedy_is_deterministic_and_matches_library()
    {
        var a = PareCli.Run("run", Model(), "-p", "hello world", "--max-tokens", "12", "--temp", "0", "--json");
        var b = PareCli.Run("run", Model(), "-p", "hello world", "--max-tokens", "12", "--temp", "0", "--json");
        Assert.Equal(0, a.ExitCode);
        var ta = a.Json.GetProperty("tokens").EnumerateArray().Select(e => e.GetInt32()).ToArray();
        Assert.Equal(ta, b.Json.GetProperty("tokens").EnumerateArray().Select(e => e.GetInt32()).ToArray());
        Assert.True(a.Json.GetProperty("decode_tok_s").GetDouble() > 0);
        Assert.InRange(ta.Length, 1, 12);

        // Greedy: every generated token is the argmax after the prompt and the tokens before it.
        using var m = LlamaModel.Load(Model());
        var ids = m.Tokenizer!.Encode("hello world").ToList();
        var s = m.CreateSession();
        var logits = s.Forward([.. ids]);
        foreach (var t in ta)
        {
            Assert.Equal(Pare.Generation.Sampler.ArgMax(logits), t);
            logits = s.Forward([t]);
        }
    }

    [Fact]
    public void Run_with_each_drafter_gives_plain_output_and_reports_acceptance()
    {
        var plain = PareCli.Run("run", Model(), "-p", "abc abc abc abc", "--max-tokens", "16", "--temp", "0", "--draft", "none", "--json");
        Assert.Equal(0, plain.ExitCode);
        var expected = plain.Json.GetProperty("tokens").EnumerateArray().Select(e => e.GetInt32()).ToArray();
        foreach (var d in new[] { "pld", "recycle", "lookahead", "aded", "auto", "model:" + Model(), "tree:" + Model(), "dyspec:" + Model(), "rasd:" + Model(), "self", "self:1" })
        {
            var r = PareCli.Run("run", Model(), "-p", "abc abc abc abc", "--max-tokens", "16", "--temp", "0", "--draft", d, "--json");
            Assert.Equal(0, r.ExitCode);
            Assert.Equal(expected, r.Json.GetProperty("tokens").EnumerateArray().Select(e => e.GetInt32()).ToArray());
            Assert.True(r.Json.GetProperty("mean_accepted").GetDouble() >= 1.0);
            Assert.True(r.Json.GetProperty("steps").GetInt32() >= 1);
        }
        Assert.NotEqual(0, PareCli.Run("run", Model(), "-p", "abc", "--draft", "magic").ExitCode);
        // Bad model drafters: one line, non-zero exit, nothing generated.
        foreach (var bad in new[] { "self:99", "model:", "dyspec:/nonexistent.gguf" })
        {
            var r = PareCli.Run("run", Model(), "-p", "abc", "--draft", bad);
            Assert.NotEqual(0, r.ExitCode);
            Assert.Single(r.ErrorLines);
            Assert.Equal("", r.Stdout);
        }
    }

    [Fact]
    public void Bench_spec_compares_every_drafter_with_plain_decoding()
    {
        string f = Path.Combine(TestModels.Dir, "cli-prompts.jsonl");
        File.WriteAllLines(f, ["{\"category\":\"repeat\",\"prompt\":\"ab ab ab ab ab\"}", "{\"category\":\"prose\",\"prompt\":\"call me ishmael\"}"]);
        var r = PareCli.Run("bench-spec", Model(), "--prompts", f, "-n", "12", "--max-tree", "8", "--json");
        Assert.Equal(0, r.ExitCode);
        var results = r.Json.GetProperty("results").EnumerateArray().ToList();
        Assert.Equal(2 * 6, results.Count);
        Assert.All(results, x => Assert.True(x.GetProperty("identical").GetBoolean()));
        Assert.Contains(results, x => x.GetProperty("drafter").GetString() == "none" && x.GetProperty("mat").GetDouble() == 1.0);
        Assert.True(r.Json.GetProperty("t_n").GetArrayLength() >= 4);

        File.WriteAllText(f, "not json");
        var bad = PareCli.Run("bench-spec", Model(), "--prompts", f);
        Assert.Equal(1, bad.ExitCode);
        Assert.StartsWith("pare: error:", bad.Stderr.Trim());
    }

    [Fact]
    public void Bench_spec_lanes_run_independent_copies_of_each_drafter_and_report_their_spread()
    {
        string f = Path.Combine(TestModels.Dir, "cli-prompts-lanes.jsonl");
        File.WriteAllLines(f, ["{\"category\":\"repeat\",\"prompt\":\"ab ab ab ab ab\"}", "{\"category\":\"repeat\",\"prompt\":\"cd cd cd cd\"}"]);
        var r = PareCli.Run("bench-spec", Model(), "--prompts", f, "-n", "10", "--max-tree", "8", "--drafters", "pld,auto", "--lanes", "3", "--json");
        Assert.Equal(0, r.ExitCode);
        Assert.Equal(3, r.Json.GetProperty("lanes").GetInt32());
        var results = r.Json.GetProperty("results").EnumerateArray().ToList();
        Assert.Equal(3, results.Count);
        foreach (var x in results)
        {
            Assert.True(x.GetProperty("identical").GetBoolean());
            Assert.Equal(2, x.GetProperty("prompts").GetInt32());
            Assert.Equal(3, x.GetProperty("lane_speedups").GetArrayLength());
            Assert.Equal(3, x.GetProperty("lane_mat").GetArrayLength());
            Assert.Equal(2, x.GetProperty("prompt_decode_seconds").GetArrayLength());
            Assert.True(x.GetProperty("aa").GetDouble() > 0);
        }
        // Prompt lookup is deterministic under greedy decoding given its sizes: every lane of it accepts tokens.
        Assert.All(results.Single(x => x.GetProperty("drafter").GetString() == "pld").GetProperty("lane_mat").EnumerateArray(), m => Assert.True(m.GetDouble() >= 1));

        var bad = PareCli.Run("bench-spec", Model(), "--prompts", f, "--lanes", "0");
        Assert.Equal(1, bad.ExitCode);
    }

    [Fact]
    public void Bench_spec_times_in_cpu_time_on_request_and_counts_the_steps()
    {
        string f = Path.Combine(TestModels.Dir, "cli-prompts-clock.jsonl");
        File.WriteAllLines(f, ["{\"category\":\"repeat\",\"prompt\":\"ab ab ab ab ab\"}"]);
        var r = PareCli.Run("bench-spec", Model(), "--prompts", f, "-n", "12", "--max-tree", "8", "--drafters", "pld,auto", "--clock", "cpu", "--threads", "1", "--json");
        Assert.Equal(0, r.ExitCode);
        Assert.Equal("cpu", r.Json.GetProperty("clock").GetString());
        foreach (var x in r.Json.GetProperty("results").EnumerateArray())
        {
            Assert.True(x.GetProperty("identical").GetBoolean());
            if (x.GetProperty("drafter").GetString() == "none") { Assert.Equal(JsonValueKind.Null, x.GetProperty("counts").ValueKind); continue; }
            // The counts add up: every step is plain or drafted in one context class, and the drafted ones by arm too.
            var c = x.GetProperty("counts");
            int steps = c.GetProperty("steps").GetInt32(), plain = c.GetProperty("plain_steps").GetInt32();
            int drafted = c.GetProperty("by_context").EnumerateArray().Sum(k => k.GetProperty("steps").GetInt32());
            Assert.Equal(steps, plain + drafted);
            Assert.Equal(drafted, c.GetProperty("arms").EnumerateArray().Sum(k => k.GetProperty("steps").GetInt32()));
            Assert.True(c.GetProperty("idle_steps").GetInt32() + c.GetProperty("empty_drafts").GetInt32() <= plain);
            Assert.Equal(11, c.GetProperty("by_context").EnumerateArray().Sum(k => k.GetProperty("tokens").GetInt32()) + plain);
        }
        Assert.Equal(1, PareCli.Run("bench-spec", Model(), "--prompts", f, "--clock", "sundial").ExitCode);
    }

    [Fact]
    public void Bench_spec_alternates_the_order_of_its_runs_over_lanes_and_prompts()
    {
        var p0 = Pare.Cli.Commands.BenchSpecCommand.RunOrder(["a", "b"], 2, 0).ToList();
        Assert.Equal([("none", 0), ("a", 0), ("b", 0), ("b", 1), ("a", 1), ("none", 1)], p0);
        var p1 = Pare.Cli.Commands.BenchSpecCommand.RunOrder(["a", "b"], 2, 1).ToList();
        Assert.Equal([("b", 0), ("a", 0), ("none", 0), ("none", 1), ("a", 1), ("b", 1)], p1);
        // One lane: ABBA over prompts.
        Assert.Equal(["none", "a", "b"], Pare.Cli.Commands.BenchSpecCommand.RunOrder(["a", "b"], 1, 2).Select(x => x.Drafter));
        Assert.Equal(["b", "a", "none"], Pare.Cli.Commands.BenchSpecCommand.RunOrder(["a", "b"], 1, 3).Select(x => x.Drafter));
    }

    [Fact]
    public void Tokenize_json()
    {
        string f = Path.Combine(TestModels.Dir, "cli-text.txt");
        File.WriteAllText(f, "abc def");
        var r = PareCli.Run("tokenize", Model(), "--text-file", f, "--json");
        Assert.Equal(0, r.ExitCode);
        using var m = LlamaModel.Load(Model());
        Assert.Equal(m.Tokenizer!.Encode("abc def"), r.Json.GetProperty("ids").EnumerateArray().Select(e => e.GetInt32()).ToArray());
    }

    [Fact]
    public void Bench_json_has_speeds_and_memory()
    {
        var r = PareCli.Run("bench", Model(), "--prefill", "16", "--decode", "4", "--runs", "1", "--json");
        Assert.Equal(0, r.ExitCode);
        var j = r.Json;
        Assert.True(j.GetProperty("prefill_tok_s").GetDouble() > 0);
        Assert.True(j.GetProperty("decode_tok_s").GetDouble() > 0);
        Assert.True(j.GetProperty("peak_rss_mb").GetDouble() > 0);
    }

    [Fact]
    public void Resident_memory_stays_near_the_file_size()
    {
        // A 25 MB model: weights are used from the memory map, so the process holds the file's pages, a small KV cache
        // and the runtime, never a second copy of the weights.
        var cfg = TestModels.Cfg(dim: 256, layers: 4, heads: 8, kvHeads: 4, ffn: 1024, tied: false, vocab: 4096, ctx: 256);
        string path = TestModels.Get("rss", cfg, GgmlType.F32);
        var r = PareCli.Run("bench", path, "--prefill", "32", "--decode", "8", "--runs", "1", "--json");
        Assert.Equal(0, r.ExitCode);
        double rss = r.Json.GetProperty("peak_rss_mb").GetDouble(), file = r.Json.GetProperty("file_mb").GetDouble();
        Assert.True(file > 20, $"file {file} MiB");
        Assert.True(rss < file + 150, $"peak RSS {rss:F0} MiB for a {file:F0} MiB file");
    }

    [Theory]
    [InlineData("info", "/nonexistent/model.gguf")]
    [InlineData("logits", "MODEL", "--tokens", "1,x")]
    [InlineData("logits", "MODEL", "--tokens", "999999")]
    [InlineData("run", "MODEL", "-p", "hi", "--top-p", "0")]
    [InlineData("bench", "MODEL", "--prefill", "0")]
    [InlineData("tokenize", "MODEL", "--text-file", "/nonexistent.txt")]
    public void Bad_input_gives_one_line_error_and_nonzero_exit(params string[] args)
    {
        var r = PareCli.Run([.. args.Select(a => a == "MODEL" ? Model() : a)]);
        Assert.NotEqual(0, r.ExitCode);
        var lines = r.Stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Single(lines);
        Assert.StartsWith("pare: error:", lines[0]);
    }

    [Fact]
    public void Unknown_option_is_rejected()
    {
        var r = PareCli.Run("info", Model(), "--frobnicate");
        Assert.NotEqual(0, r.ExitCode);
    }
}
