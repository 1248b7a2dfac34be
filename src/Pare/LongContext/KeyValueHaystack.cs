using System.Globalization;
using Pare.Tensors;

namespace Pare.LongContext;

/// <summary>
/// The key-value haystacks of Needle Threading (Roberts et al. 2025), adapted to a small vocabulary: a JSON-like object of
/// one pair per line, <c>"4821": "7391",</c>, whose keys and values are four-digit numbers (two tokens each with the 8k
/// tokenizer) instead of UUIDs; distinct keys. Needles are placed in a cluster at the requested depth (the first needle's
/// pair index = depth x (pairs - 1), moved back where the cluster would run past the end). Tasks: single needle, multiple needles (values in the order asked), conditional needles
/// (keys marked with '*', values in order of appearance). The threading tasks are in <see cref="Threading"/>.
/// </summary>
public static class KeyValueHaystack
{
    /// <summary>Pairs of key (with its marker, if any) and value.</summary>
    public readonly record struct Pair(string Key, string Value);

    public static string Line(Pair p) => $"\n\"{p.Key}\": \"{p.Value}\",";

    public static NeedleSample Single(SplitMix64 rng, TokenText text, int length, double depth, int followUps = 0)
    {
        var keys = new KeySource(rng);
        var needle = new Pair(keys.Next(), keys.Value());
        string question = $"\nThe value of \"{needle.Key}\" is \"";
        var build = Assemble(rng, text, keys, length, depth, [needle], text.Encode(question).Length, out var pairs);
        var sample = Finish(text, NeedleTask.Single, build, question, [needle.Value]);
        if (followUps == 0) return sample;
        // Training only: more questions about other pairs of the same haystack, each answered, after the first answer.
        var extra = new List<int>(sample.Prompt);
        var answers = new List<(int, int)>();
        void Answer(string a) { var ids = text.Encode(a); answers.Add((extra.Count, ids.Length)); extra.AddRange(ids); }
        Answer(sample.AnswerText);
        for (int i = 0; i < followUps; i++)
        {
            var p = pairs[rng.NextInt(pairs.Count)];
            extra.AddRange(text.Encode($"\nThe value of \"{p.Key}\" is \""));
            Answer($"{p.Value}\".");
        }
        return sample with { Prompt = [.. extra], AnswerText = "", EmbeddedAnswers = answers };
    }

    public static NeedleSample Multi(SplitMix64 rng, TokenText text, int length, double depth, int needles = 3)
    {
        var keys = new KeySource(rng);
        var asked = Enumerable.Range(0, needles).Select(_ => new Pair(keys.Next(), keys.Value())).ToArray();
        // Placed in the haystack in one order, asked for in another.
        var placed = asked.ToArray();
        rng.Shuffle(placed);
        string question = $"\nThe values of {string.Join(", ", asked.Select(p => $"\"{p.Key}\""))} are \"";
        var build = Assemble(rng, text, keys, length, depth, placed, text.Encode(question).Length, out _);
        return Finish(text, NeedleTask.Multi, build, question, [.. asked.Select(p => p.Value)]);
    }

    public static NeedleSample Conditional(SplitMix64 rng, TokenText text, int length, double depth, int needles = 3)
    {
        var keys = new KeySource(rng);
        var marked = Enumerable.Range(0, needles).Select(_ => new Pair("*" + keys.Next(), keys.Value())).ToArray();
        const string question = "\nThe values of the keys with a * are \"";
        var build = Assemble(rng, text, keys, length, depth, marked, text.Encode(question).Length, out _);
        return Finish(text, NeedleTask.Conditional, build, question, [.. marked.Select(p => p.Value)]);
    }

    /// <summary>The answer as the prompt's continuation: the values quoted and comma-separated (the first quote is in the prompt).</summary>
    public static string AnswerText(IReadOnlyList<string> values) => string.Join(", ", values.Select(v => $"{v}\"").Select((v, i) => i == 0 ? v : "\"" + v)) + ".";

    internal sealed record Built(int[] Haystack, int[] NeedlePositions, int Start);

    /// <summary>
    /// "{" + distractor pairs + needles at pair indices from depth x (pairs - 1) on + "\n}", of at most length - reserve tokens
    /// (reserve = the question's tokens).
    /// The distractors' count is chosen so that the haystack fills the budget; needle positions are token indices.
    /// </summary>
    internal static Built Assemble(SplitMix64 rng, TokenText text, KeySource keys, int length, double depth, IReadOnlyList<Pair> needles,
        int reserve, out List<Pair> all)
    {
        int[] open = text.Encode("{"), close = text.Encode("\n}");
        int budget = length - reserve - open.Length - close.Length;
        var needleIds = needles.Select(p => text.Encode(Line(p))).ToArray();
        int needleTokens = needleIds.Sum(n => n.Length);
        if (budget < needleTokens) throw new PareException($"a length of {length} tokens is too short for {needles.Count} needle(s) and the question");
        var distractors = new List<int[]>();
        var distractorPairs = new List<Pair>();
        int used = needleTokens;
        while (true)
        {
            var p = new Pair(keys.Next(), keys.Value());
            var ids = text.Encode(Line(p));
            if (used + ids.Length > budget) break;
            distractors.Add(ids);
            distractorPairs.Add(p);
            used += ids.Length;
        }
        int total = distractors.Count + needles.Count;
        int first = Math.Min((int)Math.Round(Math.Clamp(depth, 0, 1) * (total - 1)), total - needles.Count);
        var hay = new List<int>(open);
        var positions = new List<int>();
        all = [];
        for (int i = 0, d = 0; i < total; i++)
        {
            int n = i - first;
            if (n >= 0 && n < needles.Count)
            {
                positions.Add(hay.Count);
                hay.AddRange(needleIds[n]);
                all.Add(needles[n]);
            }
            else
            {
                hay.AddRange(distractors[d]);
                all.Add(distractorPairs[d]);
                d++;
            }
        }
        hay.AddRange(close);
        return new Built([.. hay], [.. positions], open.Length);
    }

    internal static NeedleSample Finish(TokenText text, NeedleTask task, Built b, string question, string[] gold)
    {
        int[] prompt = [.. b.Haystack, .. text.Encode(question)];
        return new NeedleSample(task, prompt, gold, AnswerText(gold), b.NeedlePositions, b.Start, b.Haystack.Length - b.Start - text.Encode("\n}").Length);
    }

    /// <summary>Distinct four-digit keys (1000..9999) and values.</summary>
    internal sealed class KeySource(SplitMix64 rng)
    {
        readonly HashSet<int> _used = [];

        public string Next()
        {
            if (_used.Count > 8000) throw new PareException("the haystack needs more than 8000 distinct keys; use a shorter length");
            int k;
            do k = 1000 + rng.NextInt(9000); while (!_used.Add(k));
            return k.ToString(CultureInfo.InvariantCulture);
        }

        /// <summary>A value: any four-digit number (values may repeat and may look like keys, as UUID values could).</summary>
        public string Value() => (1000 + rng.NextInt(9000)).ToString(CultureInfo.InvariantCulture);
    }
}
