using System.Text;
using LLama;
using LLama.Common;
using LLama.Native;
using Pare.Formats.Gguf;
using Pare.Tokenizers;

namespace Pare.Tests.TestSupport;

/// <summary>
/// Writes a vocabulary-only GGUF (tokenizer metadata plus minimal llama hparams, no tensors) and loads it
/// in llama.cpp (through LLamaSharp) so tests can compare Pare's tokenization with llama.cpp's.
/// </summary>
public static class TokenizerGguf
{
    /// <summary>Writes <paramref name="spec"/> with tiny llama hparams to <paramref name="path"/>.</summary>
    public static void Write(TokenizerSpec spec, string path)
    {
        var w = new GgufWriter();
        w.Set("general.architecture", "llama");
        w.Set("general.name", "pare-tokenizer-test");
        w.Set("llama.context_length", 256u);
        w.Set("llama.embedding_length", 8u);
        w.Set("llama.block_count", 1u);
        w.Set("llama.feed_forward_length", 16u);
        w.Set("llama.attention.head_count", 2u);
        w.Set("llama.attention.head_count_kv", 2u);
        w.Set("llama.rope.dimension_count", 4u);
        w.Set("llama.attention.layer_norm_rms_epsilon", 1e-5f);
        spec.WriteTo(w);
        w.Write(path);
    }

    /// <summary>A temporary GGUF of <paramref name="spec"/> loaded vocab-only in llama.cpp.</summary>
    public static LlamaCppVocab Load(TokenizerSpec spec)
    {
        string path = Path.Combine(Path.GetTempPath(), $"pare-tok-{Guid.NewGuid():N}.gguf");
        Write(spec, path);
        return new LlamaCppVocab(path);
    }
}

/// <summary>llama.cpp's tokenizer for a GGUF file (deleted on dispose).</summary>
public sealed class LlamaCppVocab : IDisposable
{
    static readonly object s_lock = new();
    readonly LLamaWeights _weights;
    readonly string _path;

    public LlamaCppVocab(string path)
    {
        _path = path;
        lock (s_lock)
        {
            NativeApi.llama_empty_call();
            _weights = LLamaWeights.LoadFromFile(new ModelParams(path) { VocabOnly = true, GpuLayerCount = 0 });
        }
    }

    public int[] Tokenize(string text, bool addSpecial, bool parseSpecial)
    {
        if (text.Length == 0 && !addSpecial) return [];
        return [.. _weights.NativeHandle.Tokenize(text, addSpecial, parseSpecial, Encoding.UTF8).Select(t => (int)t)];
    }

    /// <summary>llama_token_to_piece with special = false, lstrip = 0.</summary>
    public byte[] Piece(int id)
    {
        var buf = new byte[256];
        int n = (int)_weights.NativeHandle.TokenToSpan(id, buf, 0, false);
        return buf[..n];
    }

    public void Dispose()
    {
        _weights.Dispose();
        try { File.Delete(_path); } catch (IOException) { }
    }
}
