using System.Runtime.InteropServices;
using Pare.Formats.Gguf;
using Pare.Kernels;
using Pare.Tensors;
using Pare.Tokenizers;

namespace Pare.Models;

/// <summary>
/// Writes a Llama-architecture GGUF with random, non-repeating weights: for tests, benchmarks and the demo
/// before a trained model exists. Every tensor is generated row by row from its own seed, so even a
/// multi-gigabyte model streams to disk without being held in memory.
/// </summary>
public static class SyntheticModel
{
    /// <summary>Writes the model. Matrices use <paramref name="weightType"/>; norm weights are F32.</summary>
    public static void Write(string path, LlamaConfig config, GgmlType weightType, TokenizerSpec tokenizer, ulong seed = 1,
        IProgress<double>? progress = null)
    {
        config.Validate("synthetic model");
        if (tokenizer.Tokens.Length != config.VocabSize)
            throw new PareException($"tokenizer has {tokenizer.Tokens.Length} tokens but the config's vocabulary is {config.VocabSize}");
        var w = new GgufWriter();
        LlamaGguf.WriteConfig(w, config, "pare-synthetic", weightType);
        tokenizer.WriteTo(w);

        long total = 0, done = 0;
        void Matrix(string name, int rows, int cols, float scale)
        {
            total += (long)rows * cols;
            w.AddTensor(name, weightType, [cols, rows], s =>
            {
                var rng = new SplitMix(seed ^ Hash(name));
                var row = new float[cols];
                for (int r = 0; r < rows; r++)
                {
                    for (int c = 0; c < cols; c++) row[c] = rng.NextSigned() * scale;
                    s.Write(Quantizer.Quantize(weightType, row));
                    done += cols;
                    if ((r & 255) == 0) progress?.Report((double)done / total);
                }
            });
        }
        void Vector(string name, int n, float center, float spread)
        {
            var rng = new SplitMix(seed ^ Hash(name));
            var v = new float[n];
            for (int i = 0; i < n; i++) v[i] = center + spread * rng.NextSigned();
            w.AddTensor(name, GgmlType.F32, [n], MemoryMarshal.AsBytes(v.AsSpan()).ToArray());
        }

        // Uniform(-s, s) has standard deviation s / sqrt(3): scale rows so activations stay near unit size.
        float In(int fanIn) => MathF.Sqrt(3f / fanIn);
        Matrix("token_embd.weight", config.VocabSize, config.Dim, 1f);
        for (int l = 0; l < config.Layers; l++)
        {
            string p = $"blk.{l}.";
            Vector(p + "attn_norm.weight", config.Dim, 1f, 0.2f);
            Matrix(p + "attn_q.weight", config.QDim, config.Dim, In(config.Dim));
            Matrix(p + "attn_k.weight", config.KvDim, config.Dim, In(config.Dim));
            Matrix(p + "attn_v.weight", config.KvDim, config.Dim, In(config.Dim));
            if (config.QkvBias)
            {
                Vector(p + "attn_q.bias", config.QDim, 0f, 0.1f);
                Vector(p + "attn_k.bias", config.KvDim, 0f, 0.1f);
                Vector(p + "attn_v.bias", config.KvDim, 0f, 0.1f);
            }
            Matrix(p + "attn_output.weight", config.Dim, config.QDim, In(config.QDim));
            Vector(p + "ffn_norm.weight", config.Dim, 1f, 0.2f);
            Matrix(p + "ffn_gate.weight", config.FfnDim, config.Dim, In(config.Dim));
            Matrix(p + "ffn_up.weight", config.FfnDim, config.Dim, In(config.Dim));
            Matrix(p + "ffn_down.weight", config.Dim, config.FfnDim, In(config.FfnDim));
        }
        Vector("output_norm.weight", config.Dim, 1f, 0.2f);
        if (!config.TiedEmbeddings) Matrix("output.weight", config.VocabSize, config.Dim, In(config.Dim));
        w.Write(path);
        progress?.Report(1);
    }

    /// <summary>
    /// A valid gpt2-kind vocabulary of any size >= 258 that needs no training: the 256 byte tokens,
    /// BOS/EOS, then merges of lowercase letter strings ("a b" -> "ab", "ab c" -> "abc", ...).
    /// </summary>
    public static TokenizerSpec ByteLevelVocab(int size)
    {
        var byteChar = ByteChars();
        var tokens = new List<string>(size);
        var types = new List<int>(size);
        for (int b = 0; b < 256; b++) { tokens.Add(byteChar[b].ToString()); types.Add((int)TokenType.Normal); }
        tokens.Add("<s>"); types.Add((int)TokenType.Control);
        tokens.Add("</s>"); types.Add((int)TokenType.Control);
        // Merge lowercase strings level by level: "a b" -> "ab", then "ab c" -> "abc", ... (enough for any vocabulary size).
        var merges = new List<string>();
        var level = new List<string>();
        for (char c = 'a'; c <= 'z'; c++) level.Add(c.ToString());
        while (tokens.Count < size)
        {
            var next = new List<string>();
            foreach (var left in level)
                for (char c = 'a'; c <= 'z' && tokens.Count < size; c++)
                {
                    merges.Add($"{left} {c}");
                    tokens.Add(left + c);
                    types.Add((int)TokenType.Normal);
                    next.Add(left + c);
                }
            level = next;
        }
        if (tokens.Count != size) throw new ArgumentOutOfRangeException(nameof(size));
        return new TokenizerSpec
        {
            Model = "gpt2", Pre = "default", Tokens = [.. tokens], TokenTypes = [.. types], Merges = [.. merges],
            BosId = 256, EosId = 257, AddBos = false,
        };
    }

    /// <summary>GPT-2's byte-to-printable-character map.</summary>
    internal static char[] ByteChars()
    {
        var map = new char[256];
        int extra = 0;
        for (int b = 0; b < 256; b++)
        {
            bool printable = b is >= '!' and <= '~' or >= 0xA1 and <= 0xAC or >= 0xAE and <= 0xFF;
            map[b] = printable ? (char)b : (char)(256 + extra++);
        }
        return map;
    }

    static ulong Hash(string s)
    {
        ulong h = 14695981039346656037UL;
        foreach (char ch in s) { h ^= ch; h *= 1099511628211UL; }
        return h;
    }

    /// <summary>SplitMix64: fast, good enough for random weights, deterministic across platforms.</summary>
    struct SplitMix(ulong state)
    {
        ulong _s = state;
        public ulong Next()
        {
            ulong z = _s += 0x9E3779B97F4A7C15UL;
            z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
            z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
            return z ^ (z >> 31);
        }
        /// <summary>Uniform in [-1, 1).</summary>
        public float NextSigned() => (Next() >> 40) * (2f / (1 << 24)) - 1f;
    }
}
