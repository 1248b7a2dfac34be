using System.Text;
using System.Text.Json;
using Pare.Tensors;

namespace Pare.Models;

/// <summary>
/// The fields of a Hugging Face <c>config.json</c> that describe a Llama-family decoder
/// (<c>LlamaForCausalLM</c>, <c>MistralForCausalLM</c>, <c>Qwen2ForCausalLM</c>). Defaults are those of the
/// transformers config classes; the shape fields have no sensible default and are required.
/// </summary>
public sealed record HfConfig
{
    public const string FileName = "config.json";
    const long MaxBytes = 16L << 20;

    /// <summary>"llama", "mistral" or "qwen2".</summary>
    public required string ModelType { get; init; }
    /// <summary>e.g. ["LlamaForCausalLM"]; informational.</summary>
    public IReadOnlyList<string> Architectures { get; init; } = [];
    public required int HiddenSize { get; init; }
    public required int NumHiddenLayers { get; init; }
    public required int NumAttentionHeads { get; init; }
    /// <summary>Defaults to <see cref="NumAttentionHeads"/> (no grouped-query attention).</summary>
    public int? NumKeyValueHeads { get; init; }
    /// <summary>Defaults to hidden_size / num_attention_heads.</summary>
    public int? HeadDim { get; init; }
    public required int IntermediateSize { get; init; }
    public required int VocabSize { get; init; }
    public int MaxPositionEmbeddings { get; init; } = 2048;
    public double RopeTheta { get; init; } = 10000;
    public double RmsNormEps { get; init; } = 1e-6;
    public bool TieWordEmbeddings { get; init; }
    /// <summary>Llama/Mistral: biases on q, k, v and o projections. Qwen2 always has q/k/v biases and no o bias.</summary>
    public bool AttentionBias { get; init; }
    /// <summary>Mistral (and Qwen2 with use_sliding_window): attention looks back at most this many tokens.</summary>
    public int? SlidingWindow { get; init; }
    public string HiddenAct { get; init; } = "silu";
    /// <summary>"float32", "float16", "bfloat16"; informational.</summary>
    public string? TorchDtype { get; init; }
    public int? BosTokenId { get; init; }
    public IReadOnlyList<int> EosTokenIds { get; init; } = [];

    public int KvHeads => NumKeyValueHeads ?? NumAttentionHeads;
    public int HeadDimOrDefault => HeadDim ?? (NumAttentionHeads > 0 ? HiddenSize / NumAttentionHeads : 0);
    public bool IsQwen2 => ModelType == "qwen2";

    /// <summary>Reads <c>config.json</c> from a file path.</summary>
    public static HfConfig Load(string path)
    {
        if (!File.Exists(path)) throw new PareException($"config file not found: {path}");
        long size = new FileInfo(path).Length;
        if (size > MaxBytes) throw new InvalidModelException($"{path}: {size} bytes is too large for a config.json");
        byte[] bytes;
        try { bytes = File.ReadAllBytes(path); }
        catch (IOException e) { throw new PareException($"{path}: cannot read: {e.Message}", e); }
        return Parse(bytes, path);
    }

    /// <summary>Parses config.json text; <paramref name="source"/> names it in errors.</summary>
    public static HfConfig Parse(ReadOnlySpan<byte> json, string source)
    {
        if (!System.Text.Unicode.Utf8.IsValid(json)) throw new InvalidModelException($"{source}: not valid UTF-8");
        JsonDocument doc;
        try { doc = JsonDocument.Parse(json.ToArray(), new JsonDocumentOptions { MaxDepth = 32, AllowTrailingCommas = true, CommentHandling = JsonCommentHandling.Skip }); }
        catch (JsonException e) { throw new InvalidModelException($"{source}: not valid JSON: {e.Message.ReplaceLineEndings(" ")}", e); }
        using (doc)
        {
            var r = doc.RootElement;
            if (r.ValueKind != JsonValueKind.Object) throw new InvalidModelException($"{source}: not a JSON object");
            var p = new Props(r, source);

            string modelType = p.Str("model_type") ?? throw new InvalidModelException($"{source}: missing 'model_type'");
            if (modelType is not ("llama" or "mistral" or "qwen2"))
                throw new InvalidModelException($"{source}: model_type '{modelType}' is not supported (llama, mistral, qwen2)");

            string act = p.Str("hidden_act") ?? "silu";
            if (act != "silu") throw new InvalidModelException($"{source}: hidden_act '{act}' is not supported (silu)");
            if (p.Bool("mlp_bias") == true) throw new InvalidModelException($"{source}: mlp_bias is not supported");
            double? partial = p.Double("partial_rotary_factor");
            if (partial is { } pf && pf != 1.0) throw new InvalidModelException($"{source}: partial_rotary_factor {pf} is not supported");
            double ropeTheta = p.Double("rope_theta") ?? 10000;
            // transformers >= 4.56 may move rope settings into "rope_parameters"; older ones use "rope_scaling".
            foreach (var key in new[] { "rope_scaling", "rope_parameters" })
            {
                if (!r.TryGetProperty(key, out var rs) || rs.ValueKind == JsonValueKind.Null) continue;
                if (rs.ValueKind != JsonValueKind.Object) throw new InvalidModelException($"{source}: '{key}' is not an object");
                var rp = new Props(rs, $"{source}: {key}");
                string kind = rp.Str("rope_type") ?? rp.Str("type") ?? "default";
                if (kind != "default") throw new InvalidModelException($"{source}: {key} type '{kind}' is not supported (only unscaled RoPE)");
                ropeTheta = rp.Double("rope_theta") ?? ropeTheta;
            }

            // Sliding-window attention only differs from full attention beyond the window; see ToLlamaConfig.
            int? window = modelType switch
            {
                "mistral" => p.Int("sliding_window"),
                "qwen2" => p.Bool("use_sliding_window") == true ? p.Int("sliding_window") : null,
                _ => null,
            };

            var eos = new List<int>();
            if (r.TryGetProperty("eos_token_id", out var e) && e.ValueKind != JsonValueKind.Null)
            {
                if (e.ValueKind == JsonValueKind.Number && e.TryGetInt32(out int one)) eos.Add(one);
                else if (e.ValueKind == JsonValueKind.Array)
                    foreach (var x in e.EnumerateArray()) if (x.ValueKind == JsonValueKind.Number && x.TryGetInt32(out int id)) eos.Add(id);
            }

            var archs = new List<string>();
            if (r.TryGetProperty("architectures", out var a) && a.ValueKind == JsonValueKind.Array)
                foreach (var x in a.EnumerateArray()) if (x.ValueKind == JsonValueKind.String) archs.Add(x.GetString()!);

            return new HfConfig
            {
                ModelType = modelType,
                Architectures = archs,
                HiddenSize = p.RequireInt("hidden_size"),
                NumHiddenLayers = p.RequireInt("num_hidden_layers"),
                NumAttentionHeads = p.RequireInt("num_attention_heads"),
                NumKeyValueHeads = p.Int("num_key_value_heads"),
                HeadDim = p.Int("head_dim"),
                IntermediateSize = p.RequireInt("intermediate_size"),
                VocabSize = p.RequireInt("vocab_size"),
                MaxPositionEmbeddings = p.Int("max_position_embeddings") ?? 2048,
                RopeTheta = ropeTheta,
                RmsNormEps = p.Double("rms_norm_eps") ?? 1e-6,
                TieWordEmbeddings = p.Bool("tie_word_embeddings") ?? false,
                AttentionBias = p.Bool("attention_bias") ?? false,
                SlidingWindow = window,
                HiddenAct = act,
                TorchDtype = p.Str("torch_dtype") ?? p.Str("dtype"),
                BosTokenId = p.Int("bos_token_id"),
                EosTokenIds = eos,
            };
        }
    }

    /// <summary>The engine's description of this model; validated.</summary>
    public LlamaConfig ToLlamaConfig(string source)
    {
        // Llama/Mistral attention_bias also puts a bias on o_proj, which the engine's weights do not carry.
        if (AttentionBias && !IsQwen2) throw new InvalidModelException($"{source}: attention_bias (q/k/v and o_proj biases) is only supported for qwen2");
        if (NumAttentionHeads <= 0) throw new InvalidModelException($"{source}: num_attention_heads {NumAttentionHeads} is out of range");
        int ctx = MaxPositionEmbeddings;
        // Within the window sliding-window attention equals full attention, so limiting the context is exact.
        if (SlidingWindow is int w && w > 0 && w < ctx) ctx = w;
        var cfg = new LlamaConfig
        {
            Architecture = IsQwen2 ? "qwen2" : "llama",
            Dim = HiddenSize,
            Layers = NumHiddenLayers,
            Heads = NumAttentionHeads,
            KvHeads = KvHeads,
            HeadDim = HeadDimOrDefault,
            FfnDim = IntermediateSize,
            VocabSize = VocabSize,
            ContextLength = ctx,
            RopeBase = (float)RopeTheta,
            RopeDim = HeadDimOrDefault,
            // HF checkpoints keep q/k rows in the order the model was trained with: RoPE pairs (x[i], x[i + d/2]).
            // llama.cpp's converter permutes those rows (per head, row i -> 2i, row i + d/2 -> 2i + 1) so it can
            // rotate adjacent pairs instead. Both are the same linear map up to a fixed relabelling of the head's
            // dimensions, applied identically to q and k, so q·k and every logit agree. Loading HF weights unpermuted
            // and running half-split ("neox") RoPE is therefore exactly the original model.
            RopeLayout = RopeLayout.HalfSplit,
            RmsEps = (float)RmsNormEps,
            QkvBias = IsQwen2,
            TiedEmbeddings = TieWordEmbeddings,
        };
        cfg.Validate(source);
        return cfg;
    }

    /// <summary>
    /// The config.json of an engine model. Llama models with q/k/v biases are written as qwen2, which is exactly
    /// that architecture (HF llama's attention_bias would also demand an o_proj bias).
    /// </summary>
    public static HfConfig FromLlamaConfig(LlamaConfig c, string torchDtype) => new()
    {
        ModelType = c.Architecture == "qwen2" || c.QkvBias ? "qwen2" : "llama",
        Architectures = [c.Architecture == "qwen2" || c.QkvBias ? "Qwen2ForCausalLM" : "LlamaForCausalLM"],
        HiddenSize = c.Dim,
        NumHiddenLayers = c.Layers,
        NumAttentionHeads = c.Heads,
        NumKeyValueHeads = c.KvHeads,
        HeadDim = c.HeadDim,
        IntermediateSize = c.FfnDim,
        VocabSize = c.VocabSize,
        MaxPositionEmbeddings = c.ContextLength,
        RopeTheta = c.RopeBase,
        RmsNormEps = c.RmsEps,
        TieWordEmbeddings = c.TiedEmbeddings,
        TorchDtype = torchDtype,
    };

    /// <summary>config.json text, indented like the files transformers writes.</summary>
    public string ToJson()
    {
        using var ms = new MemoryStream();
        using (var w = new Utf8JsonWriter(ms, new JsonWriterOptions { Indented = true }))
        {
            w.WriteStartObject();
            w.WriteStartArray("architectures");
            foreach (var a in Architectures) w.WriteStringValue(a);
            w.WriteEndArray();
            w.WriteString("model_type", ModelType);
            w.WriteNumber("hidden_size", HiddenSize);
            w.WriteNumber("intermediate_size", IntermediateSize);
            w.WriteNumber("num_hidden_layers", NumHiddenLayers);
            w.WriteNumber("num_attention_heads", NumAttentionHeads);
            w.WriteNumber("num_key_value_heads", KvHeads);
            w.WriteNumber("head_dim", HeadDimOrDefault);
            w.WriteNumber("vocab_size", VocabSize);
            w.WriteNumber("max_position_embeddings", MaxPositionEmbeddings);
            // Written as float: the shortest text that reads back to the engine's float exactly.
            w.WriteNumber("rope_theta", (float)RopeTheta);
            w.WriteNumber("rms_norm_eps", (float)RmsNormEps);
            w.WriteBoolean("tie_word_embeddings", TieWordEmbeddings);
            if (!IsQwen2) { w.WriteBoolean("attention_bias", AttentionBias); w.WriteBoolean("mlp_bias", false); }
            w.WriteNull("rope_scaling");
            w.WriteString("hidden_act", HiddenAct);
            if (TorchDtype != null) w.WriteString("torch_dtype", TorchDtype);
            if (BosTokenId is int bos) w.WriteNumber("bos_token_id", bos);
            if (EosTokenIds.Count == 1) w.WriteNumber("eos_token_id", EosTokenIds[0]);
            else if (EosTokenIds.Count > 1) { w.WriteStartArray("eos_token_id"); foreach (var id in EosTokenIds) w.WriteNumberValue(id); w.WriteEndArray(); }
            w.WriteEndObject();
        }
        return Encoding.UTF8.GetString(ms.ToArray()) + "\n";
    }

    /// <summary>Typed, checked access to optional properties; a present value of the wrong type is an error.</summary>
    readonly struct Props(JsonElement obj, string source)
    {
        bool TryGet(string key, out JsonElement v) => obj.TryGetProperty(key, out v) && v.ValueKind != JsonValueKind.Null;
        InvalidModelException Wrong(string key, JsonElement v, string what) => new($"{source}: '{key}' is {Clip(v.GetRawText())}, expected {what}");
        static string Clip(string s) => s.Length > 40 ? s[..40] + "..." : s.ReplaceLineEndings(" ");

        public string? Str(string key) => !TryGet(key, out var v) ? null
            : v.ValueKind == JsonValueKind.String ? v.GetString() : throw Wrong(key, v, "a string");
        public int? Int(string key)
        {
            if (!TryGet(key, out var v)) return null;
            if (v.ValueKind == JsonValueKind.Number && v.TryGetInt32(out int i)) return i;
            // Some tools write integers as 4096.0.
            if (v.ValueKind == JsonValueKind.Number && v.TryGetDouble(out double d) && d == Math.Floor(d) && Math.Abs(d) <= int.MaxValue) return (int)d;
            throw Wrong(key, v, "an integer");
        }
        public int RequireInt(string key) => Int(key) ?? throw new InvalidModelException($"{source}: missing '{key}'");
        public double? Double(string key) => !TryGet(key, out var v) ? null
            : v.ValueKind == JsonValueKind.Number && v.TryGetDouble(out double d) && double.IsFinite(d) ? d : throw Wrong(key, v, "a number");
        public bool? Bool(string key) => !TryGet(key, out var v) ? null
            : v.ValueKind is JsonValueKind.True or JsonValueKind.False ? v.GetBoolean() : throw Wrong(key, v, "true or false");
    }
}
