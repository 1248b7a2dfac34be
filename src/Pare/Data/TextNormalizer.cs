using System.Text;
using System.Text.RegularExpressions;

namespace Pare.Data;

/// <summary>Turns the raw files of the corpus packages into plain text with one convention: LF line ends, no trailing blanks,
/// paragraphs separated by one blank line.</summary>
public static partial class TextNormalizer
{
    /// <summary>Unifies line endings to "\n", strips trailing spaces of each line, collapses runs of blank lines into one,
    /// and trims the text.</summary>
    public static string Normalize(string text)
    {
        text = text.Replace("\r\n", "\n", StringComparison.Ordinal).Replace('\r', '\n');
        var sb = new StringBuilder(text.Length);
        int blank = 0;
        foreach (var raw in text.Split('\n'))
        {
            string line = raw.TrimEnd();
            if (line.Length == 0) { blank++; continue; }
            if (sb.Length > 0) sb.Append(blank > 0 ? "\n\n" : "\n");
            blank = 0;
            sb.Append(line);
        }
        return sb.ToString();
    }

    /// <summary>
    /// One Brown Corpus file (NLTK "word/tag" format, one tab-indented sentence per line) as plain text: tags stripped,
    /// tokens rejoined the way the words were printed (no space before "." "," ")" or a closing quote, none after "(" or an
    /// opening quote; `` and '' become straight double quotes), one sentence per line.
    /// </summary>
    public static string BrownToText(string tagged)
    {
        var sentences = new List<string>();
        foreach (var raw in tagged.Replace("\r\n", "\n", StringComparison.Ordinal).Split('\n'))
        {
            var line = raw.Trim();
            if (line.Length == 0) continue;
            var words = new List<string>();
            foreach (var tok in line.Split([' ', '\t'], StringSplitOptions.RemoveEmptyEntries))
            {
                // word/tag; the word itself may contain '/' (e.g. "1/2/cd"), so split at the last one.
                int slash = tok.LastIndexOf('/');
                words.Add(slash > 0 ? tok[..slash] : tok);
            }
            sentences.Add(Detokenize(words));
        }
        return string.Join('\n', sentences);
    }

    /// <summary>Joins word tokens with spaces, except around punctuation that is written attached.</summary>
    public static string Detokenize(IReadOnlyList<string> words)
    {
        var sb = new StringBuilder();
        bool glueNext = true; // no space before the first word
        foreach (var w0 in words)
        {
            string w = w0 switch { "``" or "''" => "\"", _ => w0 };
            bool closing = w0 is "''" or "'" || (w0.Length <= 2 && ClosingPunct().IsMatch(w0)) || w0.StartsWith("'s", StringComparison.Ordinal) && w0.Length == 2 || w0 == "n't";
            bool opening = w0 is "``" or "(" or "[" or "{" or "$";
            if (!glueNext && !closing) sb.Append(' ');
            sb.Append(w);
            glueNext = opening;
        }
        return sb.ToString();
    }

    [GeneratedRegex(@"^(\.|,|;|:|\?|!|\)|\]|\}|\.\.|\?\?|!!|%)$")]
    private static partial Regex ClosingPunct();
}
