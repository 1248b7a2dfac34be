using System.Text;

namespace Pare.Tokenizers;

/// <summary>
/// Turns token ids into text one at a time, as they are generated. A character split across tokens
/// (an emoji spelled as four byte tokens) is held back until it is complete, so the text returned never
/// contains a broken character; the concatenation of every <see cref="Push"/> and the final <see cref="Flush"/>
/// equals <see cref="TokenizerText.Decode"/> of the whole sequence.
/// </summary>
public sealed class StreamingDecoder
{
    readonly ITokenizer _tok;
    readonly bool _stripSpacePrefix;
    // The UTF-8 decoder keeps an incomplete trailing sequence between calls and replaces invalid bytes by U+FFFD.
    readonly Decoder _utf8 = new UTF8Encoding(false, false).GetDecoder();
    bool _first = true;

    /// <param name="stripSpacePrefix">Drop the space prefix of the first SentencePiece text token (see <see cref="TokenizerText.DecodeBytes"/>).</param>
    public StreamingDecoder(ITokenizer tokenizer, bool stripSpacePrefix = true)
    {
        ArgumentNullException.ThrowIfNull(tokenizer);
        _tok = tokenizer;
        _stripSpacePrefix = stripSpacePrefix;
    }

    /// <summary>Adds one token; returns the text it completes (often empty while a character is incomplete).</summary>
    public string Push(int id)
    {
        var bytes = _tok.TokenBytes(id);
        if (bytes.Length == 0) return "";
        int skip = _first && _stripSpacePrefix && TokenizerText.StartsWithPrefixSpace(_tok, id) ? 1 : 0;
        _first = false;
        return Decode(bytes.AsSpan(skip), flush: false);
    }

    /// <summary>Ends the stream: bytes of an incomplete character still held come out as U+FFFD.</summary>
    public string Flush()
    {
        string s = Decode([], flush: true);
        _first = true;
        return s;
    }

    string Decode(ReadOnlySpan<byte> bytes, bool flush)
    {
        int n = _utf8.GetCharCount(bytes, flush);
        if (n == 0)
        {
            // GetCharCount does not consume; GetChars must still see the bytes so they stay buffered.
            _utf8.GetChars(bytes, Span<char>.Empty, flush);
            return "";
        }
        var chars = new char[n];
        int written = _utf8.GetChars(bytes, chars, flush);
        return new string(chars, 0, written);
    }
}
