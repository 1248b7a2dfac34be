using Pare.Tensors;
using Pare.Tests.TestSupport;

namespace Pare.Tests.Pruning;

/// <summary>`pare prune` as a user runs it: JSON summary, and bad input = one clear line, exit 1, no output file.</summary>
public class PruneCliTests
{
    static string Model => TestModels.Get("gqa-untied", PruneTestSupport.Gqa, GgmlType.F16);

    [Fact]
    public void Prune_writes_a_model_and_a_json_summary()
    {
        string dir = PruneTestSupport.NewDir(), outPath = Path.Combine(dir, "out.gguf");
        string calib = Path.Combine(dir, "calib.txt");
        File.WriteAllText(calib, string.Concat(Enumerable.Repeat("the quick brown fox jumps over the lazy dog and keeps running far away. ", 200)));
        var r = PareCli.Run("prune", Model, "--method", "wanda", "--sparsity", "0.5", "--calib-file", calib, "--samples", "8", "--seqlen", "32", "-o", outPath, "--json");
        Assert.True(r.ExitCode == 0, r.Stderr);
        var j = r.Json;
        Assert.Equal("wanda", j.GetProperty("method").GetString());
        Assert.Equal(8, j.GetProperty("samples").GetInt32());
        Assert.Equal(3 * 7, j.GetProperty("layers").GetArrayLength());
        Assert.True(File.Exists(outPath));
        Assert.Equal(2, Directory.GetFiles(dir).Length); // calib + out, no scratch left
        var info = PareCli.Run("info", outPath, "--json");
        Assert.Equal(0, info.ExitCode);
        Directory.Delete(dir, true);
    }

    public static TheoryData<string[], string> BadInputs() => new()
    {
        { ["--method", "magnitude", "--sparsity", "1.0"], "sparsity must be in [0, 1)" },
        { ["--method", "magnitude", "--sparsity", "-0.2"], "sparsity must be in [0, 1)" },
        { ["--method", "magnitude", "--pattern", "4:4"], "1 <= N < M" },
        { ["--method", "magnitude", "--pattern", "5:4"], "1 <= N < M" },
        { ["--method", "obs"], "unknown method 'obs'" },
        { ["--method", "wanda"], "needs calibration text" },
        { ["--method", "sparsegpt", "--samples", "0"], "needs calibration samples" },
        { ["--method", "wanda", "--calib-file", "/nonexistent/calib.txt"], "calibration file not found" },
        { ["--method", "magnitude", "--override", "blk.0.*=1.5"], "sparsity must be in [0, 1)" },
    };

    [Theory]
    [MemberData(nameof(BadInputs))]
    public void Bad_input_is_one_clear_line_and_leaves_no_file(string[] args, string message)
    {
        string dir = PruneTestSupport.NewDir(), outPath = Path.Combine(dir, "out.gguf");
        var r = PareCli.Run(["prune", Model, .. args, "-o", outPath]);
        Assert.Equal(1, r.ExitCode);
        Assert.Contains(message, r.Stderr);
        Assert.Single(r.Stderr.Trim().Split('\n'));
        Assert.Empty(Directory.GetFileSystemEntries(dir));
        Directory.Delete(dir, true);
    }

    [Fact]
    public void A_model_without_a_tokenizer_cannot_take_calibration_text()
    {
        string dir = PruneTestSupport.NewDir();
        string noTok = PruneTestSupport.WithoutTokenizer(Model, Path.Combine(dir, "notok.gguf"));
        string calib = Path.Combine(dir, "calib.txt");
        File.WriteAllText(calib, "some text");
        string outPath = Path.Combine(dir, "out.gguf");
        var r = PareCli.Run("prune", noTok, "--method", "wanda", "--calib-file", calib, "-o", outPath);
        Assert.Equal(1, r.ExitCode);
        Assert.Contains("no tokenizer", r.Stderr);
        Assert.Equal(2, Directory.GetFiles(dir).Length);
        Directory.Delete(dir, true);
    }

    [Fact]
    public void Calibration_text_shorter_than_a_window_is_a_clear_error()
    {
        string dir = PruneTestSupport.NewDir();
        string calib = Path.Combine(dir, "calib.txt");
        File.WriteAllText(calib, "too short");
        var r = PareCli.Run("prune", Model, "--method", "sparsegpt", "--calib-file", calib, "-o", Path.Combine(dir, "o.gguf"));
        Assert.Equal(1, r.ExitCode);
        Assert.Contains("not more than one calibration window", r.Stderr);
        Assert.Single(Directory.GetFiles(dir));
        Directory.Delete(dir, true);
    }
}
