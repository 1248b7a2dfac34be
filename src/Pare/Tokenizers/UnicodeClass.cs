using System.Globalization;
using System.Text;

namespace Pare.Tokenizers;

/// <summary>The character classes llama.cpp's pre-tokenizers test (its unicode_cpt_flags): \p{L}, \p{N}, \p{P}, \s.</summary>
[Flags]
internal enum CharClass : byte
{
    None = 0, Letter = 1, Number = 2, Whitespace = 4, Punctuation = 8, Symbol = 16, Mark = 32,
}

internal static class UnicodeClass
{
    static readonly CharClass[] s_bmp = BuildBmp();

    static CharClass[] BuildBmp()
    {
        var t = new CharClass[65536];
        for (int c = 0; c < 65536; c++)
            t[c] = char.IsSurrogate((char)c) ? CharClass.None : Compute(c);
        return t;
    }

    /// <summary>llama.cpp's whitespace set: Unicode White_Space (what Python's and Rust's \s match).</summary>
    static bool IsWhitespace(int cp) => cp is >= 0x09 and <= 0x0D or 0x20 or 0x85 or 0xA0 or 0x1680
        or >= 0x2000 and <= 0x200A or 0x2028 or 0x2029 or 0x202F or 0x205F or 0x3000;

    static CharClass Compute(int cp)
    {
        var c = CharClass.None;
        if (IsWhitespace(cp)) c |= CharClass.Whitespace;
        switch (CharUnicodeInfo.GetUnicodeCategory(cp))
        {
            case UnicodeCategory.UppercaseLetter or UnicodeCategory.LowercaseLetter or UnicodeCategory.TitlecaseLetter
                or UnicodeCategory.ModifierLetter or UnicodeCategory.OtherLetter:
                c |= CharClass.Letter; break;
            case UnicodeCategory.DecimalDigitNumber or UnicodeCategory.LetterNumber or UnicodeCategory.OtherNumber:
                c |= CharClass.Number; break;
            case UnicodeCategory.ConnectorPunctuation or UnicodeCategory.DashPunctuation or UnicodeCategory.OpenPunctuation
                or UnicodeCategory.ClosePunctuation or UnicodeCategory.InitialQuotePunctuation or UnicodeCategory.FinalQuotePunctuation
                or UnicodeCategory.OtherPunctuation:
                c |= CharClass.Punctuation; break;
            case UnicodeCategory.MathSymbol or UnicodeCategory.CurrencySymbol or UnicodeCategory.ModifierSymbol or UnicodeCategory.OtherSymbol:
                c |= CharClass.Symbol; break;
            case UnicodeCategory.NonSpacingMark or UnicodeCategory.SpacingCombiningMark or UnicodeCategory.EnclosingMark:
                c |= CharClass.Mark; break;
        }
        return c;
    }

    public static CharClass Of(int cp) => (uint)cp < 65536 ? s_bmp[cp] : Compute(cp);

    /// <summary>Code points of a string (lone surrogates become U+FFFD, as UTF-8 encoding would make them).</summary>
    public static int[] CodePoints(string s)
    {
        var cps = new int[s.Length];
        int n = 0;
        for (int i = 0; i < s.Length;)
        {
            Rune.DecodeFromUtf16(s.AsSpan(i), out var r, out int used);
            cps[n++] = r.Value;
            i += used;
        }
        return n == cps.Length ? cps : cps[..n];
    }
}
