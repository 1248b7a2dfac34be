using System.Globalization;
using System.Text;

namespace Pare.Tokenizers;

/// <summary>Options of <see cref="WordPieceTokenizer"/> (defaults: an uncased BERT vocabulary).</summary>
public sealed record WordPieceOptions
{
    /// <summary>Lowercase the text (uncased models). Default true.</summary>
    public bool Lowercase { get; init; } = true;
    /// <summary>Remove accents (NFD, then drop non-spacing marks); null = same as <see cref="Lowercase"/>, as BERT does.</summary>
    public bool? StripAccents { get; init; }
    /// <summary>Put spaces around CJK ideographs so each is its own word. Default true.</summary>
    public bool SplitChinese { get; init; } = true;
    /// <summary>Words longer than this many characters become [UNK]. Default 100 (BERT).</summary>
    public int MaxInputCharsPerWord { get; init; } = 100;
}

/// <summary>
/// BERT's tokenizer: basic tokenization (drop control characters, map whitespace to spaces, split CJK ideographs,
/// split on whitespace, lowercase and strip accents, split off every punctuation character) and then WordPiece
/// (greedy longest match from the left, continuation pieces prefixed "##", a word with no match is one [UNK]).
/// Encoding for the model adds [CLS] … [SEP] and truncates to a maximum length as Hugging Face does.
/// </summary>
public sealed class WordPieceTokenizer : ITokenizer
{
    readonly string[] _vocab;
    readonly Dictionary<string, int> _ids = new(StringComparer.Ordinal);
    readonly WordPieceOptions _o;

    public WordPieceTokenizer(IReadOnlyList<string> vocab, WordPieceOptions? options = null)
    {
        _o = options ?? new WordPieceOptions();
        _vocab = [.. vocab];
        for (int i = 0; i < _vocab.Length; i++) _ids.TryAdd(_vocab[i], i);
        UnkId = Require("[UNK]"); ClsId = Require("[CLS]"); SepId = Require("[SEP]");
        PadId = _ids.GetValueOrDefault("[PAD]", 0);
        MaskId = _ids.TryGetValue("[MASK]", out int m) ? m : null;
    }

    int Require(string token) => _ids.TryGetValue(token, out int id) ? id : throw new InvalidModelException($"WordPiece vocabulary has no {token} token");

    /// <summary>Reads a <c>vocab.txt</c> (one token per line, id = line number).</summary>
    public static WordPieceTokenizer FromVocabFile(string path, WordPieceOptions? options = null) => new(ReadVocab(path), options);

    public static string[] ReadVocab(string path)
    {
        if (!File.Exists(path)) throw new PareException($"{path}: no such vocabulary file");
        var lines = File.ReadAllLines(path, Encoding.UTF8);
        int n = lines.Length;
        while (n > 0 && lines[n - 1].Length == 0) n--; // trailing newline
        if (n == 0) throw new InvalidModelException($"{path}: empty vocabulary");
        return [.. lines.Take(n).Select(l => l.TrimEnd('\r'))];
    }

    public IReadOnlyList<string> Vocab => _vocab;
    public WordPieceOptions Options => _o;
    public int UnkId { get; }
    public int ClsId { get; }
    public int SepId { get; }
    public int PadId { get; }
    public int? MaskId { get; }

    public int VocabSize => _vocab.Length;
    public int? BosId => ClsId;
    public int? EosId => SepId;
    public bool AddBos => true;

    /// <summary>Token ids; with <paramref name="addSpecial"/> wrapped in [CLS] … [SEP] (no truncation).</summary>
    public int[] Encode(string text, bool addSpecial = true, bool parseSpecial = false)
    {
        var ids = new List<int>();
        if (addSpecial) ids.Add(ClsId);
        foreach (var word in BasicTokenize(text)) WordPiece(word, ids);
        if (addSpecial) ids.Add(SepId);
        return [.. ids];
    }

    /// <summary>
    /// [CLS] pieces [SEP], the pieces cut so the whole fits in <paramref name="maxLength"/> tokens (sentence-transformers
    /// truncation); <c>Truncated</c> says whether any piece was dropped.
    /// </summary>
    public (int[] Ids, bool Truncated) EncodeForModel(string text, int maxLength)
    {
        if (maxLength < 2) throw new ArgumentOutOfRangeException(nameof(maxLength), "room for [CLS] and [SEP] is needed");
        var pieces = new List<int>();
        foreach (var word in BasicTokenize(text)) WordPiece(word, pieces);
        bool truncated = pieces.Count > maxLength - 2;
        var ids = new int[Math.Min(pieces.Count, maxLength - 2) + 2];
        ids[0] = ClsId;
        for (int i = 1; i < ids.Length - 1; i++) ids[i] = pieces[i - 1];
        ids[^1] = SepId;
        return (ids, truncated);
    }

    /// <summary>BERT's basic tokenization: the words and punctuation marks WordPiece then splits.</summary>
    public List<string> BasicTokenize(string text)
    {
        // Clean: drop NUL, U+FFFD and control characters; every whitespace becomes a space; CJK ideographs get spaces around.
        var sb = new StringBuilder(text.Length + 8);
        foreach (var r in text.EnumerateRunes())
        {
            int cp = r.Value;
            if (cp == 0 || cp == 0xFFFD || IsControl(r)) continue;
            if (IsWhitespace(r)) { sb.Append(' '); continue; }
            if (_o.SplitChinese && IsChinese(cp)) { sb.Append(' ').Append(r.ToString()).Append(' '); continue; }
            sb.Append(r.ToString());
        }
        bool strip = _o.StripAccents ?? _o.Lowercase;
        var words = new List<string>();
        foreach (var raw in sb.ToString().Split(' ', StringSplitOptions.RemoveEmptyEntries))
        {
            string w = raw;
            if (_o.Lowercase) w = w.ToLowerInvariant();
            if (strip) w = StripAccents(w);
            SplitPunctuation(w, words);
        }
        return words;
    }

    static string StripAccents(string s)
    {
        string nfd = s.Normalize(NormalizationForm.FormD);
        var sb = new StringBuilder(nfd.Length);
        foreach (var r in nfd.EnumerateRunes())
            if (Rune.GetUnicodeCategory(r) != UnicodeCategory.NonSpacingMark) sb.Append(r.ToString());
        return sb.ToString();
    }

    static void SplitPunctuation(string w, List<string> into)
    {
        int start = 0, i = 0;
        foreach (var r in w.EnumerateRunes())
        {
            if (IsPunctuation(r))
            {
                if (i > start) into.Add(w[start..i]);
                into.Add(w.Substring(i, r.Utf16SequenceLength));
                start = i + r.Utf16SequenceLength;
            }
            i += r.Utf16SequenceLength;
        }
        if (w.Length > start) into.Add(w[start..]);
    }

    /// <summary>Greedy longest-match-first WordPiece of one word; a word with an unmatched rest is a single [UNK].</summary>
    void WordPiece(string word, List<int> into)
    {
        // Boundaries of code points (a piece never splits a surrogate pair).
        var bounds = new List<int> { 0 };
        foreach (var r in word.EnumerateRunes()) bounds.Add(bounds[^1] + r.Utf16SequenceLength);
        int chars = bounds.Count - 1;
        if (chars > _o.MaxInputCharsPerWord) { into.Add(UnkId); return; }
        int mark = into.Count;
        int start = 0;
        while (start < chars)
        {
            int found = -1, end = chars;
            for (; end > start; end--)
            {
                string sub = word[bounds[start]..bounds[end]];
                if (start > 0) sub = "##" + sub;
                if (_ids.TryGetValue(sub, out int id)) { found = id; break; }
            }
            if (found < 0)
            {
                into.RemoveRange(mark, into.Count - mark);
                into.Add(UnkId);
                return;
            }
            into.Add(found);
            start = end;
        }
    }

    static bool IsWhitespace(Rune r) =>
        r.Value is ' ' or '\t' or '\n' or '\r' || Rune.GetUnicodeCategory(r) == UnicodeCategory.SpaceSeparator;

    static bool IsControl(Rune r)
    {
        if (r.Value is '\t' or '\n' or '\r') return false;
        var c = Rune.GetUnicodeCategory(r);
        return c is UnicodeCategory.Control or UnicodeCategory.Format or UnicodeCategory.Surrogate or UnicodeCategory.PrivateUse or UnicodeCategory.OtherNotAssigned;
    }

    /// <summary>ASCII non-alphanumeric symbols count as punctuation (BERT), as do all Unicode P* categories.</summary>
    static bool IsPunctuation(Rune r)
    {
        int cp = r.Value;
        if ((cp >= 33 && cp <= 47) || (cp >= 58 && cp <= 64) || (cp >= 91 && cp <= 96) || (cp >= 123 && cp <= 126)) return true;
        return Rune.GetUnicodeCategory(r) is UnicodeCategory.ConnectorPunctuation or UnicodeCategory.DashPunctuation or UnicodeCategory.OpenPunctuation
            or UnicodeCategory.ClosePunctuation or UnicodeCategory.InitialQuotePunctuation or UnicodeCategory.FinalQuotePunctuation or UnicodeCategory.OtherPunctuation;
    }

    /// <summary>The CJK Unified Ideographs blocks BERT splits (not Hangul, Hiragana or Katakana).</summary>
    static bool IsChinese(int cp) =>
        (cp >= 0x4E00 && cp <= 0x9FFF) || (cp >= 0x3400 && cp <= 0x4DBF) || (cp >= 0x20000 && cp <= 0x2A6DF) || (cp >= 0x2A700 && cp <= 0x2B73F)
        || (cp >= 0x2B740 && cp <= 0x2B81F) || (cp >= 0x2B820 && cp <= 0x2CEAF) || (cp >= 0xF900 && cp <= 0xFAFF) || (cp >= 0x2F800 && cp <= 0x2FA1F);

    public byte[] TokenBytes(int id)
    {
        if (IsControl(id)) return [];
        string t = TokenText(id);
        return Encoding.UTF8.GetBytes(t.StartsWith("##", StringComparison.Ordinal) ? t[2..] : " " + t);
    }

    public string TokenText(int id) => (uint)id < (uint)_vocab.Length ? _vocab[id] : throw new PareException($"token id {id} is outside the vocabulary of {_vocab.Length}");

    public bool IsControl(int id) => id == ClsId || id == SepId || id == PadId || id == MaskId;
}
