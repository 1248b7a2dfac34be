using System.Globalization;
using CsCheck;
using Pare.Tests.TestSupport;
using CliMain = Pare.Cli.Commands.Cli;

namespace Pare.Tests.Cli;

/// <summary>The runs below swap the process's Console.Out/Error, so nothing else may run beside them.</summary>
[CollectionDefinition("Console", DisableParallelization = true)]
public class ConsoleCollection;

/// <summary>
/// Past the parser: the verbs themselves run in-process on a small model with random values near every numeric option's
/// edges. Each run ends with exit 0, or exit 1 and exactly one error line; never an internal error (exit 70) or an exception.
/// </summary>
[Collection("Console")]
public class ActionFuzzTests
{
    static readonly Gen<string> Int = Gen.OneOf(Gen.Int[-3, 40], Gen.Int[250, 270]).Select(v => v.ToString(CultureInfo.InvariantCulture));
    static readonly Gen<string> Real = Gen.OneOf(Gen.Double[-0.5, 1.5].Select(v => v.ToString("G3", CultureInfo.InvariantCulture)), Gen.OneOf<string>("0", "1", "-1", "NaN", "1e9"));
    static readonly Gen<string> Small = Gen.Int[-1, 3].Select(v => v.ToString(CultureInfo.InvariantCulture));
    static readonly Gen<string> Threads = Gen.Int[-1, 3].Select(v => v.ToString(CultureInfo.InvariantCulture));

    [Fact]
    public void Verbs_run_with_random_option_values_end_cleanly()
    {
        var root = VerbSurfaceTests.Root();
        string model = TestModels.Get("cli", TestModels.OracleShapes[1].Config, Tensors.GgmlType.F32);
        string text = Path.Combine(Directory.CreateTempSubdirectory("fuzz-").FullName, "t.txt");
        File.WriteAllText(text, string.Concat(Enumerable.Repeat("the cat sat on the mat. ", 40)));
        var verbs = new Gen<string[]>[]
        {
            Gen.Select(Int, Real, Int, Real, Real, Real, Int, Threads).Select((n, temp, k, p, minP, rep, ctx, t) =>
                new[] { "run", model, "-p", "hello world", "--draft", "none", "-n", n, "--temp", temp, "--top-k", k, "--top-p", p, "--min-p", minP, "--repeat-penalty", rep, "--ctx", ctx, "--threads", t, "--json" }),
            Gen.Select(Int, Small, Small, Threads).Select((pre, dec, runs, t) => new[] { "bench", model, "--prefill", pre, "--decode", dec, "--runs", runs, "--threads", t, "--json" }),
            Gen.Select(Int, Int, Threads).Select((ctx, stride, t) => new[] { "ppl", model, "--text-file", text, "--ctx", ctx, "--stride", stride, "--threads", t, "--json" }),
            Threads.Select(t => new[] { "logits", model, "--tokens", "1,2,3", "--threads", t, "--json" }),
        };
        var (out0, err0) = (Console.Out, Console.Error);
        int runs = 0, ok = 0;
        try
        {
            Gen.OneOf(verbs).Sample(args =>
            {
                var err = new StringWriter();
                Console.SetOut(TextWriter.Null);
                Console.SetError(err);
                int rc;
                try { rc = CliMain.InvokeAsync(root, args).GetAwaiter().GetResult(); }
                finally { Console.SetOut(out0); Console.SetError(err0); }
                runs++;
                string cmd = string.Join(' ', args.Select(a => a == model ? "MODEL" : a == text ? "TEXT" : a));
                var lines = err.ToString().Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
                    .Where(l => !l.StartsWith("pare: warning:", StringComparison.Ordinal)).ToArray();
                if (rc == 0) { ok++; Assert.True(lines.Length == 0 || args[0] is "logits", $"{cmd}: {err}"); return; }
                Assert.True(rc == 1, $"{cmd}: exit {rc}: {err}");
                Assert.True(lines.Length == 1 && lines[0].StartsWith("pare: error:", StringComparison.Ordinal), $"{cmd}: {err}");
            }, iter: 200, threads: 1);
        }
        finally { Console.SetOut(out0); Console.SetError(err0); }
        Assert.True(runs >= 100, $"{runs} runs");
        Assert.True(ok >= 10, $"only {ok} of {runs} runs were accepted: the generator should reach valid settings too");
    }
}
