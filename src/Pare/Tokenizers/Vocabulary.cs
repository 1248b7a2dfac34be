namespace Pare.Tokenizers;

/// <summary>
/// What both tokenizer kinds share: the token table, token types, the text-to-id map, and llama.cpp's
/// split of input text around special tokens (tokenizer_st_partition).
/// </summary>
internal sealed class Vocabulary
{
    public string[] Tokens { get; }
    public TokenType[] Types { get; }
    /// <summary>Text to id; on duplicate texts the last id wins, as in llama.cpp's token_to_id.</summary>
    public Dictionary<string, int> Ids { get; }
    public Dictionary<string, int>.AlternateLookup<ReadOnlySpan<char>> SpanIds { get; }
    /// <summary>Control, user-defined and unknown tokens, longest text first: the order llama.cpp tries them in.</summary>
    readonly int[] _special;

    public Vocabulary(TokenizerSpec spec)
    {
        Tokens = spec.Tokens;
        if (Tokens.Length == 0) throw new InvalidModelException("tokenizer has an empty vocabulary");
        Types = new TokenType[Tokens.Length];
        for (int i = 0; i < Tokens.Length; i++)
            Types[i] = spec.TokenTypes is { } t ? (Enum.IsDefined((TokenType)t[i]) ? (TokenType)t[i] : TokenType.Undefined) : TokenType.Normal;
        Ids = new Dictionary<string, int>(Tokens.Length, StringComparer.Ordinal);
        for (int i = 0; i < Tokens.Length; i++) Ids[Tokens[i]] = i;
        SpanIds = Ids.GetAlternateLookup<ReadOnlySpan<char>>();
        _special = Enumerable.Range(0, Tokens.Length)
            .Where(i => Types[i] is TokenType.Control or TokenType.UserDefined or TokenType.Unknown && Tokens[i].Length > 0)
            .OrderByDescending(i => Tokens[i].Length).ThenBy(i => i).ToArray();
    }

    public int Count => Tokens.Length;

    public void Check(int id)
    {
        if ((uint)id >= (uint)Tokens.Length) throw new PareException($"token id {id} is outside the vocabulary of {Tokens.Length}");
    }

    /// <summary>A piece of input: raw text (Token = -1) or a special token.</summary>
    public readonly record struct Fragment(int Token, int Start, int Length);

    /// <summary>
    /// Splits <paramref name="text"/> at occurrences of special tokens, longest first. User-defined tokens always split;
    /// control and unknown tokens only with <paramref name="parseSpecial"/> (llama.cpp's rule).
    /// </summary>
    public List<Fragment> Partition(string text, bool parseSpecial)
    {
        var frags = new List<Fragment>();
        if (text.Length == 0) return frags;
        frags.Add(new(-1, 0, text.Length));
        foreach (int id in _special)
        {
            if (!parseSpecial && Types[id] != TokenType.UserDefined) continue;
            string s = Tokens[id];
            for (int f = 0; f < frags.Count; f++)
            {
                var fr = frags[f];
                if (fr.Token >= 0) continue;
                int m = text.IndexOf(s, fr.Start, fr.Length, StringComparison.Ordinal);
                if (m < 0) continue;
                var repl = new List<Fragment>(3);
                if (m > fr.Start) repl.Add(new(-1, fr.Start, m - fr.Start));
                repl.Add(new(id, m, s.Length));
                int rest = fr.Start + fr.Length - (m + s.Length);
                if (rest > 0) repl.Add(new(-1, m + s.Length, rest));
                frags.RemoveAt(f);
                frags.InsertRange(f, repl);
                f += repl.Count - (rest > 0 ? 2 : 1); // continue with the remainder on the right
            }
        }
        return frags;
    }

    /// <summary>Replaces lone surrogates by U+FFFD, as the UTF-8 encoding llama.cpp sees would.</summary>
    public static string Sanitize(string text)
    {
        foreach (var c in text)
            if (char.IsSurrogate(c))
                return System.Text.Encoding.UTF8.GetString(System.Text.Encoding.UTF8.GetBytes(text));
        return text;
    }
}
