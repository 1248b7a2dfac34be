using System.Text;

namespace Pare.Tokenizers;

/// <summary>Turns token ids into text one at a time, holding back incomplete UTF-8 sequences so output is never broken.</summary>
public sealed class StreamingDecoder(ITokenizer tokenizer)
{
    readonly Decoder _utf8 = new UTF8Encoding(false, false).GetDecoder();
    readonly char[] _chars = new char[1024];

    /// <summary>The complete characters that this token finishes.</summary>
    public string Push(int id) => Convert(tokenizer.TokenBytes(id), flush: false);

    /// <summary>Whatever is still pending (invalid trailing bytes become U+FFFD).</summary>
    public string Flush() => Convert([], flush: true);

    string Convert(byte[] bytes, bool flush)
    {
        var sb = new StringBuilder();
        _utf8.Convert(bytes, 0, bytes.Length, _chars, 0, _chars.Length, flush, out _, out int used, out _);
        sb.Append(_chars, 0, used);
        return sb.ToString();
    }
}
