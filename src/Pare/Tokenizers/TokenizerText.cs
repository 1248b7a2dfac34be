using System.Text;

namespace Pare.Tokenizers;

/// <summary>Turning token ids back into text.</summary>
public static class TokenizerText
{
    /// <summary>
    /// The UTF-8 bytes of <paramref name="ids"/> (control tokens give none). With <paramref name="stripSpacePrefix"/>,
    /// a SentencePiece tokenizer that adds a space prefix drops the one space its first text token starts with,
    /// so that Decode(Encode(text)) == text. (llama.cpp's llama_detokenize strips it only when no BOS leads;
    /// Pare strips it in both cases, which is what a round trip needs.)
    /// </summary>
    public static byte[] DecodeBytes(this ITokenizer tok, ReadOnlySpan<int> ids, bool stripSpacePrefix = true)
    {
        ArgumentNullException.ThrowIfNull(tok);
        var bytes = new List<byte>(ids.Length * 4);
        bool first = true;
        foreach (int id in ids)
        {
            var b = tok.TokenBytes(id);
            if (b.Length == 0) continue;
            int skip = first && stripSpacePrefix && StartsWithPrefixSpace(tok, id) ? 1 : 0;
            first = false;
            for (int i = skip; i < b.Length; i++) bytes.Add(b[i]);
        }
        return [.. bytes];
    }

    /// <summary>Text of <paramref name="ids"/>; invalid UTF-8 becomes U+FFFD. See <see cref="DecodeBytes"/>.</summary>
    public static string Decode(this ITokenizer tok, ReadOnlySpan<int> ids, bool stripSpacePrefix = true) =>
        Encoding.UTF8.GetString(DecodeBytes(tok, ids, stripSpacePrefix));

    /// <summary>Whether the token is a normal SentencePiece piece starting with the ▁ that add_space_prefix put there.</summary>
    internal static bool StartsWithPrefixSpace(ITokenizer tok, int id) =>
        tok is SentencePieceTokenizer { AddSpacePrefix: true } spm
        && spm.GetTokenType(id) == TokenType.Normal
        && spm.TokenText(id).StartsWith(SentencePieceTokenizer.SpaceMark);
}
