using Pare.Formats.Gguf;

namespace Pare.Tokenizers;

/// <summary>llama.cpp token types (tokenizer.ggml.token_type).</summary>
public enum TokenType
{
    Undefined = 0, Normal = 1, Unknown = 2, Control = 3, UserDefined = 4, Unused = 5, Byte = 6,
}

/// <summary>
/// Everything a GGUF file stores about its tokenizer (the tokenizer.ggml.* keys). Read from a file,
/// or built by a trainer and written into a new file.
/// </summary>
public sealed record TokenizerSpec
{
    /// <summary>"gpt2" (byte-level BPE) or "llama" (SentencePiece).</summary>
    public required string Model { get; init; }
    /// <summary>tokenizer.ggml.pre: names the pre-tokenizer regex set for gpt2 models ("default", "llama3", "qwen2", ...).</summary>
    public string? Pre { get; init; }
    public required string[] Tokens { get; init; }
    /// <summary>SentencePiece scores (llama kind).</summary>
    public float[]? Scores { get; init; }
    public int[]? TokenTypes { get; init; }
    /// <summary>BPE merges "a b" in rank order (gpt2 kind).</summary>
    public string[]? Merges { get; init; }
    public int? BosId { get; init; }
    public int? EosId { get; init; }
    public int? UnknownId { get; init; }
    public int? PaddingId { get; init; }
    public bool? AddBos { get; init; }
    public bool? AddEos { get; init; }
    /// <summary>SentencePiece: prepend a space to the text before encoding (llama.cpp default true).</summary>
    public bool? AddSpacePrefix { get; init; }

    public void WriteTo(GgufWriter w)
    {
        w.Set("tokenizer.ggml.model", Model);
        if (Pre != null) w.Set("tokenizer.ggml.pre", Pre);
        w.Set("tokenizer.ggml.tokens", GgufValue.Of(Tokens));
        if (Scores != null) w.Set("tokenizer.ggml.scores", GgufValue.Of(Scores));
        if (TokenTypes != null) w.Set("tokenizer.ggml.token_type", GgufValue.Of(TokenTypes));
        if (Merges != null) w.Set("tokenizer.ggml.merges", GgufValue.Of(Merges));
        if (BosId is int b) w.Set("tokenizer.ggml.bos_token_id", (uint)b);
        if (EosId is int e) w.Set("tokenizer.ggml.eos_token_id", (uint)e);
        if (UnknownId is int u) w.Set("tokenizer.ggml.unknown_token_id", (uint)u);
        if (PaddingId is int p) w.Set("tokenizer.ggml.padding_token_id", (uint)p);
        if (AddBos is bool ab) w.Set("tokenizer.ggml.add_bos_token", ab);
        if (AddEos is bool ae) w.Set("tokenizer.ggml.add_eos_token", ae);
        if (AddSpacePrefix is bool asp) w.Set("tokenizer.ggml.add_space_prefix", asp);
    }

    public static TokenizerSpec FromGguf(GgufFile f)
    {
        string model = f.GetString("tokenizer.ggml.model") ?? throw new InvalidModelException($"{f.Path}: no tokenizer (tokenizer.ggml.model missing)");
        var tokens = f.GetArray<string>("tokenizer.ggml.tokens") ?? throw new InvalidModelException($"{f.Path}: tokenizer.ggml.tokens missing");
        int? Id(string k)
        {
            long? v = f.GetInt(k);
            if (v is null) return null;
            if (v < 0 || v >= tokens.Length) throw new InvalidModelException($"{f.Path}: {k} = {v} is outside the vocabulary of {tokens.Length}");
            return (int)v;
        }
        bool? Flag(string k) => f.GetInt(k) is long l ? l != 0 : null;
        var scores = f.GetArray<float>("tokenizer.ggml.scores");
        var types = f.GetArray<int>("tokenizer.ggml.token_type");
        if (scores != null && scores.Length != tokens.Length) throw new InvalidModelException($"{f.Path}: {scores.Length} token scores for {tokens.Length} tokens");
        if (types != null && types.Length != tokens.Length) throw new InvalidModelException($"{f.Path}: {types.Length} token types for {tokens.Length} tokens");
        return new TokenizerSpec
        {
            Model = model,
            Pre = f.GetString("tokenizer.ggml.pre"),
            Tokens = tokens,
            Scores = scores,
            TokenTypes = types,
            Merges = f.GetArray<string>("tokenizer.ggml.merges"),
            BosId = Id("tokenizer.ggml.bos_token_id"),
            EosId = Id("tokenizer.ggml.eos_token_id"),
            UnknownId = Id("tokenizer.ggml.unknown_token_id"),
            PaddingId = Id("tokenizer.ggml.padding_token_id"),
            AddBos = Flag("tokenizer.ggml.add_bos_token"),
            AddEos = Flag("tokenizer.ggml.add_eos_token"),
            AddSpacePrefix = Flag("tokenizer.ggml.add_space_prefix"),
        };
    }
}
