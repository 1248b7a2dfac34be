using System.Text.RegularExpressions;

namespace Pare.Rag;

/// <summary>A retrievable unit of text (a paragraph of a document), already cut into sentences.</summary>
/// <param name="Source">Where it came from (file name, or document index in an evaluation set).</param>
/// <param name="Sentences">The passage's sentences, in order; the passage's text is their join by spaces.</param>
public sealed record Passage(string Source, IReadOnlyList<string> Sentences)
{
    public string Text => string.Join(' ', Sentences);
}

/// <summary>Sentence and paragraph splitting shared by the index, the pruners and the evaluation sets.</summary>
public static partial class TextSplit
{
    /// <summary>Sentences of a line of text: split after . ! ? (and a closing quote or bracket) before a capital or digit.</summary>
    public static List<string> Sentences(string text) =>
        [.. SentenceEnd().Split(text.Trim()).Select(s => s.Trim()).Where(s => s.Length > 0)];

    /// <summary>
    /// Passages of a document: blocks between blank lines, each line cut into sentences, and runs of at most
    /// <paramref name="maxSentences"/> sentences form a passage.
    /// </summary>
    public static List<Passage> Passages(string source, string text, int maxSentences)
    {
        if (maxSentences < 1) throw new PareException($"sentences per passage must be at least 1 (got {maxSentences})");
        var result = new List<Passage>();
        foreach (var block in text.ReplaceLineEndings("\n").Split("\n\n"))
        {
            var sentences = block.Split('\n').SelectMany(Sentences).ToList();
            for (int i = 0; i < sentences.Count; i += maxSentences)
                result.Add(new Passage(source, sentences.GetRange(i, Math.Min(maxSentences, sentences.Count - i))));
        }
        return result;
    }

    [GeneratedRegex(@"(?<=[.!?][""')\]]?)\s+(?=[""'(\[]?[A-Z0-9])")]
    private static partial Regex SentenceEnd();
}
