using System.CommandLine;
using System.Globalization;
using CsCheck;
using Pare.Tests.TestSupport;
using CliMain = Pare.Cli.Commands.Cli;

namespace Pare.Tests.Cli;

/// <summary>
/// Every verb as a newcomer first meets it: `--help` names `pare`, a missing required option is one short line and exit 1,
/// and random values for every numeric option are either taken or refused in one line, never an exception.
/// </summary>
public class VerbSurfaceTests
{
    /// <summary>The root command exactly as `pare` builds it (Program.cs), captured instead of run.</summary>
    internal static RootCommand Root()
    {
        RootCommand? root = null;
        lock (Gate)
        {
            CliMain.OnRoot = r => root = r;
            try { typeof(CliMain).Assembly.EntryPoint!.Invoke(null, [Array.Empty<string>()]); }
            finally { CliMain.OnRoot = null; }
        }
        return root ?? throw new InvalidOperationException("Program.cs did not pass its root command to Cli.InvokeAsync");
    }

    static readonly Lock Gate = new();

    /// <summary>Every command under the root with the words that reach it ("data tokenizer").</summary>
    internal static List<(string[] Path, Command Command)> Verbs(Command root)
    {
        var list = new List<(string[], Command)>();
        void Walk(Command c, string[] path)
        {
            foreach (var s in c.Subcommands)
            {
                string[] p = [.. path, s.Name];
                list.Add((p, s));
                Walk(s, p);
            }
        }
        Walk(root, []);
        return list;
    }

    [Fact]
    public void Every_verb_has_help_that_names_pare()
    {
        var verbs = Verbs(Root());
        Assert.True(verbs.Count >= 13, $"{verbs.Count} verbs");
        foreach (var (path, _) in verbs)
        {
            var r = PareCli.Run([.. path, "--help"]);
            string name = string.Join(' ', path);
            Assert.True(r.ExitCode == 0, $"pare {name} --help: exit {r.ExitCode} {r.Stderr}");
            Assert.Contains($"pare {name}", r.Stdout);
            Assert.DoesNotContain("Pare.Cli", r.Stdout);
            Assert.Equal("", r.Stderr);
        }
        var top = PareCli.Run("--help");
        Assert.Contains("pare [command] [options]", top.Stdout);
    }

    [Fact]
    public void A_missing_required_option_is_one_short_line_and_exit_1()
    {
        string model = TestModels.Get("cli", TestModels.OracleShapes[1].Config, Tensors.GgmlType.F32);
        int checkedVerbs = 0;
        foreach (var (path, cmd) in Verbs(Root()))
        {
            var required = cmd.Options.Where(o => o.Required).Select(o => o.Name).ToList();
            bool hasArgument = cmd.Arguments.Any(a => a.Arity.MinimumNumberOfValues > 0);
            bool group = cmd.Action is null && cmd.Subcommands.Count > 0;
            if (required.Count == 0 && !hasArgument && !group) continue;
            checkedVerbs++;
            // Nothing given; then (for verbs with a model argument) the model but not the options.
            var attempts = new List<string[]> { path };
            if (hasArgument && required.Count > 0) attempts.Add([.. path, model]);
            foreach (var args in attempts)
            {
                var r = PareCli.Run(args);
                string cmdLine = "pare " + string.Join(' ', args);
                Assert.True(r.ExitCode == 1, $"{cmdLine}: exit {r.ExitCode}");
                Assert.True(r.ErrorLines.Length == 1, $"{cmdLine}: stderr\n{r.Stderr}");
                string line = r.ErrorLines[0];
                Assert.StartsWith("pare: error:", line);
                Assert.True(line.Length <= 300, $"{cmdLine}: {line.Length} characters: {line}");
                Assert.Contains($"'pare {string.Join(' ', path)} --help'", line);
                foreach (var o in required) Assert.Contains(o, line);
                Assert.Equal("", r.Stdout);
            }
        }
        Assert.True(checkedVerbs >= 8, $"{checkedVerbs} verbs have required input");
    }

    static readonly Type[] Numeric = [typeof(int), typeof(int?), typeof(long), typeof(float), typeof(double), typeof(ulong), typeof(uint)];

    /// <summary>Values a careless user or script might type: edge integers, reals, specials, and text that is not a number.</summary>
    static readonly Gen<string> Values = Gen.OneOf(
        Gen.Int.Select(v => v.ToString(CultureInfo.InvariantCulture)),
        Gen.Int[-10, 10_000].Select(v => v.ToString(CultureInfo.InvariantCulture)),
        Gen.Int[-2, 16].Select(v => v.ToString(CultureInfo.InvariantCulture)),
        Gen.Long.Select(v => v.ToString(CultureInfo.InvariantCulture)),
        Gen.Double.Select(v => v.ToString("R", CultureInfo.InvariantCulture)),
        Gen.Double[-2, 2].Select(v => v.ToString("G4", CultureInfo.InvariantCulture)),
        Gen.OneOf<string>("0", "-0", "-1", "1", "2", "NaN", "Infinity", "-Infinity", "1e309", "9999999999999999999999", "0x10", "1,5", "", " ", "abc", "--json", "1.0.0", "½", "٣", "@", "@./", "@/nonexistent"),
        Gen.String[0, 6]);

    [Fact]
    public void Random_values_for_every_numeric_option_are_taken_or_refused_in_one_line()
    {
        var root = Root();
        var cases = new List<(string[] Base, Option Option)>();
        foreach (var (path, cmd) in Verbs(root))
        {
            if (cmd.Action is null) continue;
            var baseArgs = new List<string>(path);
            foreach (var a in cmd.Arguments) if (a.Arity.MinimumNumberOfValues > 0) baseArgs.Add("model.gguf");
            foreach (var o in cmd.Options.Where(o => o.Required)) baseArgs.AddRange([o.Name, "x"]);
            foreach (var o in cmd.Options.Where(o => Numeric.Contains(o.ValueType))) cases.Add(([.. baseArgs], o));
        }
        Assert.True(cases.Count >= 30, $"{cases.Count} numeric options");
        var accepted = new int[cases.Count];
        var refused = new int[cases.Count];
        int runs = 0;
        // Every option gets its share of the runs (at least 250; 2,000 or more in all). A narrow option such as
        // --threads (1 to 4 x cores) takes about 6% of the random values, so 60 runs missed it about once in 50.
        int perOption = Math.Max(250, 2000 / cases.Count + 1);
        for (int c = 0; c < cases.Count; c++)
        {
            int i = c;
            Values.Sample(value => Fuzz(i, value), iter: perOption, threads: 1);
        }
        void Fuzz(int i, string value)
        {
            var (baseArgs, option) = cases[i];
            var parsed = CliMain.Parse(root, [.. baseArgs, option.Name, value]);
            string? line = CliMain.ErrorLine(parsed);
            Interlocked.Increment(ref runs);
            if (line is null) { Interlocked.Increment(ref accepted[i]); return; }
            Interlocked.Increment(ref refused[i]);
            Assert.DoesNotContain('\n', line);
            Assert.StartsWith("pare: error:", line);
            Assert.True(line.Length <= 300, line);
            Assert.Contains(option.Name, line);
        }
        Assert.True(runs >= 2000, $"{runs} runs");
        // Every option saw both sides: values it takes and values it refuses.
        for (int i = 0; i < cases.Count; i++)
        {
            Assert.True(accepted[i] > 0, $"{string.Join(' ', cases[i].Base)} {cases[i].Option.Name}: nothing accepted");
            Assert.True(refused[i] > 0, $"{string.Join(' ', cases[i].Base)} {cases[i].Option.Name}: nothing refused");
        }
    }
}
