using System.Collections.Concurrent;
using System.Text;

namespace Pare.Tokenizers;

/// <summary>
/// Byte-level BPE (GGUF <c>tokenizer.ggml.model = gpt2</c>) as llama.cpp's llm_tokenizer_bpe does it:
/// split around special tokens, pre-tokenize by <see cref="PreTokenizer"/>, map each word's UTF-8 bytes
/// to GPT-2's printable chars, then repeatedly merge the adjacent pair of lowest merge rank (ties: leftmost).
/// </summary>
/// <remarks>
/// Written here rather than taken from Microsoft.ML.Tokenizers: its BPE runs its own pre-tokenizer regexes
/// and special-token rules, and does not have llama.cpp's "default" regex chain, ignore_merges or
/// user-defined-token splitting, so its ids differ from llama.cpp's on ordinary text.
/// </remarks>
public sealed class Gpt2BpeTokenizer : ITokenizer
{
    const int MaxCachedWords = 1 << 18;

    readonly Vocabulary _vocab;
    readonly PreTokenizer _pre;
    /// <summary>Symbol strings: ids below the vocabulary size are tokens; above are merge results missing from the vocabulary.</summary>
    readonly List<string> _symbols;
    /// <summary>(left, right) symbol pair to (rank, merged symbol).</summary>
    readonly Dictionary<long, (int Rank, int Result)> _merges;
    readonly int[] _charSymbol = new int[256];
    readonly ConcurrentDictionary<string, int[]> _cache = new(StringComparer.Ordinal);

    public TokenizerSpec Spec { get; }
    public int VocabSize => _vocab.Count;
    public int? BosId { get; }
    public int? EosId { get; }
    public bool AddBos { get; }
    public bool AddEos { get; }
    public PreTokenizer PreTokenizer => _pre;

    public Gpt2BpeTokenizer(TokenizerSpec spec)
    {
        ArgumentNullException.ThrowIfNull(spec);
        if (spec.Model != "gpt2") throw new InvalidModelException($"tokenizer model '{spec.Model}' is not gpt2 (byte-level BPE)");
        Spec = spec;
        _vocab = new Vocabulary(spec);
        _pre = PreTokenizer.ForName(spec.Pre);
        BosId = spec.BosId;
        EosId = spec.EosId;
        AddBos = spec.AddBos ?? _pre.DefaultAddBos;
        AddEos = spec.AddEos ?? false;
        if (AddBos && BosId is null) throw new InvalidModelException("tokenizer asks to add BOS but has no bos_token_id");
        if (AddEos && EosId is null) throw new InvalidModelException("tokenizer asks to add EOS but has no eos_token_id");

        var symbolIds = new Dictionary<string, int>(_vocab.Ids, StringComparer.Ordinal);
        _symbols = [.. _vocab.Tokens];
        int Intern(string s)
        {
            if (symbolIds.TryGetValue(s, out int id)) return id;
            symbolIds[s] = _symbols.Count;
            _symbols.Add(s);
            return _symbols.Count - 1;
        }
        var merges = spec.Merges ?? throw new InvalidModelException("gpt2 tokenizer has no merges (tokenizer.ggml.merges)");
        _merges = new Dictionary<long, (int, int)>(merges.Length);
        for (int r = 0; r < merges.Length; r++)
        {
            string m = merges[r];
            int sp = m.Length > 1 ? m.IndexOf(' ', 1) : -1;
            if (sp < 0) throw new InvalidModelException($"merge {r} '{m}' is not two tokens separated by a space");
            string a = m[..sp], b = m[(sp + 1)..];
            if (!_vocab.Ids.TryGetValue(a, out int ia)) throw new InvalidModelException($"merge {r} '{m}' names '{a}', which is not in the vocabulary");
            if (!_vocab.Ids.TryGetValue(b, out int ib)) throw new InvalidModelException($"merge {r} '{m}' names '{b}', which is not in the vocabulary");
            _merges.TryAdd(Key(ia, ib), (r, Intern(a + b))); // first rank wins, as in llama.cpp's bpe_ranks.emplace
        }
        for (int c = 0; c < 256; c++) _charSymbol[c] = Intern(ByteUnicode.ToChar((byte)c).ToString());
    }

    static long Key(int a, int b) => ((long)a << 32) | (uint)b;

    public int[] Encode(string text, bool addSpecial = true, bool parseSpecial = false)
    {
        ArgumentNullException.ThrowIfNull(text);
        text = Vocabulary.Sanitize(text);
        var output = new List<int>(text.Length / 3 + 2);
        if (addSpecial && AddBos) output.Add(BosId!.Value);
        foreach (var fr in _vocab.Partition(text, parseSpecial))
        {
            if (fr.Token >= 0) { output.Add(fr.Token); continue; }
            EncodeRaw(text.AsSpan(fr.Start, fr.Length), output);
        }
        if (addSpecial && AddEos) output.Add(EosId!.Value);
        return [.. output];
    }

    void EncodeRaw(ReadOnlySpan<char> text, List<int> output)
    {
        var cps = UnicodeClass.CodePoints(text.ToString());
        Span<byte> buf = stackalloc byte[4];
        var sb = new StringBuilder();
        int pos = 0;
        foreach (int len in _pre.Split(cps))
        {
            sb.Clear();
            for (int i = pos; i < pos + len; i++)
            {
                int n = new Rune(cps[i]).EncodeToUtf8(buf);
                for (int j = 0; j < n; j++) sb.Append(ByteUnicode.ToChar(buf[j]));
            }
            pos += len;
            string word = sb.ToString();
            if (_cache.TryGetValue(word, out var ids)) { output.AddRange(ids); continue; }
            ids = EncodeWord(word);
            if (_cache.Count < MaxCachedWords) _cache.TryAdd(word, ids);
            output.AddRange(ids);
        }
    }

    /// <summary>BPE over one mapped word (llm_tokenizer_bpe_session::tokenize for one word).</summary>
    int[] EncodeWord(string word)
    {
        if (_pre.IgnoreMerges && _vocab.Ids.TryGetValue(word, out int whole)) return [whole];
        int n = word.Length; // mapped chars are all in the BMP: one char per symbol
        var sym = new int[n];
        var prev = new int[n];
        var next = new int[n];
        for (int i = 0; i < n; i++)
        {
            ByteUnicode.TryToByte(word[i], out byte b); // words are built from mapped bytes only
            sym[i] = _charSymbol[b];
            prev[i] = i - 1;
            next[i] = i + 1 < n ? i + 1 : -1;
        }
        var queue = new PriorityQueue<(int Left, int Right, int LeftSym, int RightSym, int Result), (int Rank, int Left)>();
        void TryAdd(int l, int r)
        {
            if (l < 0 || r < 0) return;
            if (_merges.TryGetValue(Key(sym[l], sym[r]), out var m)) queue.Enqueue((l, r, sym[l], sym[r], m.Result), (m.Rank, l));
        }
        for (int i = 1; i < n; i++) TryAdd(i - 1, i);
        while (queue.TryDequeue(out var bg, out _))
        {
            // Skip bigrams made stale by an earlier merge (llama.cpp compares the texts; ids are the same test).
            if (sym[bg.Left] != bg.LeftSym || sym[bg.Right] != bg.RightSym) continue;
            sym[bg.Left] = bg.Result;
            sym[bg.Right] = -1;
            next[bg.Left] = next[bg.Right];
            if (next[bg.Right] >= 0) prev[next[bg.Right]] = bg.Left;
            TryAdd(prev[bg.Left], bg.Left);
            TryAdd(bg.Left, next[bg.Left]);
        }
        var ids = new List<int>(n);
        for (int i = 0; i >= 0; i = next[i])
        {
            int s = sym[i];
            if (s < _vocab.Count) { ids.Add(s); continue; }
            // A merge result missing from the vocabulary: llama.cpp falls back to single-byte tokens of its text.
            foreach (char c in _symbols[s])
                if (c < 0x80 && _vocab.Ids.TryGetValue(c.ToString(), out int t)) ids.Add(t);
        }
        return [.. ids];
    }

    /// <summary>llama.cpp's token_to_piece without special: normal tokens decode GPT-2 chars to bytes,
    /// user-defined tokens give their text, everything else (control, unknown, byte, unused) nothing.</summary>
    public byte[] TokenBytes(int id)
    {
        _vocab.Check(id);
        return _vocab.Types[id] switch
        {
            TokenType.Normal => ByteUnicode.Decode(_vocab.Tokens[id]),
            TokenType.UserDefined => Encoding.UTF8.GetBytes(_vocab.Tokens[id]),
            _ => [],
        };
    }

    public string TokenText(int id)
    {
        _vocab.Check(id);
        return _vocab.Tokens[id];
    }

    public TokenType GetTokenType(int id)
    {
        _vocab.Check(id);
        return _vocab.Types[id];
    }

    public bool IsControl(int id) => GetTokenType(id) == TokenType.Control;
}
