using System.Text;

namespace Pare.Tokenizers;

/// <summary>
/// Trains a byte-level BPE vocabulary (GGUF gpt2 kind) from text: the 256 byte tokens in GPT-2's printable
/// form (token id = byte value), then merges learned greedily by pair count over pre-tokenized words, then the
/// special tokens as control tokens at the end (as GPT-2 puts &lt;|endoftext|&gt; last). Deterministic.
/// </summary>
public static class BpeTrainer
{
    /// <param name="texts">Training text.</param>
    /// <param name="vocabSize">Total tokens including bytes and special tokens. Fewer come out if the text runs
    /// out of pairs seen at least twice.</param>
    /// <param name="specialTokens">Control tokens appended at the end; default "&lt;|endoftext|&gt;". BOS is the first,
    /// EOS the second (or the first again when there is one).</param>
    /// <param name="pre">The <c>tokenizer.ggml.pre</c> to write; words are split the way that pre-tokenizer splits them.
    /// "gpt-2" is llama.cpp's name for the plain GPT-2 regex (its "default" chains three more regexes after it).</param>
    /// <param name="addBos">tokenizer.ggml.add_bos_token.</param>
    public static TokenizerSpec TrainGpt2(IEnumerable<string> texts, int vocabSize, IReadOnlyList<string>? specialTokens = null,
        string pre = "gpt-2", bool addBos = false)
    {
        ArgumentNullException.ThrowIfNull(texts);
        specialTokens ??= ["<|endoftext|>"];
        if (specialTokens.Count == 0) throw new ArgumentException("at least one special token (BOS/EOS) is needed", nameof(specialTokens));
        if (specialTokens.Distinct().Count() != specialTokens.Count) throw new ArgumentException("special tokens repeat", nameof(specialTokens));
        int maxMerges = vocabSize - 256 - specialTokens.Count;
        if (maxMerges < 0) throw new ArgumentOutOfRangeException(nameof(vocabSize), $"vocabulary of {vocabSize} cannot hold 256 bytes and {specialTokens.Count} special tokens");
        var preTok = PreTokenizer.ForName(pre);

        // Count distinct words in mapped (byte-as-char) form.
        var wordCounts = new Dictionary<string, long>(StringComparer.Ordinal);
        Span<byte> buf = stackalloc byte[4];
        var sb = new StringBuilder();
        foreach (var text in texts)
        {
            var cps = UnicodeClass.CodePoints(text);
            int pos = 0;
            foreach (int len in preTok.Split(cps))
            {
                sb.Clear();
                for (int i = pos; i < pos + len; i++)
                {
                    int n = new Rune(cps[i]).EncodeToUtf8(buf);
                    for (int j = 0; j < n; j++) sb.Append(ByteUnicode.ToChar(buf[j]));
                }
                pos += len;
                var w = sb.ToString();
                wordCounts[w] = wordCounts.GetValueOrDefault(w) + 1;
            }
        }
        var ordered = wordCounts.OrderBy(kv => kv.Key, StringComparer.Ordinal).ToList();
        var words = new List<int[]>(ordered.Count);
        var freqs = new long[ordered.Count];
        for (int i = 0; i < ordered.Count; i++)
        {
            string w = ordered[i].Key;
            var ids = new int[w.Length];
            for (int j = 0; j < w.Length; j++) { ByteUnicode.TryToByte(w[j], out byte b); ids[j] = b; }
            words.Add(ids);
            freqs[i] = ordered[i].Value;
        }

        var tokens = new List<string>(vocabSize);
        for (int b = 0; b < 256; b++) tokens.Add(ByteUnicode.ToChar((byte)b).ToString());
        var ids2 = new Dictionary<string, int>(StringComparer.Ordinal);
        for (int i = 0; i < tokens.Count; i++) ids2[tokens[i]] = i;
        var special = new HashSet<string>(specialTokens, StringComparer.Ordinal);
        var mergeStrings = new List<string>(maxMerges);
        PairMerger.Learn(words, freqs, maxMerges, (a, b) =>
        {
            string s = tokens[a] + tokens[b];
            if (special.Contains(s)) return -1; // never let plain text spell a control token
            mergeStrings.Add(tokens[a] + " " + tokens[b]);
            if (ids2.TryGetValue(s, out int existing)) return existing;
            ids2[s] = tokens.Count;
            tokens.Add(s);
            return tokens.Count - 1;
        });

        int firstSpecial = tokens.Count;
        tokens.AddRange(specialTokens);
        var types = new int[tokens.Count];
        for (int i = 0; i < types.Length; i++) types[i] = (int)(i >= firstSpecial ? TokenType.Control : TokenType.Normal);
        return new TokenizerSpec
        {
            Model = "gpt2",
            Pre = pre,
            Tokens = [.. tokens],
            TokenTypes = types,
            Merges = [.. mergeStrings],
            BosId = firstSpecial,
            EosId = firstSpecial + (specialTokens.Count > 1 ? 1 : 0),
            AddBos = addBos,
            AddEos = false,
        };
    }
}
