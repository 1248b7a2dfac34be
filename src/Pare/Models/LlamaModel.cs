using Pare.Kernels;
using Pare.Formats.Gguf;
using Pare.Tokenizers;

namespace Pare.Models;

/// <summary>
/// A loaded Llama-family decoder: its config, its weights (memory-mapped, not copied) and its tokenizer.
/// Create an <see cref="InferenceSession"/> to run it. Dispose to unmap the file.
/// </summary>
public sealed class LlamaModel : IDisposable
{
    readonly IDisposable? _owner;

    public LlamaModel(LlamaConfig config, LlamaWeights weights, ITokenizer? tokenizer, string source, IDisposable? owner = null)
    {
        Config = config; Weights = weights; Tokenizer = tokenizer; Source = source; _owner = owner;
    }

    public LlamaConfig Config { get; }
    public LlamaWeights Weights { get; }
    /// <summary>The model's own tokenizer, or null when the file carries none.</summary>
    public ITokenizer? Tokenizer { get; }
    /// <summary>Path the model came from.</summary>
    public string Source { get; }
    /// <summary>The GGUF file when loaded from one (metadata, tensor infos).</summary>
    public GgufFile? Gguf => _owner as GgufFile;

    /// <summary>Loads a GGUF file. (Hugging Face safetensors directories load through the HF loader.)</summary>
    public static LlamaModel Load(string path)
    {
        if (Directory.Exists(path) || path.EndsWith(".safetensors", StringComparison.OrdinalIgnoreCase) || path.EndsWith("config.json", StringComparison.OrdinalIgnoreCase))
            return ModelLoaders.LoadHuggingFace(path);
        var f = GgufFile.Open(path);
        try
        {
            var (cfg, w) = GgufLoader.Load(f);
            ITokenizer? tok = f.Has("tokenizer.ggml.model") ? ModelLoaders.TokenizerFromGguf(f) : null;
            if (tok != null && tok.VocabSize != cfg.VocabSize)
                throw new InvalidModelException($"{path}: tokenizer has {tok.VocabSize} tokens but the model's vocabulary is {cfg.VocabSize}");
            return new LlamaModel(cfg, w, tok, path, f);
        }
        catch
        {
            f.Dispose();
            throw;
        }
    }

    /// <summary>Total weights (token embedding counted once when tied).</summary>
    public long ParameterCount
    {
        get
        {
            var c = Config;
            long blocks = 0;
            for (int l = 0; l < c.Layers; l++)
            {
                var lw = Weights.Layers[l];
                blocks += 2L * c.Dim + (long)c.Dim * c.QDimAt(l) * 2 + (long)c.Dim * c.KvDimAt(l) * 2 + 3L * c.Dim * c.FfnAt(l)
                    + (c.QkvBias ? c.QDimAt(l) + 2L * c.KvDimAt(l) : 0) + (lw.Bo?.Length ?? 0) + (lw.BDown?.Length ?? 0)
                    + (lw.AttnShortcut != null ? (long)c.Dim * c.Dim : 0) + (lw.FfnShortcut != null ? (long)c.Dim * c.Dim : 0); // SliceGPT's shortcuts
            }
            return (long)c.VocabSize * c.Dim * (c.TiedEmbeddings ? 1 : 2) + c.Dim + blocks;
        }
    }

    /// <summary>Bytes of matrix weights read per decoded token (what bounds decode speed).</summary>
    public long WeightBytesPerToken
    {
        get
        {
            long b = Weights.Output.ByteLength;
            foreach (var l in Weights.Layers)
                b += l.Wq.ByteLength + l.Wk.ByteLength + l.Wv.ByteLength + l.Wo.ByteLength + l.Gate.ByteLength + l.Up.ByteLength + l.Down.ByteLength
                    + (l.AttnShortcut?.ByteLength ?? 0) + (l.FfnShortcut?.ByteLength ?? 0);
            return b;
        }
    }

    public InferenceSession CreateSession(SessionOptions? options = null) => new(this, options ?? new SessionOptions());

    public void Dispose() => _owner?.Dispose();
}

/// <summary>Options of an inference session.</summary>
public sealed record SessionOptions
{
    /// <summary>KV cache length in tokens; null = the model's context length, capped at 4096 to bound memory.</summary>
    public int? ContextLength { get; init; }
    /// <summary>Worker threads for the kernels; default = all cores.</summary>
    public int Threads { get; init; } = Environment.ProcessorCount;
    /// <summary>How the KV cache stores keys and values; default F32 (exact). F16 halves the cache, Q8_0 (llama.cpp's
    /// q8_0 blocks) takes about a quarter.</summary>
    public KvValueType KvType { get; init; } = KvValueType.F32;
    /// <summary>Which cached positions each head attends to (KV-cache pruning, Pare.LongContext.KvPolicies); null = all. A
    /// policy holds per-conversation state: one instance per session.</summary>
    public Pare.Models.Kv.IKvPolicy? KvPolicy { get; init; }
}
