using Pare.Formats.Gguf;

namespace Pare.Tokenizers;

/// <summary>Builds the tokenizer a GGUF file or a <see cref="TokenizerSpec"/> describes.</summary>
public static class TokenizerFactory
{
    public static ITokenizer FromGguf(GgufFile f)
    {
        ArgumentNullException.ThrowIfNull(f);
        try { return FromSpec(TokenizerSpec.FromGguf(f)); }
        catch (InvalidModelException e) when (!e.Message.StartsWith(f.Path, StringComparison.Ordinal))
        {
            throw new InvalidModelException($"{f.Path}: {e.Message}", e);
        }
    }

    /// <summary>A Hugging Face tokenizer.json (see <see cref="HfTokenizerJson"/>).</summary>
    public static ITokenizer FromHfJson(string path, int? bosId = null, int? eosId = null) => FromSpec(HfTokenizerJson.Load(path, bosId, eosId));

    public static ITokenizer FromSpec(TokenizerSpec spec)
    {
        ArgumentNullException.ThrowIfNull(spec);
        return spec.Model switch
        {
            "gpt2" => new Gpt2BpeTokenizer(spec),
            "llama" => new SentencePieceTokenizer(spec),
            _ => throw new InvalidModelException($"tokenizer model '{spec.Model}' is not supported (Pare reads gpt2 and llama)"),
        };
    }
}
