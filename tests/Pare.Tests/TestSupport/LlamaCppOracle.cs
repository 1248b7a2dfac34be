using LLama;
using LLama.Common;
using LLama.Native;

namespace Pare.Tests.TestSupport;

/// <summary>llama.cpp (through LLamaSharp) as the reference implementation: logits and tokenization of a GGUF file.</summary>
public sealed class LlamaCppOracle : IDisposable
{
    static readonly Lock InitGate = new();
    static bool _initialized;
    readonly LLamaWeights _weights;
    readonly LLamaContext _context;

    /// <param name="typeK">KV cache type of K (F32 by default, as Pare's default cache).</param>
    /// <param name="typeV">KV cache type of V; llama.cpp quantizes V only with flash attention.</param>
    public LlamaCppOracle(string path, int contextSize = 256, GGMLType typeK = GGMLType.GGML_TYPE_F32, GGMLType typeV = GGMLType.GGML_TYPE_F32,
        bool flashAttention = false)
    {
        EnsureNative();
        var p = new ModelParams(path) { ContextSize = (uint)contextSize, GpuLayerCount = 0, Threads = 2, BatchSize = (uint)contextSize, UBatchSize = (uint)contextSize,
            TypeK = typeK, TypeV = typeV, FlashAttention = flashAttention };
        _weights = LLamaWeights.LoadFromFile(p);
        _context = _weights.CreateContext(p);
    }

    /// <summary>Silences llama.cpp's logging; must run before anything loads the native library, hence a module initializer.</summary>
    [System.Runtime.CompilerServices.ModuleInitializer]
    internal static void ConfigureNative() => NativeLibraryConfig.All.WithLogCallback((level, msg) => { });

    public static void EnsureNative()
    {
        lock (InitGate)
        {
            if (_initialized) return;
            NativeApi.llama_empty_call();
            _initialized = true;
        }
    }

    public int VocabSize => _weights.Vocab.Count;

    /// <summary>Logits of every position of a fresh sequence (n, vocab).</summary>
    public float[][] Logits(IReadOnlyList<int> tokens)
    {
        _context.NativeHandle.MemoryClear();
        var batch = new LLamaBatch();
        for (int i = 0; i < tokens.Count; i++) batch.Add((LLamaToken)tokens[i], i, (LLamaSeqId)0, logits: true);
        var r = _context.NativeHandle.Decode(batch);
        if (r != DecodeResult.Ok) throw new InvalidOperationException($"llama.cpp decode failed: {r}");
        var result = new float[tokens.Count][];
        for (int i = 0; i < tokens.Count; i++) result[i] = _context.NativeHandle.GetLogitsIth(i).ToArray();
        return result;
    }

    public int[] Tokenize(string text, bool addBos, bool special = false) =>
        [.. _context.NativeHandle.Tokenize(text, addBos, special, System.Text.Encoding.UTF8).Select(t => (int)t)];

    /// <summary>Quantizes a GGUF file with llama.cpp's own quantizer (e.g. "Q8_0", "Q4_0", "Q4_K_M").</summary>
    public static void Quantize(string src, string dst, string ftype)
    {
        EnsureNative();
        if (!LLamaQuantizer.Quantize(src, dst, ftype, nthread: 2, allowRequantize: true, quantizeOutputTensor: false))
            throw new InvalidOperationException($"llama.cpp could not quantize {src} to {ftype}");
    }

    public void Dispose()
    {
        _context.Dispose();
        _weights.Dispose();
    }
}
