using Pare.Formats.Gguf;
using Pare.Kernels;
using Pare.Tensors;

namespace Pare.Models;

/// <summary>Maps a GGUF file's llama/qwen2 metadata and tensors onto <see cref="LlamaConfig"/> and <see cref="LlamaWeights"/>.</summary>
public static class GgufLoader
{
    public static (LlamaConfig Config, LlamaWeights Weights) Load(GgufFile f)
    {
        string arch = f.GetString("general.architecture") ?? throw new InvalidModelException($"{f.Path}: general.architecture missing");
        // deci: llama.cpp's heterogeneous Llama (per-layer head counts and FFN widths), written by structured pruning.
        // slicegpt: Pare's own SliceGPT variant (rotated, sliced residual; per-block shortcut matrices); llama.cpp cannot run it.
        if (arch is not ("llama" or "qwen2" or "mistral" or "deci" or "slicegpt"))
            throw new InvalidModelException($"{f.Path}: architecture '{arch}' is not supported (llama, mistral, qwen2, deci, slicegpt)");
        bool sliced = arch == "slicegpt";
        long Req(string k) => f.RequireInt($"{arch}.{k}");
        int I(long v, string what) => v is >= 0 and <= int.MaxValue ? (int)v : throw new InvalidModelException($"{f.Path}: {what} = {v} is out of range");
        int layerCount = I(Req("block_count"), "block_count");
        // A key that is either one integer or one per layer (llama.cpp's get_key_or_arr): null when scalar.
        int[]? PerLayer(string k)
        {
            if (!f.Metadata.TryGetValue($"{arch}.{k}", out var v) || v.Value is not Array a) return null;
            if (a.Length != layerCount) throw new InvalidModelException($"{f.Path}: {arch}.{k} has {a.Length} entries for {layerCount} blocks");
            var r = new int[a.Length];
            for (int i = 0; i < a.Length; i++)
                r[i] = a.GetValue(i) is IConvertible c and not string ? I(c.ToInt64(null), k) : throw new InvalidModelException($"{f.Path}: {arch}.{k} is not an integer array");
            return r;
        }
        int Scalar(string k, int[]? arr, long? fallback = null) => arr != null ? arr.Max() : I(f.GetInt($"{arch}.{k}") ?? fallback ?? Req(k), k);

        int dim = I(Req("embedding_length"), "embedding_length");
        int[]? layerHeads = PerLayer("attention.head_count"), layerKv = PerLayer("attention.head_count_kv"), layerFfn = PerLayer("feed_forward_length");
        if (layerHeads != null && layerKv == null && !f.Metadata.ContainsKey($"{arch}.attention.head_count_kv")) layerKv = layerHeads; // kv defaults to heads
        int heads = Scalar("attention.head_count", layerHeads);
        int head0 = layerHeads?[0] ?? heads;
        int headDim = I(f.GetInt($"{arch}.attention.key_length") ?? (head0 > 0 ? dim / head0 : 0), "attention.key_length");
        f.TryGetTensor("token_embd.weight", out var embInfo);
        int vocab = I(f.GetInt($"{arch}.vocab_size") ?? f.GetArray<string>("tokenizer.ggml.tokens")?.Length
            ?? (embInfo != null && embInfo.Dims.Length == 2 ? embInfo.Dims[1] : 0), "vocab_size");
        bool tied = !f.TryGetTensor("output.weight", out _);
        var cfg = new LlamaConfig
        {
            Architecture = arch,
            Dim = dim,
            Layers = layerCount,
            Heads = heads,
            KvHeads = Scalar("attention.head_count_kv", layerKv, heads),
            HeadDim = headDim,
            FfnDim = Scalar("feed_forward_length", layerFfn),
            // Scalars stand for every layer; arrays whose entries are all equal are kept (IsUniform tells).
            LayerHeads = layerHeads, LayerKvHeads = layerKv, LayerFfn = layerFfn,
            VocabSize = vocab,
            ContextLength = I(f.GetInt($"{arch}.context_length") ?? 2048, "context_length"),
            RopeBase = (float)(f.GetFloat($"{arch}.rope.freq_base") ?? 10000.0),
            RopeDim = I(f.GetInt($"{arch}.rope.dimension_count") ?? headDim, "rope.dimension_count"),
            RopeLayout = arch == "qwen2" ? RopeLayout.HalfSplit : RopeLayout.Interleaved,
            RmsEps = (float)(f.GetFloat($"{arch}.attention.layer_norm_rms_epsilon") ?? 1e-5),
            QkvBias = f.TryGetTensor("blk.0.attn_q.bias", out _),
            TiedEmbeddings = tied,
            NormWidth = sliced ? I(Req("rms_norm_width"), "rms_norm_width") : null,
        };
        cfg.Validate(f.Path);

        WeightMatrix M(string name, int rows, int cols)
        {
            if (SparseGguf.TryMatrix(f, name, rows, cols) is { } sparse) return sparse;
            var t = f.GetTensor(name);
            if (!GgmlTypeInfo.IsSupportedWeight(t.Type))
                throw new InvalidModelException($"{f.Path}: tensor '{name}' has type {t.Type}, which Pare cannot compute with yet (supported: F32, F16, BF16, Q8_0, Q4_0, Q4_K, Q6_K)");
            if (t.Dims.Length != 2 || t.Dims[0] != cols || t.Dims[1] != rows)
                throw new InvalidModelException($"{f.Path}: tensor '{name}' has shape {t.Shape}, expected [{cols}, {rows}]");
            return f.Matrix(t);
        }
        float[] V(string name, int n)
        {
            var t = f.GetTensor(name);
            if (t.ElementCount != n) throw new InvalidModelException($"{f.Path}: tensor '{name}' has shape {t.Shape}, expected [{n}]");
            return f.Vector(t);
        }

        var layers = new LlamaLayerWeights[cfg.Layers];
        for (int i = 0; i < cfg.Layers; i++)
        {
            string p = $"blk.{i}.";
            int qd = cfg.QDimAt(i), kvd = cfg.KvDimAt(i), ffn = cfg.FfnAt(i);
            layers[i] = new LlamaLayerWeights
            {
                AttnNorm = V(p + "attn_norm.weight", dim),
                Wq = M(p + "attn_q.weight", qd, dim),
                Wk = M(p + "attn_k.weight", kvd, dim),
                Wv = M(p + "attn_v.weight", kvd, dim),
                Wo = M(p + "attn_output.weight", dim, qd),
                Bq = cfg.QkvBias ? V(p + "attn_q.bias", qd) : null,
                Bk = cfg.QkvBias ? V(p + "attn_k.bias", kvd) : null,
                Bv = cfg.QkvBias ? V(p + "attn_v.bias", kvd) : null,
                // Optional output biases (llama.cpp loads them for llama and deci): structured pruning's compensation.
                Bo = f.TryGetTensor(p + "attn_output.bias", out _) ? V(p + "attn_output.bias", dim) : null,
                FfnNorm = V(p + "ffn_norm.weight", dim),
                Gate = M(p + "ffn_gate.weight", ffn, dim),
                Up = M(p + "ffn_up.weight", ffn, dim),
                Down = M(p + "ffn_down.weight", dim, ffn),
                BDown = f.TryGetTensor(p + "ffn_down.bias", out _) ? V(p + "ffn_down.bias", dim) : null,
                AttnShortcut = sliced ? M(p + "attn_shortcut.weight", dim, dim) : null,
                FfnShortcut = sliced ? M(p + "ffn_shortcut.weight", dim, dim) : null,
            };
        }
        var emb = M("token_embd.weight", vocab, dim);
        var weights = new LlamaWeights
        {
            TokenEmbedding = emb,
            Layers = layers,
            OutputNorm = V("output_norm.weight", dim),
            Output = tied ? emb : M("output.weight", vocab, dim),
        };
        return (cfg, weights);
    }
}
