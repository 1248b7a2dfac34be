using Pare.Tokenizers;

namespace Pare.LongContext;

/// <summary>
/// Builds token sequences from small pieces of text: each piece is encoded on its own (no BOS) and the ids are concatenated,
/// so a haystack of exactly N tokens can be assembled. Pieces start at a space or a newline, where the GPT-2 pre-tokenizer
/// splits anyway, so the concatenation is what encoding the whole text would give in almost all cases.
/// </summary>
public sealed class TokenText(ITokenizer tokenizer)
{
    readonly Dictionary<string, int[]> _cache = new(StringComparer.Ordinal);

    public ITokenizer Tokenizer => tokenizer;

    /// <summary>Token ids of a piece (cached: templates and keys repeat).</summary>
    public int[] Encode(string piece)
    {
        if (_cache.TryGetValue(piece, out var ids)) return ids;
        ids = tokenizer.Encode(piece, addSpecial: false);
        if (_cache.Count < 1 << 16) _cache[piece] = ids;
        return ids;
    }

    /// <summary>The UTF-8 text of token ids (control tokens give nothing).</summary>
    public string Decode(ReadOnlySpan<int> ids)
    {
        var bytes = new List<byte>();
        foreach (int id in ids) bytes.AddRange(tokenizer.TokenBytes(id));
        return System.Text.Encoding.UTF8.GetString([.. bytes]);
    }
}
