using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Pare.Formats.Gguf;
using Pare.Formats.Safetensors;
using Pare.Tensors;

namespace Pare.Models.Bert;

/// <summary>
/// Reads and writes BERT encoders: a Hugging Face / sentence-transformers folder (<c>config.json</c>,
/// <c>model.safetensors</c>, <c>vocab.txt</c>, <c>tokenizer_config.json</c>, <c>modules.json</c>,
/// <c>1_Pooling/config.json</c>, <c>sentence_bert_config.json</c>), a GGUF in llama.cpp's <c>bert</c> layout, or an
/// ONNX file (with <c>vocab.txt</c> and the sentence-transformers files beside it).
/// </summary>
public static class BertFiles
{
    public const string WeightsFileName = "model.safetensors";
    public const string VocabFileName = "vocab.txt";

    // ---------------- sentence-transformers head ----------------

    /// <summary>Pooling, normalization, max length and casing from the sentence-transformers files of a folder;
    /// without them sentence-transformers' defaults (mean pooling, no normalization, the position table's length).</summary>
    public static BertConfig ReadHead(BertConfig c, string dir)
    {
        string where = dir;
        var pooling = BertPooling.Mean;
        bool normalize = false;
        int maxSeq = 0;
        bool lower = c.Lowercase;
        string modules = Path.Combine(dir, "modules.json");
        if (File.Exists(modules))
        {
            var arr = Parse(modules) as JsonArray ?? throw new InvalidModelException($"{modules}: not a JSON array");
            foreach (var m in arr)
            {
                string type = m?["type"]?.GetValue<string>() ?? "";
                string path = m?["path"]?.GetValue<string>() ?? "";
                if (type.EndsWith(".Normalize", StringComparison.Ordinal)) normalize = true;
                else if (type.EndsWith(".Pooling", StringComparison.Ordinal))
                {
                    string pc = Path.Combine(dir, path, "config.json");
                    if (!File.Exists(pc)) throw new InvalidModelException($"{where}: pooling module config {pc} is missing");
                    var o = Parse(pc);
                    bool cls = o?["pooling_mode_cls_token"]?.GetValue<bool>() ?? false;
                    bool mean = o?["pooling_mode_mean_tokens"]?.GetValue<bool>() ?? false;
                    bool other = (o?["pooling_mode_max_tokens"]?.GetValue<bool>() ?? false) || (o?["pooling_mode_mean_sqrt_len_tokens"]?.GetValue<bool>() ?? false);
                    if (cls == mean || other) throw new InvalidModelException($"{pc}: only one of mean or [CLS] pooling is supported");
                    pooling = cls ? BertPooling.Cls : BertPooling.Mean;
                }
                else if (!type.EndsWith(".Transformer", StringComparison.Ordinal))
                    throw new InvalidModelException($"{modules}: module '{type}' is not supported (Transformer, Pooling, Normalize are)");
            }
        }
        string sb = Path.Combine(dir, "sentence_bert_config.json");
        if (File.Exists(sb) && Parse(sb)?["max_seq_length"] is JsonValue v && v.TryGetValue<int>(out int ms)) maxSeq = ms;
        string tc = Path.Combine(dir, "tokenizer_config.json");
        if (File.Exists(tc) && Parse(tc)?["do_lower_case"] is JsonValue lv && lv.TryGetValue<bool>(out bool l)) lower = l;
        return c with { Pooling = pooling, Normalize = normalize, MaxSeqLength = maxSeq, Lowercase = lower };
    }

    static JsonNode? Parse(string path)
    {
        try { return JsonNode.Parse(File.ReadAllText(path)); }
        catch (JsonException e) { throw new InvalidModelException($"{path}: not valid JSON ({e.Message})"); }
    }

    /// <summary>Writes the sentence-transformers files that describe pooling, normalization, length and casing.</summary>
    public static void WriteHead(BertConfig c, string dir)
    {
        var opts = new JsonSerializerOptions { WriteIndented = true };
        var modules = new JsonArray(
            new JsonObject { ["idx"] = 0, ["name"] = "0", ["path"] = "", ["type"] = "sentence_transformers.models.Transformer" },
            new JsonObject { ["idx"] = 1, ["name"] = "1", ["path"] = "1_Pooling", ["type"] = "sentence_transformers.models.Pooling" });
        if (c.Normalize) modules.Add(new JsonObject { ["idx"] = 2, ["name"] = "2", ["path"] = "2_Normalize", ["type"] = "sentence_transformers.models.Normalize" });
        File.WriteAllText(Path.Combine(dir, "modules.json"), modules.ToJsonString(opts));
        Directory.CreateDirectory(Path.Combine(dir, "1_Pooling"));
        File.WriteAllText(Path.Combine(dir, "1_Pooling", "config.json"), new JsonObject
        {
            ["word_embedding_dimension"] = c.Dim,
            ["pooling_mode_cls_token"] = c.Pooling == BertPooling.Cls,
            ["pooling_mode_mean_tokens"] = c.Pooling == BertPooling.Mean,
            ["pooling_mode_max_tokens"] = false,
            ["pooling_mode_mean_sqrt_len_tokens"] = false,
        }.ToJsonString(opts));
        if (c.Normalize) Directory.CreateDirectory(Path.Combine(dir, "2_Normalize"));
        File.WriteAllText(Path.Combine(dir, "sentence_bert_config.json"), new JsonObject
        {
            ["max_seq_length"] = c.SeqLimit,
            ["do_lower_case"] = false,
        }.ToJsonString(opts));
        File.WriteAllText(Path.Combine(dir, "tokenizer_config.json"), new JsonObject
        {
            ["tokenizer_class"] = "BertTokenizer",
            ["do_lower_case"] = c.Lowercase,
            ["model_max_length"] = c.SeqLimit,
            ["unk_token"] = "[UNK]", ["sep_token"] = "[SEP]", ["pad_token"] = "[PAD]", ["cls_token"] = "[CLS]", ["mask_token"] = "[MASK]",
        }.ToJsonString(opts));
    }

    // ---------------- Hugging Face folder ----------------

    /// <summary>Writes a sentence-transformers folder: safetensors (F32), config.json, vocab.txt and the head files.</summary>
    public static void SaveHf(BertConfig c, BertTensors t, IReadOnlyList<string> vocab, string dir)
    {
        t.Validate(c, "export");
        if (vocab.Count != c.VocabSize) throw new PareException($"export: vocabulary of {vocab.Count} tokens for a model of {c.VocabSize}");
        Directory.CreateDirectory(dir);
        var st = new SafetensorsWriter().SetMetadata("format", "pt");
        foreach (var (name, shape) in BertTensors.Expected(c)) st.AddTensor(name, "F32", shape, s => WriteF32(s, t.Get(name)));
        st.Write(Path.Combine(dir, WeightsFileName));
        File.WriteAllText(Path.Combine(dir, BertConfig.ConfigFileName), c.ToHfJson());
        File.WriteAllText(Path.Combine(dir, VocabFileName), string.Join('\n', vocab) + "\n", new UTF8Encoding(false));
        WriteHead(c, dir);
    }

    static void WriteF32(Stream s, float[] data)
    {
        var buf = new byte[Math.Min(data.Length, 1 << 16) * 4];
        for (int i = 0; i < data.Length; i += buf.Length / 4)
        {
            int n = Math.Min(buf.Length / 4, data.Length - i);
            System.Runtime.InteropServices.MemoryMarshal.AsBytes(data.AsSpan(i, n)).CopyTo(buf);
            s.Write(buf, 0, n * 4);
        }
    }

    public static (BertConfig, BertTensors, string[] Vocab) LoadHf(string dir)
    {
        string cfgPath = Path.Combine(dir, BertConfig.ConfigFileName);
        if (!File.Exists(cfgPath)) throw new PareException($"{dir}: no config.json");
        var c = BertConfig.FromHfJson(File.ReadAllText(cfgPath), dir);
        c = ReadHead(c, dir);
        var files = Directory.GetFiles(dir, "*.safetensors");
        if (files.Length == 0) throw new PareException($"{dir}: no *.safetensors file");
        var t = new BertTensors();
        var wanted = BertTensors.Expected(c).ToDictionary(e => e.Name, e => e.Shape);
        foreach (var f in files)
        {
            using var st = SafetensorsFile.Open(f);
            foreach (var info in st.Tensors)
            {
                string name = info.Name.StartsWith("bert.", StringComparison.Ordinal) ? info.Name[5..] : info.Name;
                if (!wanted.ContainsKey(name)) continue;
                var type = SafetensorsDType.ToGgml(info.DType) ?? throw new InvalidModelException($"{f}: tensor '{info.Name}' has dtype {info.DType}; Pare reads F32, F16, BF16");
                var data = new float[info.ElementCount];
                Kernels.Dequant.Row(type, st.TensorBytes(info), data);
                t.Add(name, info.Shape, data);
            }
        }
        t.Validate(c, dir);
        var vocab = Tokenizers.WordPieceTokenizer.ReadVocab(Path.Combine(dir, VocabFileName));
        if (vocab.Length != c.VocabSize) throw new InvalidModelException($"{dir}: vocab.txt has {vocab.Length} tokens, config.json says {c.VocabSize}");
        return (c, t, vocab);
    }

    // ---------------- GGUF (llama.cpp arch "bert") ----------------

    /// <summary>llama.cpp's pooling_type values.</summary>
    const uint PoolingMean = 1, PoolingCls = 2;

    /// <summary>
    /// Writes a GGUF that llama.cpp loads as arch <c>bert</c>: F32 tensors under llama.cpp's names, the WordPiece vocabulary
    /// in its "phantom space" form (word-initial pieces prefixed "▁", "##" removed from continuations, control tokens as
    /// they are), the pooling type, and Pare's own keys for normalization and max length.
    /// </summary>
    public static void SaveGguf(BertConfig c, BertTensors t, IReadOnlyList<string> vocab, string path)
    {
        t.Validate(c, "export");
        if (vocab.Count != c.VocabSize) throw new PareException($"export: vocabulary of {vocab.Count} tokens for a model of {c.VocabSize}");
        var w = new GgufWriter();
        w.Set("general.architecture", "bert");
        w.Set("general.name", "pare-bert");
        w.Set("general.file_type", 0u);
        w.Set("bert.context_length", (uint)c.MaxPositions);
        w.Set("bert.embedding_length", (uint)c.Dim);
        w.Set("bert.feed_forward_length", (uint)c.FfnDim);
        w.Set("bert.block_count", (uint)c.Layers);
        w.Set("bert.attention.head_count", (uint)c.Heads);
        w.Set("bert.attention.layer_norm_epsilon", c.LayerNormEps);
        w.Set("bert.attention.causal", false);
        w.Set("bert.pooling_type", c.Pooling == BertPooling.Cls ? PoolingCls : PoolingMean);
        w.Set("pare.sentence.normalize", c.Normalize);
        w.Set("pare.sentence.max_seq_length", (uint)c.SeqLimit);
        w.Set("pare.tokenizer.lowercase", c.Lowercase);

        var control = new HashSet<string>(StringComparer.Ordinal) { "[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]" };
        var tokens = new string[vocab.Count];
        var types = new int[vocab.Count];
        for (int i = 0; i < tokens.Length; i++)
        {
            string tok = vocab[i];
            bool ctl = control.Contains(tok);
            types[i] = ctl ? 3 : 1; // CONTROL : NORMAL
            tokens[i] = ctl ? tok : tok.StartsWith("##", StringComparison.Ordinal) ? tok[2..] : "\u2581" + tok;
        }
        int Id(string tok) => Array.IndexOf(vocab is string[] a ? a : [.. vocab], tok);
        w.Set("tokenizer.ggml.model", "bert");
        w.Set("tokenizer.ggml.pre", "default");
        w.Set("tokenizer.ggml.tokens", GgufValue.Of(tokens));
        w.Set("tokenizer.ggml.token_type", GgufValue.Of(types));
        w.Set("tokenizer.ggml.token_type_count", (uint)c.TypeVocabSize);
        foreach (var (key, tok) in new[] { ("unknown", "[UNK]"), ("seperator", "[SEP]"), ("padding", "[PAD]"), ("cls", "[CLS]"), ("mask", "[MASK]"), ("bos", "[CLS]") })
        {
            int id = Id(tok);
            if (id >= 0) w.Set($"tokenizer.ggml.{key}_token_id", (uint)id);
        }

        void Add(string gguf, string hf)
        {
            var shape = t.Shape(hf);
            long[] dims = shape.Length == 2 ? [shape[1], shape[0]] : [shape[0]];
            var data = t.Get(hf);
            w.AddTensor(gguf, GgmlType.F32, dims, s => WriteF32(s, data));
        }
        Add("token_embd.weight", "embeddings.word_embeddings.weight");
        Add("token_types.weight", "embeddings.token_type_embeddings.weight");
        Add("position_embd.weight", "embeddings.position_embeddings.weight");
        Add("token_embd_norm.weight", "embeddings.LayerNorm.weight");
        Add("token_embd_norm.bias", "embeddings.LayerNorm.bias");
        foreach (var (gguf, hf) in LayerNames)
            for (int i = 0; i < c.Layers; i++) Add($"blk.{i}.{gguf}", $"encoder.layer.{i}.{hf}");
        string? dir = Path.GetDirectoryName(Path.GetFullPath(path));
        if (dir is not null) Directory.CreateDirectory(dir);
        w.Write(path);
    }

    static readonly (string Gguf, string Hf)[] LayerNames =
    [
        ("attn_q.weight", "attention.self.query.weight"), ("attn_q.bias", "attention.self.query.bias"),
        ("attn_k.weight", "attention.self.key.weight"), ("attn_k.bias", "attention.self.key.bias"),
        ("attn_v.weight", "attention.self.value.weight"), ("attn_v.bias", "attention.self.value.bias"),
        ("attn_output.weight", "attention.output.dense.weight"), ("attn_output.bias", "attention.output.dense.bias"),
        ("attn_output_norm.weight", "attention.output.LayerNorm.weight"), ("attn_output_norm.bias", "attention.output.LayerNorm.bias"),
        ("ffn_up.weight", "intermediate.dense.weight"), ("ffn_up.bias", "intermediate.dense.bias"),
        ("ffn_down.weight", "output.dense.weight"), ("ffn_down.bias", "output.dense.bias"),
        ("layer_output_norm.weight", "output.LayerNorm.weight"), ("layer_output_norm.bias", "output.LayerNorm.bias"),
    ];

    public static (BertConfig, BertTensors, string[] Vocab) LoadGguf(string path)
    {
        using var g = GgufFile.Open(path);
        string arch = g.GetString("general.architecture") ?? "";
        if (arch != "bert") throw new InvalidModelException($"{path}: architecture '{arch}' is not 'bert'");
        var c = new BertConfig
        {
            Dim = (int)g.RequireInt("bert.embedding_length"),
            Layers = (int)g.RequireInt("bert.block_count"),
            Heads = (int)g.RequireInt("bert.attention.head_count"),
            FfnDim = (int)g.RequireInt("bert.feed_forward_length"),
            MaxPositions = (int)g.RequireInt("bert.context_length"),
            LayerNormEps = (float)(g.GetFloat("bert.attention.layer_norm_epsilon") ?? 1e-12),
            Pooling = (g.GetInt("bert.pooling_type") ?? PoolingMean) switch
            {
                PoolingMean => BertPooling.Mean,
                PoolingCls => BertPooling.Cls,
                var p => throw new InvalidModelException($"{path}: pooling type {p} is not supported (1 mean, 2 cls)"),
            },
            Normalize = g.Metadata.TryGetValue("pare.sentence.normalize", out var nv) ? nv.Value is true : true,
            MaxSeqLength = (int)(g.GetInt("pare.sentence.max_seq_length") ?? 0),
            Lowercase = !g.Metadata.TryGetValue("pare.tokenizer.lowercase", out var lv) || lv.Value is true,
        };
        string model = g.GetString("tokenizer.ggml.model") ?? "";
        if (model != "bert") throw new InvalidModelException($"{path}: tokenizer model '{model}' is not 'bert' (WordPiece)");
        var tokens = g.GetArray<string>("tokenizer.ggml.tokens") ?? throw new InvalidModelException($"{path}: no tokenizer.ggml.tokens");
        var types = g.GetArray<int>("tokenizer.ggml.token_type");
        var vocab = new string[tokens.Length];
        for (int i = 0; i < tokens.Length; i++)
        {
            string tok = tokens[i];
            bool ctl = types is not null && i < types.Length && types[i] == 3;
            vocab[i] = ctl ? tok : tok.StartsWith('\u2581') ? tok[1..] : "##" + tok;
        }
        var t = new BertTensors();
        void Read(string gguf, string hf)
        {
            var info = g.GetTensor(gguf);
            long[] shape = info.Dims.Length == 2 ? [info.Dims[1], info.Dims[0]] : [info.Dims[0]];
            if (info.ElementCount > 1L << 30) throw new InvalidModelException($"{path}: tensor '{gguf}' is too large");
            var data = new float[info.ElementCount];
            int cols = (int)info.Dims[0];
            var bytes = g.TensorBytes(info);
            long rowBytes = GgmlTypeInfo.RowBytes(info.Type, cols);
            for (long r = 0; r < info.ElementCount / cols; r++)
                Kernels.Dequant.Row(info.Type, bytes.Slice((int)(r * rowBytes), (int)rowBytes), data.AsSpan((int)(r * cols), cols));
            t.Add(hf, shape, data);
        }
        Read("token_embd.weight", "embeddings.word_embeddings.weight");
        Read("token_types.weight", "embeddings.token_type_embeddings.weight");
        Read("position_embd.weight", "embeddings.position_embeddings.weight");
        Read("token_embd_norm.weight", "embeddings.LayerNorm.weight");
        Read("token_embd_norm.bias", "embeddings.LayerNorm.bias");
        foreach (var (gguf, hf) in LayerNames)
            for (int i = 0; i < c.Layers; i++) Read($"blk.{i}.{gguf}", $"encoder.layer.{i}.{hf}");
        var word = t.Shape("embeddings.word_embeddings.weight");
        c = c with { VocabSize = (int)word[0], TypeVocabSize = (int)t.Shape("embeddings.token_type_embeddings.weight")[0] };
        c.Validate(path);
        if (vocab.Length != c.VocabSize) throw new InvalidModelException($"{path}: {vocab.Length} tokens for {c.VocabSize} embedding rows");
        t.Validate(c, path);
        return (c, t, vocab);
    }

    // ---------------- ONNX ----------------

    /// <summary>Imports an ONNX file; vocab.txt and the sentence-transformers files are read from its folder.</summary>
    public static (BertConfig, BertTensors, string[] Vocab) LoadOnnx(string path)
    {
        var (c, t) = BertOnnxImport.Import(path);
        string dir = Path.GetDirectoryName(Path.GetFullPath(path)) ?? ".";
        string vocabPath = Path.Combine(dir, VocabFileName);
        if (!File.Exists(vocabPath)) throw new PareException($"{path}: no vocab.txt beside the ONNX file");
        var vocab = Tokenizers.WordPieceTokenizer.ReadVocab(vocabPath);
        if (vocab.Length != c.VocabSize) throw new InvalidModelException($"{vocabPath}: {vocab.Length} tokens, the model has {c.VocabSize} embedding rows");
        c = ReadHead(c, dir);
        return (c, t, vocab);
    }

    /// <summary>Loads any of the three forms by what <paramref name="path"/> is.</summary>
    public static (BertConfig, BertTensors, string[] Vocab) Load(string path)
    {
        if (Directory.Exists(path)) return LoadHf(path);
        if (!File.Exists(path)) throw new PareException($"{path}: no such file or folder");
        if (path.EndsWith(".onnx", StringComparison.OrdinalIgnoreCase)) return LoadOnnx(path);
        Span<byte> magic = stackalloc byte[4];
        using (var fs = File.OpenRead(path)) if (fs.Read(magic) < 4) throw new InvalidModelException($"{path}: too short to be a model");
        if (magic.SequenceEqual("GGUF"u8)) return LoadGguf(path);
        return LoadOnnx(path);
    }
}
