using System.Text.RegularExpressions;

namespace Pare.Data;

/// <summary>
/// Sentences of varied length drawn from a corpus split, for checking and measuring encoders: the text's lines
/// (paragraphs) are cut into sentences after ". ", "! " or "? "; nine in ten picks are sentences, one in ten a whole
/// paragraph (long inputs, some past the encoder's length limit). The draw is a seeded shuffle, so the same text and seed
/// give the same list.
/// </summary>
public static partial class SentenceSample
{
    public static IReadOnlyList<string> Draw(string text, int count, int seed = 2024)
    {
        var paragraphs = text.Split('\n').Select(l => l.Trim()).Where(l => l.Length >= 3).Distinct().ToList();
        var sentences = paragraphs.SelectMany(p => SentenceEnd().Split(p)).Select(s => s.Trim()).Where(s => s.Length >= 3).Distinct().ToList();
        if (sentences.Count == 0) throw new PareException("no sentences in the text");
        var rng = new Random(seed);
        Shuffle(sentences, rng);
        Shuffle(paragraphs, rng);
        var result = new List<string>(count);
        var seen = new HashSet<string>(StringComparer.Ordinal);
        int si = 0, pi = 0;
        while (result.Count < count && (si < sentences.Count || pi < paragraphs.Count))
        {
            bool paragraph = result.Count % 10 == 9 && pi < paragraphs.Count;
            string s = paragraph || si >= sentences.Count ? paragraphs[pi++] : sentences[si++];
            if (seen.Add(s)) result.Add(s);
        }
        return result;
    }

    static void Shuffle<T>(List<T> list, Random rng)
    {
        for (int i = list.Count - 1; i > 0; i--)
        {
            int j = rng.Next(i + 1);
            (list[i], list[j]) = (list[j], list[i]);
        }
    }

    [GeneratedRegex(@"(?<=[.!?][""')\]]?)\s+(?=[""'(\[]?[A-Z0-9])")]
    private static partial Regex SentenceEnd();
}
