using Pare.Formats.Gguf;
using Pare.Tensors;

namespace Pare.Models;

/// <summary>Maps a GGUF file's llama/qwen2 metadata and tensors onto <see cref="LlamaConfig"/> and <see cref="LlamaWeights"/>.</summary>
public static class GgufLoader
{
    public static (LlamaConfig Config, LlamaWeights Weights) Load(GgufFile f)
    {
        string arch = f.GetString("general.architecture") ?? throw new InvalidModelException($"{f.Path}: general.architecture missing");
        if (arch is not ("llama" or "qwen2" or "mistral"))
            throw new InvalidModelException($"{f.Path}: architecture '{arch}' is not supported (llama, mistral, qwen2)");
        long Req(string k) => f.RequireInt($"{arch}.{k}");
        int I(long v, string what) => v is >= 0 and <= int.MaxValue ? (int)v : throw new InvalidModelException($"{f.Path}: {what} = {v} is out of range");

        int dim = I(Req("embedding_length"), "embedding_length");
        int heads = I(Req("attention.head_count"), "attention.head_count");
        int headDim = I(f.GetInt($"{arch}.attention.key_length") ?? (heads > 0 ? dim / heads : 0), "attention.key_length");
        f.TryGetTensor("token_embd.weight", out var embInfo);
        int vocab = I(f.GetInt($"{arch}.vocab_size") ?? f.GetArray<string>("tokenizer.ggml.tokens")?.Length
            ?? (embInfo != null && embInfo.Dims.Length == 2 ? embInfo.Dims[1] : 0), "vocab_size");
        bool tied = !f.TryGetTensor("output.weight", out _);
        var cfg = new LlamaConfig
        {
            Architecture = arch,
            Dim = dim,
            Layers = I(Req("block_count"), "block_count"),
            Heads = heads,
            KvHeads = I(f.GetInt($"{arch}.attention.head_count_kv") ?? heads, "attention.head_count_kv"),
            HeadDim = headDim,
            FfnDim = I(Req("feed_forward_length"), "feed_forward_length"),
            VocabSize = vocab,
            ContextLength = I(f.GetInt($"{arch}.context_length") ?? 2048, "context_length"),
            RopeBase = (float)(f.GetFloat($"{arch}.rope.freq_base") ?? 10000.0),
            RopeDim = I(f.GetInt($"{arch}.rope.dimension_count") ?? headDim, "rope.dimension_count"),
            RopeLayout = arch == "qwen2" ? RopeLayout.HalfSplit : RopeLayout.Interleaved,
            RmsEps = (float)(f.GetFloat($"{arch}.attention.layer_norm_rms_epsilon") ?? 1e-5),
            QkvBias = f.TryGetTensor("blk.0.attn_q.bias", out _),
            TiedEmbeddings = tied,
        };
        cfg.Validate(f.Path);

        WeightMatrix M(string name, int rows, int cols)
        {
            if (Kernels.Sparse.SparseGguf.TryMatrix(f, name, rows, cols) is { } sparse) return sparse;
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
            layers[i] = new LlamaLayerWeights
            {
                AttnNorm = V(p + "attn_norm.weight", dim),
                Wq = M(p + "attn_q.weight", cfg.QDim, dim),
                Wk = M(p + "attn_k.weight", cfg.KvDim, dim),
                Wv = M(p + "attn_v.weight", cfg.KvDim, dim),
                Wo = M(p + "attn_output.weight", dim, cfg.QDim),
                Bq = cfg.QkvBias ? V(p + "attn_q.bias", cfg.QDim) : null,
                Bk = cfg.QkvBias ? V(p + "attn_k.bias", cfg.KvDim) : null,
                Bv = cfg.QkvBias ? V(p + "attn_v.bias", cfg.KvDim) : null,
                FfnNorm = V(p + "ffn_norm.weight", dim),
                Gate = M(p + "ffn_gate.weight", cfg.FfnDim, dim),
                Up = M(p + "ffn_up.weight", cfg.FfnDim, dim),
                Down = M(p + "ffn_down.weight", dim, cfg.FfnDim),
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
