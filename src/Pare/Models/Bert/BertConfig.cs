using System.Text.Json;
using System.Text.Json.Nodes;

namespace Pare.Models.Bert;

/// <summary>How token vectors become one sentence vector (sentence-transformers' Pooling module).</summary>
public enum BertPooling
{
    /// <summary>Average of the token vectors of the sentence ([CLS] and [SEP] included), as all-MiniLM-L6-v2.</summary>
    Mean,
    /// <summary>The [CLS] token's vector, as Snowflake arctic-embed.</summary>
    Cls,
}

/// <summary>
/// Shape and settings of a BERT encoder (Hugging Face <c>BertModel</c>): post-LayerNorm blocks, absolute learned
/// positions, token types, GELU (erf) feed-forward; plus the sentence-transformers head (pooling, L2 normalization,
/// max sequence length).
/// </summary>
public sealed record BertConfig
{
    public int VocabSize { get; init; }
    /// <summary>Hidden size (384 for MiniLM-L6).</summary>
    public int Dim { get; init; }
    public int Layers { get; init; }
    public int Heads { get; init; }
    public int FfnDim { get; init; }
    /// <summary>Rows of the position table (512): the longest input the model can take.</summary>
    public int MaxPositions { get; init; }
    public int TypeVocabSize { get; init; } = 2;
    public float LayerNormEps { get; init; } = 1e-12f;
    public BertPooling Pooling { get; init; } = BertPooling.Mean;
    /// <summary>Whether sentence vectors are scaled to unit length (sentence-transformers' Normalize module).</summary>
    public bool Normalize { get; init; } = true;
    /// <summary>Inputs are truncated to this many tokens, [CLS] and [SEP] included (sentence-transformers' max_seq_length;
    /// at most <see cref="MaxPositions"/>).</summary>
    public int MaxSeqLength { get; init; }
    /// <summary>Whether the WordPiece tokenizer lowercases and strips accents (uncased vocabularies).</summary>
    public bool Lowercase { get; init; } = true;

    public int HeadDim => Dim / Heads;
    public int SeqLimit => MaxSeqLength > 0 ? Math.Min(MaxSeqLength, MaxPositions) : MaxPositions;

    public void Validate(string where)
    {
        if (VocabSize <= 0 || Dim <= 0 || Layers <= 0 || Heads <= 0 || FfnDim <= 0 || MaxPositions <= 2 || TypeVocabSize <= 0)
            throw new InvalidModelException($"{where}: bad BERT shape (vocab {VocabSize}, hidden {Dim}, layers {Layers}, heads {Heads}, ffn {FfnDim}, positions {MaxPositions}, types {TypeVocabSize})");
        if (Dim % Heads != 0) throw new InvalidModelException($"{where}: hidden size {Dim} is not a multiple of {Heads} heads");
        if (Dim > 1 << 16 || FfnDim > 1 << 18 || Layers > 512 || VocabSize > 1 << 24 || MaxPositions > 1 << 20)
            throw new InvalidModelException($"{where}: BERT shape too large to be real");
        if (!(LayerNormEps > 0 && LayerNormEps < 1)) throw new InvalidModelException($"{where}: layer norm epsilon {LayerNormEps} out of range");
    }

    public const string ConfigFileName = "config.json";

    /// <summary>Hugging Face <c>config.json</c> of a <c>BertModel</c>.</summary>
    public string ToHfJson() => new JsonObject
    {
        ["architectures"] = new JsonArray("BertModel"),
        ["model_type"] = "bert",
        ["vocab_size"] = VocabSize,
        ["hidden_size"] = Dim,
        ["num_hidden_layers"] = Layers,
        ["num_attention_heads"] = Heads,
        ["intermediate_size"] = FfnDim,
        ["hidden_act"] = "gelu",
        ["max_position_embeddings"] = MaxPositions,
        ["type_vocab_size"] = TypeVocabSize,
        ["layer_norm_eps"] = LayerNormEps,
        ["position_embedding_type"] = "absolute",
        ["pad_token_id"] = 0,
        ["hidden_dropout_prob"] = 0.1,
        ["attention_probs_dropout_prob"] = 0.1,
        ["initializer_range"] = 0.02,
        ["torch_dtype"] = "float32",
    }.ToJsonString(new JsonSerializerOptions { WriteIndented = true });

    /// <summary>Reads the encoder shape from a Hugging Face <c>config.json</c> (pooling and lengths keep their defaults).</summary>
    public static BertConfig FromHfJson(string json, string where)
    {
        JsonNode? root;
        try { root = JsonNode.Parse(json); }
        catch (JsonException ex) { throw new InvalidModelException($"{where}: config.json is not valid JSON ({ex.Message})"); }
        if (root is not JsonObject o) throw new InvalidModelException($"{where}: config.json is not a JSON object");
        string type = o["model_type"]?.GetValue<string>() ?? "";
        if (type != "bert") throw new InvalidModelException($"{where}: config.json model_type is '{type}', not 'bert'");
        string act = o["hidden_act"]?.GetValue<string>() ?? "gelu";
        if (act != "gelu") throw new InvalidModelException($"{where}: hidden_act '{act}' is not supported (only 'gelu', the erf form)");
        string pos = o["position_embedding_type"]?.GetValue<string>() ?? "absolute";
        if (pos != "absolute") throw new InvalidModelException($"{where}: position_embedding_type '{pos}' is not supported (only 'absolute')");
        int Int(string k) => o[k] is JsonValue v && v.TryGetValue<int>(out int i) ? i : throw new InvalidModelException($"{where}: config.json lacks an integer '{k}'");
        var c = new BertConfig
        {
            VocabSize = Int("vocab_size"), Dim = Int("hidden_size"), Layers = Int("num_hidden_layers"), Heads = Int("num_attention_heads"),
            FfnDim = Int("intermediate_size"), MaxPositions = Int("max_position_embeddings"),
            TypeVocabSize = o["type_vocab_size"] is null ? 2 : Int("type_vocab_size"),
            LayerNormEps = o["layer_norm_eps"] is JsonValue e && e.TryGetValue<double>(out double eps) ? (float)eps : 1e-12f,
        };
        c.Validate(where);
        return c;
    }
}
