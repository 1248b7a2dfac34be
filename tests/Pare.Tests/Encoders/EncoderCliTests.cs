using Google.Protobuf;
using Onnx;
using Pare.Tests.TestSupport;

namespace Pare.Tests.Encoders;

/// <summary>`pare import onnx` and `pare embed` on the real packages and on bad input (one line, exit 1, no output).</summary>
public class EncoderCliTests
{
    static string OnnxPath => EncoderModels.Get(EncoderModels.MiniLm).OnnxPath;
    static string Tmp() => Directory.CreateTempSubdirectory("pare-enc-cli-").FullName;

    static void OneLineError(PareCli.Result r, string contains)
    {
        Assert.Equal(1, r.ExitCode);
        Assert.Single(r.Stderr.Trim().Split('\n'));
        Assert.Contains(contains, r.Stderr, StringComparison.Ordinal);
        Assert.DoesNotContain("   at ", r.Stderr, StringComparison.Ordinal);
    }

    [Fact]
    public void Import_then_embed_gives_one_unit_vector_per_line_equal_across_formats()
    {
        string dir = Tmp();
        string text = Path.Combine(dir, "in.txt");
        File.WriteAllLines(text, ["Call me Ishmael.", "It was the best of times, it was the worst of times.", "A third line."]);
        var hf = PareCli.Run("import", "onnx", OnnxPath, "-o", Path.Combine(dir, "hf"), "--json");
        Assert.True(hf.ExitCode == 0, hf.Stderr);
        Assert.Equal(6, hf.Json.GetProperty("layers").GetInt32());
        var gguf = PareCli.Run("import", "onnx", OnnxPath, "-o", Path.Combine(dir, "m.gguf"));
        Assert.True(gguf.ExitCode == 0, gguf.Stderr);
        string? first = null;
        foreach (var model in new[] { OnnxPath, Path.Combine(dir, "hf"), Path.Combine(dir, "m.gguf") })
        {
            var r = PareCli.Run("embed", model, "--text-file", text, "--json", "--threads", "2");
            Assert.True(r.ExitCode == 0, r.Stderr);
            var lines = r.Stdout.Trim().Split('\n');
            Assert.Equal(3, lines.Length);
            foreach (var l in lines)
            {
                var v = System.Text.Json.JsonDocument.Parse(l).RootElement.GetProperty("embedding").EnumerateArray().Select(e => e.GetDouble()).ToArray();
                Assert.Equal(384, v.Length);
                Assert.Equal(1.0, Math.Sqrt(v.Sum(x => x * x)), 5);
            }
            first ??= r.Stdout;
            Assert.Equal(first, r.Stdout);
        }
    }

    [Fact]
    public void An_onnx_file_that_is_not_a_bert_encoder_is_one_line_and_exit_1()
    {
        string dir = Tmp();
        string path = Path.Combine(dir, "add.onnx");
        var model = new ModelProto { IrVersion = 7, Graph = new GraphProto { Name = "g" } };
        model.Graph.Node.Add(new NodeProto { OpType = "Add", Input = { "a", "b" }, Output = { "c" } });
        File.WriteAllBytes(path, model.ToByteArray());
        string outPath = Path.Combine(dir, "out.gguf");
        OneLineError(PareCli.Run("import", "onnx", path, "-o", outPath), "not a BERT encoder");
        Assert.False(File.Exists(outPath));
        Assert.Empty(Directory.GetFiles(dir, "out*"));
    }

    [Fact]
    public void A_truncated_protobuf_is_one_line_and_exit_1()
    {
        string dir = Tmp();
        string path = Path.Combine(dir, "cut.onnx");
        using (var src = File.OpenRead(OnnxPath))
        {
            var buf = new byte[1_000_000];
            src.ReadExactly(buf);
            File.WriteAllBytes(path, buf);
        }
        string outDir = Path.Combine(dir, "out");
        OneLineError(PareCli.Run("import", "onnx", path, "-o", outDir), "not a valid ONNX protobuf");
        Assert.False(Directory.Exists(outDir));
        File.WriteAllText(Path.Combine(dir, "text.onnx"), "hello, not protobuf at all\n");
        Assert.Equal(1, PareCli.Run("import", "onnx", Path.Combine(dir, "text.onnx"), "-o", outDir).ExitCode);
        Assert.Equal(1, PareCli.Run("import", "onnx", Path.Combine(dir, "missing.onnx"), "-o", outDir).ExitCode);
    }

    [Fact]
    public void Empty_lines_are_refused_with_no_output()
    {
        string dir = Tmp();
        string text = Path.Combine(dir, "in.txt");
        File.WriteAllText(text, "first line\n\nthird line\n");
        var r = PareCli.Run("embed", OnnxPath, "--text-file", text);
        OneLineError(r, "line 2 is empty");
        Assert.Equal("", r.Stdout);
    }

    [Fact]
    public void Inputs_longer_than_the_model_are_truncated_with_a_warning()
    {
        string dir = Tmp();
        string text = Path.Combine(dir, "in.txt");
        File.WriteAllLines(text, ["short one.", string.Join(' ', Enumerable.Repeat("whale", 700))]);
        var r = PareCli.Run("embed", OnnxPath, "--text-file", text, "--json");
        Assert.Equal(0, r.ExitCode);
        Assert.Contains("warning: 1 line(s) longer than 256 tokens were truncated (first: line 2)", r.Stderr, StringComparison.Ordinal);
        var lines = r.Stdout.Trim().Split('\n');
        Assert.Equal(256, System.Text.Json.JsonDocument.Parse(lines[1]).RootElement.GetProperty("tokens").GetInt32());
    }

    [Fact]
    public void Prune_encoder_writes_a_gguf_that_embeds_and_refuses_bad_options()
    {
        string dir = Tmp();
        string calib = Path.Combine(dir, "calib.txt");
        File.WriteAllLines(calib, EncoderModels.TestSentences(20, seed: 3));
        string outPath = Path.Combine(dir, "p.gguf");
        var r = PareCli.Run("prune-encoder", OnnxPath, "--method", "wanda", "--pattern", "2:4", "--calib-file", calib, "--samples", "8", "-t", "2", "-o", outPath, "--json");
        Assert.True(r.ExitCode == 0, r.Stderr);
        Assert.Equal(0.5, r.Json.GetProperty("sparsity").GetDouble(), 3);
        Assert.Equal(8, r.Json.GetProperty("calibration_sentences").GetInt32());
        string text = Path.Combine(dir, "in.txt");
        File.WriteAllLines(text, ["A sentence to embed."]);
        var e = PareCli.Run("embed", outPath, "--text-file", text);
        Assert.True(e.ExitCode == 0, e.Stderr);
        Assert.Equal(384, e.Stdout.Trim().Split(' ').Length);
        OneLineError(PareCli.Run("prune-encoder", OnnxPath, "--method", "obert2", "-o", Path.Combine(dir, "x.gguf")), "unknown method");
        OneLineError(PareCli.Run("prune-encoder", OnnxPath, "--method", "sparsegpt", "--calib-file", Path.Combine(dir, "none.txt"), "-o", Path.Combine(dir, "x.gguf")), "calibration file not found");
        Assert.False(File.Exists(Path.Combine(dir, "x.gguf")));
    }
}
