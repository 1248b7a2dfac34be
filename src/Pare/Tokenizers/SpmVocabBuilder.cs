namespace Pare.Tokenizers;

/// <summary>
/// Builds a SentencePiece-style vocabulary (GGUF llama kind) from text: &lt;unk&gt;, &lt;s&gt;, &lt;/s&gt;, the 256
/// &lt;0xXX&gt; byte tokens, the commonest characters, then pieces learned by BPE over ▁-joined words. Scores fall
/// with position (score = -index among pieces), so the SPM encoder prefers earlier merges. Deterministic.
/// </summary>
public static class SpmVocabBuilder
{
    const char Mark = SentencePieceTokenizer.SpaceMark;

    /// <param name="vocabSize">Total tokens. Fewer come out if the text runs out of pairs seen at least twice.</param>
    /// <param name="maxChars">At most this many single characters get their own piece (default: a quarter of the
    /// pieces); the rest are spelled with byte tokens.</param>
    public static TokenizerSpec Build(IEnumerable<string> texts, int vocabSize, int? maxChars = null)
    {
        ArgumentNullException.ThrowIfNull(texts);
        const int fixedCount = 3 + 256;
        if (vocabSize < fixedCount + 1) throw new ArgumentOutOfRangeException(nameof(vocabSize), $"vocabulary of {vocabSize} cannot hold the {fixedCount} special and byte tokens and any piece");
        int pieceBudget = vocabSize - fixedCount;

        // Words as SentencePiece sees them: spaces become ▁, a ▁ is prepended, and each word begins at a ▁.
        var wordCounts = new Dictionary<string, long>(StringComparer.Ordinal);
        var charCounts = new Dictionary<int, long>();
        foreach (var text in texts)
        {
            string s = Mark + text.Replace(' ', Mark);
            int start = 0;
            for (int i = 1; i <= s.Length; i++)
            {
                if (i < s.Length && s[i] != Mark) continue;
                var w = s[start..i];
                wordCounts[w] = wordCounts.GetValueOrDefault(w) + 1;
                start = i;
            }
            foreach (int cp in UnicodeClass.CodePoints(s)) charCounts[cp] = charCounts.GetValueOrDefault(cp) + 1;
        }
        int charLimit = Math.Max(1, Math.Min(maxChars ?? Math.Max(pieceBudget / 4, 1), pieceBudget));
        var chars = charCounts.OrderByDescending(kv => kv.Value).ThenBy(kv => kv.Key).Take(charLimit).Select(kv => kv.Key).ToList();
        if (!chars.Contains(Mark)) { chars.Insert(0, Mark); if (chars.Count > charLimit) chars.RemoveAt(chars.Count - 1); }

        var tokens = new List<string>(vocabSize) { "<unk>", "<s>", "</s>" };
        for (int b = 0; b < 256; b++) tokens.Add($"<0x{b:X2}>");
        var ids = new Dictionary<string, int>(StringComparer.Ordinal);
        for (int i = 0; i < tokens.Count; i++) ids[tokens[i]] = i;
        var charId = new Dictionary<int, int>();
        foreach (int c in chars)
        {
            string t = char.ConvertFromUtf32(c);
            if (ids.ContainsKey(t)) continue;
            charId[c] = tokens.Count;
            ids[t] = tokens.Count;
            tokens.Add(t);
        }

        var ordered = wordCounts.OrderBy(kv => kv.Key, StringComparer.Ordinal).ToList();
        var words = new List<int[]>(ordered.Count);
        var freqs = new long[ordered.Count];
        for (int i = 0; i < ordered.Count; i++)
        {
            words.Add([.. UnicodeClass.CodePoints(ordered[i].Key).Select(c => charId.TryGetValue(c, out int id) ? id : -1)]);
            freqs[i] = ordered[i].Value;
        }
        PairMerger.Learn(words, freqs, vocabSize - tokens.Count, (a, b) =>
        {
            string s = tokens[a] + tokens[b];
            if (ids.TryGetValue(s, out int existing)) return existing >= fixedCount ? existing : -1;
            ids[s] = tokens.Count;
            tokens.Add(s);
            return tokens.Count - 1;
        });

        var types = new int[tokens.Count];
        var scores = new float[tokens.Count];
        types[0] = (int)TokenType.Unknown;
        types[1] = types[2] = (int)TokenType.Control;
        for (int i = 3; i < fixedCount; i++) types[i] = (int)TokenType.Byte;
        for (int i = fixedCount; i < tokens.Count; i++) { types[i] = (int)TokenType.Normal; scores[i] = -(i - fixedCount); }
        return new TokenizerSpec
        {
            Model = "llama",
            Tokens = [.. tokens],
            Scores = scores,
            TokenTypes = types,
            BosId = 1,
            EosId = 2,
            UnknownId = 0,
            AddBos = true,
            AddEos = false,
            AddSpacePrefix = true,
        };
    }
}
