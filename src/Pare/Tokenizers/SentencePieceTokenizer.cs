using System.Text;

namespace Pare.Tokenizers;

/// <summary>
/// SentencePiece BPE (GGUF <c>tokenizer.ggml.model = llama</c>) as llama.cpp's llm_tokenizer_spm does it:
/// spaces become U+2581 (▁), a ▁ is prepended to each text fragment at the start or after a special token
/// (add_space_prefix), then the adjacent pair whose concatenation is the highest-scoring token is merged
/// until none is left (ties: leftmost). Characters that end up in no token fall back to &lt;0xXX&gt; byte tokens.
/// </summary>
public sealed class SentencePieceTokenizer : ITokenizer
{
    public const char SpaceMark = '\u2581';

    readonly Vocabulary _vocab;
    readonly float[] _scores;
    readonly int[] _byteTokens = new int[256];
    /// <summary>Chars that some token has right before a ▁; a ▁ after any other char starts an independent chunk.</summary>
    readonly HashSet<char> _beforeMark = [];
    readonly System.Collections.Concurrent.ConcurrentDictionary<string, int[]> _cache = new(StringComparer.Ordinal);
    const int MaxCachedChunks = 1 << 18;

    public TokenizerSpec Spec { get; }
    public int VocabSize => _vocab.Count;
    public int? BosId { get; }
    public int? EosId { get; }
    public int? UnknownId { get; }
    public bool AddBos { get; }
    public bool AddEos { get; }
    public bool AddSpacePrefix { get; }

    public SentencePieceTokenizer(TokenizerSpec spec)
    {
        ArgumentNullException.ThrowIfNull(spec);
        if (spec.Model != "llama") throw new InvalidModelException($"tokenizer model '{spec.Model}' is not llama (SentencePiece)");
        Spec = spec;
        _vocab = new Vocabulary(spec);
        _scores = spec.Scores ?? new float[_vocab.Count];
        if (_scores.Length != _vocab.Count) throw new InvalidModelException($"{_scores.Length} token scores for {_vocab.Count} tokens");
        // llama.cpp's defaults for the llama kind: bos 1, eos 2, unk 0, add_bos true, add_space_prefix true.
        BosId = spec.BosId ?? (_vocab.Count > 1 ? 1 : null);
        EosId = spec.EosId ?? (_vocab.Count > 2 ? 2 : null);
        UnknownId = spec.UnknownId ?? 0;
        AddBos = spec.AddBos ?? true;
        AddEos = spec.AddEos ?? false;
        AddSpacePrefix = spec.AddSpacePrefix ?? true;
        if (AddBos && BosId is null) throw new InvalidModelException("tokenizer asks to add BOS but has no bos_token_id");
        foreach (var t in _vocab.Tokens)
            for (int k = t.IndexOf(SpaceMark, 1); k > 0; k = t.IndexOf(SpaceMark, k + 1)) _beforeMark.Add(t[k - 1]);
        for (int b = 0; b < 256; b++)
        {
            // llama.cpp's byte_to_token: "<0xXX>", else the one-byte string itself.
            if (_vocab.Ids.TryGetValue($"<0x{b:X2}>", out int id)) _byteTokens[b] = id;
            else if (b < 0x80 && _vocab.Ids.TryGetValue(((char)b).ToString(), out id)) _byteTokens[b] = id;
            else _byteTokens[b] = -1;
        }
    }

    public int[] Encode(string text, bool addSpecial = true, bool parseSpecial = false)
    {
        ArgumentNullException.ThrowIfNull(text);
        text = Vocabulary.Sanitize(text);
        var output = new List<int>(text.Length / 3 + 2);
        bool prevSpecial = true; // the start counts as "after a special token": it gets the space prefix
        if (addSpecial && AddBos) output.Add(BosId!.Value);
        var sb = new StringBuilder();
        foreach (var fr in _vocab.Partition(text, parseSpecial))
        {
            if (fr.Token >= 0) { output.Add(fr.Token); prevSpecial = true; continue; }
            sb.Clear();
            if (AddSpacePrefix && prevSpecial) sb.Append(' ');
            sb.Append(text, fr.Start, fr.Length);
            sb.Replace(' ', SpaceMark);
            EncodeRaw(sb.ToString(), output);
            prevSpecial = false;
        }
        if (addSpecial && AddEos)
        {
            if (EosId is null) throw new InvalidModelException("tokenizer asks to add EOS but has no eos_token_id");
            output.Add(EosId.Value);
        }
        return [.. output];
    }

    /// <summary>
    /// llama.cpp runs the merge loop over the whole fragment at once. Where no token can span a boundary (a ▁ after a
    /// char that no token has before a ▁) the two sides never interact, so each side is encoded alone and cached:
    /// same result, far less work.
    /// </summary>
    void EncodeRaw(string text, List<int> output)
    {
        int start = 0;
        for (int p = 1; p <= text.Length; p++)
        {
            if (p < text.Length && (text[p] != SpaceMark || _beforeMark.Contains(text[p - 1]))) continue;
            string chunk = text[start..p];
            start = p;
            if (!_cache.TryGetValue(chunk, out var ids))
            {
                var list = new List<int>(chunk.Length);
                EncodeChunk(chunk, list);
                ids = [.. list];
                if (_cache.Count < MaxCachedChunks && chunk.Length < 256) _cache.TryAdd(chunk, ids);
            }
            output.AddRange(ids);
        }
    }

    /// <summary>llm_tokenizer_spm_session::tokenize over one escaped fragment.</summary>
    void EncodeChunk(string text, List<int> output)
    {
        // Symbols are code points: (start, length) in chars, linked as a list.
        int n = 0;
        var start = new int[text.Length];
        var len = new int[text.Length];
        for (int i = 0; i < text.Length;)
        {
            int l = char.IsHighSurrogate(text[i]) && i + 1 < text.Length && char.IsLowSurrogate(text[i + 1]) ? 2 : 1;
            start[n] = i; len[n] = l; n++;
            i += l;
        }
        var prev = new int[n];
        var next = new int[n];
        for (int i = 0; i < n; i++) { prev[i] = i - 1; next[i] = i + 1 < n ? i + 1 : -1; }

        // Highest score first, then leftmost: the min-queue key is (-score, left).
        var queue = new PriorityQueue<(int Left, int Right, int Size), (float NegScore, int Left)>();
        void TryAdd(int l, int r)
        {
            if (l < 0 || r < 0) return;
            int size = len[l] + len[r];
            if (!_vocab.SpanIds.TryGetValue(text.AsSpan(start[l], size), out int tok)) return;
            queue.Enqueue((l, r, size), (-_scores[tok], l));
        }
        for (int i = 1; i < n; i++) TryAdd(i - 1, i);
        while (queue.TryDequeue(out var bg, out _))
        {
            if (len[bg.Left] == 0 || len[bg.Right] == 0 || len[bg.Left] + len[bg.Right] != bg.Size) continue;
            len[bg.Left] += len[bg.Right];
            len[bg.Right] = 0;
            next[bg.Left] = next[bg.Right];
            if (next[bg.Right] >= 0) prev[next[bg.Right]] = bg.Left;
            TryAdd(prev[bg.Left], bg.Left);
            TryAdd(bg.Left, next[bg.Left]);
        }
        Span<byte> buf = stackalloc byte[4];
        for (int i = 0; n > 0 && i >= 0; i = next[i])
        {
            var piece = text.AsSpan(start[i], len[i]);
            if (_vocab.SpanIds.TryGetValue(piece, out int tok)) { output.Add(tok); continue; }
            // Merged symbols are always tokens; only single characters get here. Fall back to their UTF-8 bytes.
            int nb = Encoding.UTF8.GetBytes(piece, buf);
            for (int j = 0; j < nb; j++)
            {
                int t = _byteTokens[buf[j]];
                if (t < 0) t = UnknownId is int u && u < _vocab.Count ? u
                    : throw new InvalidModelException($"vocabulary has no byte token <0x{buf[j]:X2}> and no unknown token");
                output.Add(t);
            }
        }
    }

    /// <summary>llama.cpp's token_to_piece without special: normal tokens with ▁ as space, byte tokens as
    /// their byte, user-defined tokens as their text; control, unknown and unused tokens give nothing.</summary>
    public byte[] TokenBytes(int id)
    {
        _vocab.Check(id);
        string t = _vocab.Tokens[id];
        switch (_vocab.Types[id])
        {
            case TokenType.Normal: return Encoding.UTF8.GetBytes(t.Replace(SpaceMark, ' '));
            case TokenType.UserDefined: return Encoding.UTF8.GetBytes(t);
            case TokenType.Byte:
                if (t.Length == 6 && t.StartsWith("<0x", StringComparison.Ordinal) && t[5] == '>'
                    && byte.TryParse(t.AsSpan(3, 2), System.Globalization.NumberStyles.HexNumber, null, out byte b)) return [b];
                throw new InvalidModelException($"byte token {id} '{t}' is not of the form <0xXX>");
            default: return [];
        }
    }

    public string TokenText(int id)
    {
        _vocab.Check(id);
        return _vocab.Tokens[id];
    }

    public float Score(int id)
    {
        _vocab.Check(id);
        return _scores[id];
    }

    public TokenType GetTokenType(int id)
    {
        _vocab.Check(id);
        return _vocab.Types[id];
    }

    public bool IsControl(int id) => GetTokenType(id) == TokenType.Control;
}
