using System.Text;

namespace Pare.Tests.TestSupport;

/// <summary>Deterministic text for training and checking tokenizers.</summary>
public static class TokenizerCorpus
{
    static readonly string[] s_words =
    [
        "the", "of", "and", "to", "in", "a", "is", "that", "for", "it", "as", "was", "with", "be", "by", "on", "not", "he",
        "this", "are", "or", "his", "from", "at", "which", "but", "have", "an", "had", "they", "you", "were", "their", "one",
        "all", "we", "can", "her", "has", "there", "been", "if", "more", "when", "will", "would", "who", "so", "no", "nation",
        "government", "people", "Congress", "whale", "ship", "captain", "sea", "water", "time", "year", "world", "great",
        "state", "public", "war", "peace", "country", "power", "should", "upon", "must", "every", "other", "made", "those",
        "Ahab", "Ishmael", "Queequeg", "harpoon", "voyage", "ocean", "island", "thousand", "hundred", "dollars", "treaty",
        "café", "naïve", "résumé", "señor", "Zürich", "façade", "coöperate", "don't", "it's", "we're", "they've", "I'm",
        "you'll", "he'd", "Can't", "WON'T", "東京", "日本語", "北京", "中文", "😀", "🚀", "👍🏽", "❤️", "Ελλάδα", "Москва",
    ];

    /// <summary>About <paramref name="bytes"/> of pseudo-English with numbers, punctuation and some non-ASCII words.</summary>
    public static string Synthetic(int bytes, int seed = 1234)
    {
        var rng = new Random(seed);
        var sb = new StringBuilder(bytes + 100);
        int sentence = 0, counted = 0, size = 0;
        while (size < bytes)
        {
            size += Encoding.UTF8.GetByteCount(sb.ToString(counted, sb.Length - counted));
            counted = sb.Length;
            int n = rng.Next(4, 16);
            for (int i = 0; i < n; i++)
            {
                string w = s_words[Math.Min(s_words.Length - 1, (int)(s_words.Length * Math.Pow(rng.NextDouble(), 2.2)))];
                if (i == 0) w = char.ToUpperInvariant(w[0]) + w[1..];
                sb.Append(w);
                int r = rng.Next(40);
                if (r == 0) sb.Append(", ").Append(rng.Next(1, 100000)).Append(' ');
                else if (r == 1) sb.Append(" (").Append(rng.Next(1700, 2030)).Append(") ");
                else if (r == 2) sb.Append("; ");
                else if (r == 3) sb.Append(" $").Append(rng.Next(1, 999)).Append('.').Append(rng.Next(10, 99)).Append(' ');
                else if (i < n - 1) sb.Append(' ');
            }
            sb.Append(rng.Next(6) switch { 0 => "? ", 1 => "! ", _ => ". " });
            if (++sentence % 5 == 0) sb.Append(rng.Next(3) == 0 ? "\n\n" : "\n");
        }
        return sb.ToString();
    }

    public const string MultiParagraph =
        "The quick brown fox jumps over the lazy dog. It's 2024, and we've counted 1234567 sheep—twice!\n" +
        "Prices rose 3.5% to $1,299.99 (or €1.234,56); see https://example.com/a_b?c=d&e=f#g.\n\n" +
        "  Indented line with    multiple   spaces, tabs\tand\t\ttrailing spaces   \n" +
        "Accents: café, naïve, résumé, Zürich, São Paulo, Ærøskøbing. Greek: Ελλάδα. Russian: Москва!\n" +
        "CJK: 東京は日本の首都です。中文测试，你好世界！한국어 텍스트.\n" +
        "Emoji: 😀🚀 👍🏽 ❤️ 👨‍👩‍👧‍👦 and flags 🇫🇷🇯🇵.\n\n\n" +
        "Contractions: I'm, you'll, he'd, they're, CAN'T, Won'T; quotes \"double\" and 'single'.\n" +
        "Math: 2+2=4, x^2 < y | z ~ w, a_b, 10/3 ≈ 3.333…, ½ ² ³ Ⅻ ١٢٣.\r\n" +
        "Code: if (x != y) { return a->b[i] * 42; } // comment <tag attr=\"v\"/>\n" +
        "\u00a0non-breaking\u2003em-space\u3000ideographic-space end.   ";

    public static readonly string[] EdgeCases =
    [
        "", " ", "  ", "   ", "\n", "\n\n\n", "\t", " \n ", "a", " a", "a ", "  a  ", "\n\na\n\n", "1234567", "12", " 1234567 ",
        "123 4567 89012", "don't", "I'm you'll he'd they're CAN'T We'VE", "'s 't 're", "hello world", "Hello, World!",
        "   leading", "trailing   ", "multiple   spaces   here", "tab\tseparated\tvalues", "line1\r\nline2\rline3",
        "café", "naïve résumé", "東京", "日本語のテキスト", "😀", "👨‍👩‍👧‍👦", "a😀b", "🇫🇷", "e\u0301", "ﬁ ligature",
        "!!!", "...", "?!?", "$100", "<s>", "</s>", "<|endoftext|>", "<unk>", "<0x41>", "a<s>b", "x<|endoftext|>y",
        "\u00a0", "\u2003x", "\u3000", "x\u200by", "\u0000", "\uFFFD", "Ⅻ½²", "١٢٣٤", "3.14159", "1,000,000", "ab12cd345ef6789",
        "▁", "▁▁x", "Ġ", "  \n  \n", "\n ", " \n", "a\n\nb", "hello\n\n\nworld   \n", "'''", "' s", "it''s",
    ];

    /// <summary>Random strings drawn from a mix of scripts, digits, punctuation and whitespace.</summary>
    public static IEnumerable<string> Random(int count, int seed = 99)
    {
        var rng = new Random(seed);
        string[] atoms = ["a", "b", "the", "The", " ", "  ", "\n", "\t", "1", "23", "456", "'", "'s", "'ll", ".", ",", "!", "?", "-", "$", "+", "<", ">", "|", "~", "_",
            "é", "ü", "東", "京", "😀", "👍🏽", "\u200d", "\u00a0", "\r\n", "Ω", "щ", "ß", "ﬁ", "…", "—", "²", "٣", "<s>", "</s>", "<|endoftext|>", "\uD800"];
        for (int i = 0; i < count; i++)
        {
            var sb = new StringBuilder();
            int n = rng.Next(0, 25);
            for (int j = 0; j < n; j++) sb.Append(atoms[rng.Next(atoms.Length)]);
            yield return sb.ToString();
        }
    }
}
