using Pare.LongContext;
using Pare.Models;
using Pare.Tensors;
using Pare.Tests.TestSupport;
using Pare.Tokenizers;

namespace Pare.Tests.LongContext;

/// <summary>The needle haystacks (deterministic, needles where asked), exact-match scoring, the training mix, and `pare needle`'s bad input.</summary>
public class NeedleTests
{
    static readonly Lazy<(ITokenizer Tok, TokenText Text, Filler Filler)> Ref = new(() =>
    {
        using var m = LlamaModel.Load(ReferenceModels.Require(ReferenceModels.PareRef));
        var tok = m.Tokenizer!;
        var text = new TokenText(tok);
        // Real English for the filler: the repository's README, repeated.
        string readme = File.ReadAllText(Path.Combine(RepoRoot(), "README.md"));
        return (tok, text, new Filler(tok.Encode(string.Concat(Enumerable.Repeat(readme, 3)), addSpecial: false), text));
    });

    static string RepoRoot()
    {
        var d = new DirectoryInfo(AppContext.BaseDirectory);
        while (d != null && !File.Exists(Path.Combine(d.FullName, "README.md"))) d = d.Parent;
        return d?.FullName ?? throw new InvalidOperationException("repository root not found");
    }

    static NeedleOptions Options(NeedleTask task, ulong seed = 5) => new() { Task = task, Seed = seed, Lengths = [600], Depths = [0.5], Trials = 1 };

    public static TheoryData<NeedleTask> Tasks() => [.. NeedleTasks.All];

    [Theory]
    [MemberData(nameof(Tasks))]
    public void Haystacks_are_a_function_of_the_seed_and_the_cell(NeedleTask task)
    {
        var (_, text, filler) = Ref.Value;
        var a = NeedleHarness.Sample(Options(task), text, filler, 600, 0.5, 3);
        var b = NeedleHarness.Sample(Options(task), text, filler, 600, 0.5, 3);
        Assert.Equal(a.Prompt, b.Prompt);
        Assert.Equal(a.Gold, b.Gold);
        Assert.NotEqual(a.Prompt, NeedleHarness.Sample(Options(task), text, filler, 600, 0.5, 4).Prompt);
        Assert.NotEqual(a.Prompt, NeedleHarness.Sample(Options(task, seed: 6), text, filler, 600, 0.5, 3).Prompt);
    }

    [Theory]
    [MemberData(nameof(Tasks))]
    public void Needles_sit_at_the_requested_depth_and_hold_the_answer(NeedleTask task)
    {
        var (_, text, filler) = Ref.Value;
        foreach (int length in new[] { 300, 1500 })
            foreach (double depth in new[] { 0.0, 0.3, 0.7, 1.0 })
                for (int trial = 0; trial < 3; trial++)
                {
                    var s = NeedleHarness.Sample(Options(task), text, filler, length, depth, trial);
                    Assert.InRange(s.Prompt.Length, length - 12, length);
                    if (task == NeedleTask.Passkey) Assert.Equal(length, s.Prompt.Length);
                    // A passkey moves up to 24 tokens to a sentence boundary; a cluster of needles ending at depth 1 starts a few
                    // pairs earlier, and a thread's other links may land before its first: in a short haystack these are a larger share.
                    double tol = length < 1000 ? 0.15 : 0.06;
                    Assert.True(Math.Abs(s.Depth - depth) <= tol, $"{task} length {length} depth {depth} trial {trial}: needle at {s.Depth:F3}");
                    string needle = text.Decode(s.Prompt.AsSpan(s.NeedlePositions[0], Math.Min(24, s.Prompt.Length - s.NeedlePositions[0])));
                    string whole = text.Decode(s.Prompt);
                    switch (task)
                    {
                        case NeedleTask.Passkey:
                            Assert.StartsWith($"\nThe pass key is {s.Gold[0]}.", needle);
                            break;
                        case NeedleTask.Single:
                            Assert.Matches("^\n\"\\d{4}\": \"" + s.Gold[0] + "\",", needle);
                            string key = needle.Split('"')[1];
                            Assert.EndsWith($"The value of \"{key}\" is \"", whole);
                            Assert.Single(System.Text.RegularExpressions.Regex.Matches(whole, $"\"{key}\": "));
                            break;
                        case NeedleTask.Conditional:
                            Assert.Equal(s.Gold.Length, System.Text.RegularExpressions.Regex.Matches(whole, "\"\\*\\d{4}\": ").Count);
                            Assert.StartsWith("\n\"*", needle);
                            break;
                        case NeedleTask.Threading or NeedleTask.MultiThread:
                            // Follow each thread through the haystack: it must end at the gold value.
                            var pairs = System.Text.RegularExpressions.Regex.Matches(whole, "\"(\\d{4})\": \"(\\d{4})\"").ToDictionary(m => m.Groups[1].Value, m => m.Groups[2].Value);
                            var starts = System.Text.RegularExpressions.Regex.Matches(whole[whole.LastIndexOf("Follow", StringComparison.Ordinal)..], "\"(\\d{4})\"").Select(m => m.Groups[1].Value).ToArray();
                            Assert.Equal(s.Gold.Length, starts.Length);
                            for (int t = 0; t < starts.Length; t++)
                            {
                                string k = starts[t];
                                for (int hop = 0; hop < 3; hop++) k = pairs[k];
                                Assert.Equal(s.Gold[t], k);
                            }
                            break;
                    }
                }
    }

    [Fact]
    public void Scoring_is_exact_match_per_value()
    {
        Assert.Equal(1, NeedleScoring.Score(NeedleTask.Passkey, " 48213. Remember it.", ["48213"]));
        Assert.Equal(0, NeedleScoring.Score(NeedleTask.Passkey, " 4821.", ["48213"]));
        Assert.Equal(0, NeedleScoring.Score(NeedleTask.Passkey, " the key", ["48213"]));
        Assert.Equal(0, NeedleScoring.Score(NeedleTask.Passkey, " 12 and 48213", ["48213"])); // the first integer counts
        Assert.Equal(1, NeedleScoring.Score(NeedleTask.Single, "4821\".", ["4821"]));
        Assert.Equal(0, NeedleScoring.Score(NeedleTask.Single, "48210\".", ["4821"]));
        Assert.Equal(0, NeedleScoring.Score(NeedleTask.Single, "4821 is the value", ["4821"])); // no closing quote: not an answer
        Assert.Equal(2 / 3.0, NeedleScoring.Score(NeedleTask.Multi, "4821\", \"7391\", \"1111\".", ["4821", "7391", "2222"]), 12);
        Assert.Equal(0.5, NeedleScoring.Score(NeedleTask.MultiThread, "9999\", \"7391\"", ["4821", "7391"]));
        Assert.Equal(0, NeedleScoring.Score(NeedleTask.Conditional, "7391\", \"4821\"", ["4821", "7391"])); // order matters
        // The gold answer text scores 1 for every task.
        var (_, text, filler) = Ref.Value;
        foreach (var task in NeedleTasks.All)
        {
            var s = NeedleHarness.Sample(Options(task), text, filler, 400, 0.5, 0);
            Assert.Equal(1, NeedleScoring.Score(task, s.AnswerText, s.Gold));
        }
    }

    [Fact]
    public void Training_windows_are_deterministic_and_exactly_long()
    {
        var (tok, text, _) = Ref.Value;
        var corpus = tok.Encode(string.Concat(Enumerable.Repeat(File.ReadAllText(Path.Combine(RepoRoot(), "README.md")), 3)), addSpecial: false);
        var mix = new LongContextMix(corpus, text, new LongContextMixOptions());
        for (ulong seed = 0; seed < 20; seed++)
        {
            var w = mix.Window(seed, 2049);
            Assert.Equal(2049, w.Length);
            Assert.Equal(w, mix.Window(seed, 2049));
        }
        Assert.NotEqual(mix.Window(1, 2049), mix.Window(2, 2049));
        // Episodes are answered: a window holds questions followed by their answers.
        string s = text.Decode(mix.Window(3, 2049));
        Assert.Matches("(The pass key is \\d+\\.|is \"\\d{4}\"|are \"\\d{4}\")", s);
    }

    [Fact]
    public void Copy_episodes_repeat_their_span_and_repeat_0_leaves_windows_unchanged()
    {
        var (tok, text, _) = Ref.Value;
        var corpus = tok.Encode(string.Concat(Enumerable.Repeat(File.ReadAllText(Path.Combine(RepoRoot(), "README.md")), 3)), addSpecial: false);
        var plain = new LongContextMix(corpus, text, new LongContextMixOptions());
        var zero = new LongContextMix(corpus, text, new LongContextMixOptions { Repeat = 0 });
        Assert.Equal(plain.Window(5, 2049), zero.Window(5, 2049));
        var copies = new LongContextMix(corpus, text, new LongContextMixOptions { Repeat = 1 });
        var sep = text.Encode("\n\n");
        var w = copies.Window(7, 2049);
        Assert.Equal(2049, w.Length);
        // The first episode is span + separator + span: find the span length from the window's start.
        int half = -1;
        for (int h = 8; 2 * h + sep.Length <= w.Length; h++)
            if (w.AsSpan(h, sep.Length).SequenceEqual(sep) && w.AsSpan(0, h).SequenceEqual(w.AsSpan(h + sep.Length, h))) { half = h; break; }
        Assert.True(half >= 60, $"no repeated span at the start (half {half})");
        Assert.Throws<PareException>(() => new LongContextMixOptions { Repeat = 1.5 }.Validate("cfg"));
    }

    [Fact]
    public void Edge_depth_puts_the_asked_pair_first_or_last_and_0_leaves_windows_unchanged()
    {
        var (tok, text, _) = Ref.Value;
        var corpus = tok.Encode(string.Concat(Enumerable.Repeat(File.ReadAllText(Path.Combine(RepoRoot(), "README.md")), 3)), addSpecial: false);
        var single = new LongContextMixOptions { Fraction = 1, Passkey = 0, Single = 1, Multi = 0, Conditional = 0, Threading = 0, MultiThread = 0, MaxFollowUps = 0 };
        Assert.Equal(new LongContextMix(corpus, text, single).Window(3, 2049), new LongContextMix(corpus, text, single with { EdgeDepth = 0 }).Window(3, 2049));
        var edges = new LongContextMix(corpus, text, single with { EdgeDepth = 1 });
        var uniform = new LongContextMix(corpus, text, single);
        int AtEdge(LongContextMix mix, ulong seed)
        {
            // The window's first episode: "{" + pairs + "\n}" + the question about one key, answered.
            string s = text.Decode(mix.Window(seed, 2049));
            var m = System.Text.RegularExpressions.Regex.Match(s, "The value of \"(\\d{4})\" is");
            Assert.True(m.Success, "no question in the window");
            var lines = s[..s.IndexOf("\n}", StringComparison.Ordinal)].Split('\n').Where(l => l.StartsWith('"')).ToArray();
            return lines[0].StartsWith($"\"{m.Groups[1].Value}\"") || lines[^1].StartsWith($"\"{m.Groups[1].Value}\"") ? 1 : 0;
        }
        Assert.Equal(12, Enumerable.Range(0, 12).Sum(i => AtEdge(edges, (ulong)i)));
        Assert.True(Enumerable.Range(0, 12).Sum(i => AtEdge(uniform, (ulong)i)) <= 3, "uniform depths put most needles at an edge");
        Assert.Throws<PareException>(() => new LongContextMixOptions { EdgeDepth = 1.5 }.Validate("cfg"));
    }

    [Fact]
    public void Full_window_fills_the_window_with_one_episode_and_0_leaves_windows_unchanged()
    {
        var (tok, text, _) = Ref.Value;
        var corpus = tok.Encode(string.Concat(Enumerable.Repeat(File.ReadAllText(Path.Combine(RepoRoot(), "README.md")), 3)), addSpecial: false);
        var single = new LongContextMixOptions { Fraction = 1, MinEpisode = 256, Passkey = 0, Single = 1, Multi = 0, Conditional = 0, Threading = 0, MultiThread = 0, MaxFollowUps = 0 };
        Assert.Equal(new LongContextMix(corpus, text, single).Window(3, 2049), new LongContextMix(corpus, text, single with { FullWindow = 0 }).Window(3, 2049));
        int Questions(LongContextMix mix, ulong seed) =>
            System.Text.RegularExpressions.Regex.Matches(text.Decode(mix.Window(seed, 2049)), "The value of \"\\d{4}\" is").Count;
        var full = new LongContextMix(corpus, text, single with { FullWindow = 1 });
        var logUniform = new LongContextMix(corpus, text, single);
        for (ulong seed = 0; seed < 6; seed++) Assert.Equal(1, Questions(full, seed));
        Assert.True(Enumerable.Range(0, 6).Sum(i => Questions(logUniform, (ulong)i)) > 6, "log-uniform episodes of 256..2049 tokens should put several questions in a window");
        Assert.Throws<PareException>(() => new LongContextMixOptions { FullWindow = 2 }.Validate("cfg"));
    }

    [Fact]
    public void Answer_weight_marks_exactly_the_answers_and_1_leaves_windows_unweighted()
    {
        var (tok, text, _) = Ref.Value;
        var corpus = tok.Encode(string.Concat(Enumerable.Repeat(File.ReadAllText(Path.Combine(RepoRoot(), "README.md")), 3)), addSpecial: false);
        var single = new LongContextMixOptions { Fraction = 1, MinEpisode = 256, Passkey = 0, Single = 1, Multi = 0, Conditional = 0, Threading = 0, MultiThread = 0, MaxFollowUps = 4 };
        var plain = new LongContextMix(corpus, text, single).Window(5, 2049, out var none);
        Assert.Null(none);
        var ids = new LongContextMix(corpus, text, single with { AnswerWeight = 8 }).Window(5, 2049, out var w);
        Assert.Equal(plain, ids);
        Assert.NotNull(w);
        Assert.Equal(ids.Length, w!.Length);
        Assert.All(w, x => Assert.True(x is 1f or 8f));
        // Every question "The value of "K" is "" is followed by weighted tokens that spell its value and nothing else
        // (the last answer may be cut by the window's end).
        string decoded = text.Decode(ids);
        int questions = System.Text.RegularExpressions.Regex.Matches(decoded, "The value of \"\\d{4}\" is \"").Count;
        var spans = new List<string>();
        for (int i = 0; i < ids.Length; i++)
            if (w[i] == 8f && (i == 0 || w[i - 1] != 8f))
            {
                int j = i;
                while (j < ids.Length && w[j] == 8f) j++;
                spans.Add(text.Decode(ids[i..j]));
                Assert.EndsWith("\" is \"", text.Decode(ids[Math.Max(0, i - 8)..i]));
            }
        Assert.True(questions >= 2, $"{questions} questions");
        Assert.InRange(spans.Count, questions - 1, questions);
        Assert.All(spans.Take(questions - 1), a => Assert.Matches("^\\d{4}\"\\.$", a));
        Assert.Throws<PareException>(() => new LongContextMixOptions { AnswerWeight = 0.5 }.Validate("cfg"));
    }

    [Fact]
    public void Weighted_cross_entropy_scales_each_rows_loss_and_gradient_and_zero_weight_rows_get_no_gradient()
    {
        const int vocab = 37, n = 5;
        var rng = new Random(3);
        var z = Enumerable.Range(0, n * vocab).Select(_ => (float)rng.NextDouble() * 4 - 2).ToArray();
        int[] targets = [3, 0, 36, 7, 7];
        float[] weights = [1, 0, 2.5f, 1, 4];
        var dzPlain = (float[])z.Clone();
        double plain = Pare.Training.Ops.CrossEntropy.ForwardBackward(dzPlain, targets, vocab, 0.5f, 1);
        var dz = (float[])z.Clone();
        double weighted = Pare.Training.Ops.CrossEntropy.ForwardBackward(dz, targets, vocab, 0.5f, 2, weights);
        double expected = 0;
        for (int t = 0; t < n; t++)
        {
            expected += weights[t] * Pare.Training.Ops.CrossEntropy.ForwardBackward((float[])z[(t * vocab)..((t + 1) * vocab)].Clone(), [targets[t]], vocab, 0f, 1);
            for (int v = 0; v < vocab; v++) Assert.Equal(weights[t] * dzPlain[t * vocab + v], dz[t * vocab + v], 5);
        }
        Assert.Equal(expected, weighted, 6);
        Assert.NotEqual(plain, weighted);
        Assert.All(dz[vocab..(2 * vocab)], g => Assert.Equal(0f, g));
    }

    [Fact]
    public void Shuffled_copy_episodes_repeat_a_span_that_is_not_running_text()
    {
        var (tok, text, _) = Ref.Value;
        var corpus = tok.Encode(string.Concat(Enumerable.Repeat(File.ReadAllText(Path.Combine(RepoRoot(), "README.md")), 3)), addSpecial: false);
        var textCopies = new LongContextMix(corpus, text, new LongContextMixOptions { Repeat = 1 });
        Assert.Equal(textCopies.Window(7, 2049), new LongContextMix(corpus, text, new LongContextMixOptions { Repeat = 1, ShuffledRepeat = 0 }).Window(7, 2049));
        var w = new LongContextMix(corpus, text, new LongContextMixOptions { Repeat = 1, ShuffledRepeat = 1 }).Window(7, 2049);
        var sep = text.Encode("\n\n");
        int half = -1;
        for (int h = 8; 2 * h + sep.Length <= w.Length; h++)
            if (w.AsSpan(h, sep.Length).SequenceEqual(sep) && w.AsSpan(0, h).SequenceEqual(w.AsSpan(h + sep.Length, h))) { half = h; break; }
        Assert.True(half >= 60, $"no repeated span at the start (half {half})");
        // Running text: most adjacent pairs of the span are adjacent in the corpus too; shuffled tokens: few are.
        var bigrams = new HashSet<(int, int)>(Enumerable.Range(0, corpus.Length - 1).Select(i => (corpus[i], corpus[i + 1])));
        double inCorpus = Enumerable.Range(0, half - 1).Count(i => bigrams.Contains((w[i], w[i + 1]))) / (double)(half - 1);
        Assert.True(inCorpus < 0.5, $"{inCorpus:P0} of the span's bigrams occur in the corpus: not shuffled");
        Assert.Throws<PareException>(() => new LongContextMixOptions { ShuffledRepeat = -0.1 }.Validate("cfg"));
    }

    [Fact]
    public void Copy_episodes_show_their_span_copies_times_from_the_most_frequent_tokens()
    {
        var (tok, text, _) = Ref.Value;
        var corpus = tok.Encode(string.Concat(Enumerable.Repeat(File.ReadAllText(Path.Combine(RepoRoot(), "README.md")), 3)), addSpecial: false);
        var shuffled = new LongContextMixOptions { Repeat = 1, ShuffledRepeat = 1 };
        // The defaults (2 copies, every distinct token) leave the windows of older configs unchanged.
        Assert.Equal(new LongContextMix(corpus, text, shuffled).Window(7, 2049),
            new LongContextMix(corpus, text, shuffled with { Copies = 2, CopyVocab = 0 }).Window(7, 2049));
        var w = new LongContextMix(corpus, text, shuffled with { Copies = 4, CopyVocab = 16 }).Window(7, 2049);
        var sep = text.Encode("\n\n");
        int half = -1;
        for (int h = 8; 4 * (h + sep.Length) <= w.Length && half < 0; h++)
        {
            bool ok = true;
            for (int c = 0; c < 4 && ok; c++)
                ok = w.AsSpan(c * (h + sep.Length), h).SequenceEqual(w.AsSpan(0, h)) && w.AsSpan(c * (h + sep.Length) + h, sep.Length).SequenceEqual(sep);
            if (ok) half = h;
        }
        Assert.True(half >= 24, $"no span shown 4 times at the start (half {half})");
        var top16 = corpus.GroupBy(t => t).OrderByDescending(g => g.Count()).ThenBy(g => g.Key).Take(16).Select(g => g.Key).ToHashSet();
        Assert.All(w[..half], t => Assert.Contains(t, top16));
        Assert.True(w[..half].Distinct().Count() > 8, "the span should use the sub-vocabulary, not one token");
        Assert.Throws<PareException>(() => new LongContextMixOptions { Copies = 1 }.Validate("cfg"));
        Assert.Throws<PareException>(() => new LongContextMixOptions { CopyVocab = -1 }.Validate("cfg"));
    }

    [Fact]
    public void A_byte_level_tokenizer_with_too_short_episodes_is_a_config_error()
    {
        var tok = new Gpt2BpeTokenizer(SyntheticModel.ByteLevelVocab(300));
        var text = new TokenText(tok);
        var e = Assert.Throws<PareException>(() => new LongContextMix([.. Enumerable.Range(0, 5000).Select(i => 32 + i % 90)], text, new LongContextMixOptions()));
        Assert.Contains("min_episode", e.Message);
    }

    [Fact]
    public void The_harness_is_deterministic_on_a_real_model()
    {
        var (_, text, filler) = Ref.Value;
        using var m = LlamaModel.Load(ReferenceModels.Require(ReferenceModels.PareRef));
        var o = new NeedleOptions { Task = NeedleTask.Single, Lengths = [200], Depths = [0, 1], Trials = 2, Threads = 1 };
        var (cells, runs) = NeedleHarness.Run(m, filler, text, o);
        var (cells2, runs2) = NeedleHarness.Run(m, filler, text, o);
        Assert.Equal(2, cells.Count);
        Assert.Equal(4, runs.Count);
        Assert.Equal(runs.Select(r => r.Answer), runs2.Select(r => r.Answer));
        Assert.Equal(cells, cells2);
    }

    public static TheoryData<string[], string> BadInputs() => new()
    {
        { ["--task", "haystack"], "unknown needle task 'haystack'" },
        { ["--trials", "0"], "trials must be at least 1" },
        { ["--lengths", "1001"], "exceeds 2x the model's context of 512" },
        { ["--lengths", "10"], "too short" },
        { ["--lengths", "100,x"], "not a comma-separated list" },
        { ["--depths", "1.5"], "outside 0..1" },
        { ["--task", "passkey", "--filler-text", "/nonexistent/filler.txt", "--lengths", "100"], "filler text not found" },
    };

    [Theory]
    [MemberData(nameof(BadInputs))]
    public void Bad_input_is_one_clear_line_and_exit_1(string[] args, string message)
    {
        var r = PareCli.Run(["needle", ReferenceModels.Require(ReferenceModels.PareRef), .. args, "--json"]);
        Assert.Equal(1, r.ExitCode);
        Assert.Contains(message, r.Stderr);
        Assert.Single(r.Stderr.Trim().Split('\n'));
        Assert.Equal("", r.Stdout);
    }

    [Fact]
    public void Needle_prints_a_cell_per_length_and_depth()
    {
        var r = PareCli.Run("needle", ReferenceModels.Require(ReferenceModels.PareRef), "--task", "multi", "--lengths", "150,300", "--depths", "0,1",
            "--trials", "1", "--threads", "1", "--json");
        Assert.True(r.ExitCode == 0, r.Stderr);
        var cells = r.Json.GetProperty("cells").EnumerateArray().ToArray();
        Assert.Equal(4, cells.Length);
        Assert.All(cells, c => Assert.InRange(c.GetProperty("accuracy").GetDouble(), 0, 1));
        Assert.Equal("multi", r.Json.GetProperty("task").GetString());
    }
}
