using System.Runtime.InteropServices;
using System.Security.Cryptography;
using System.Text;
using Pare.Formats.Gguf;
using Pare.Tokenizers;

namespace Pare.Data;

/// <summary>
/// The tokenizer of the reference models on disk: trained once on the train split, stored as a tensor-less GGUF that
/// holds only the tokenizer.ggml.* keys (the same keys the models carry), and token-id caches of the split files.
/// </summary>
public static class TokenizerFiles
{
    /// <summary>Trains a byte-level BPE tokenizer (GPT-2 pre-tokenizer) on a text file, paragraph by paragraph.</summary>
    public static TokenizerSpec Train(string textPath, int vocabSize)
    {
        if (!File.Exists(textPath)) throw new PareException($"training text not found: {textPath} (run 'pare data fetch' first)");
        string text = File.ReadAllText(textPath);
        return BpeTrainer.TrainGpt2(Paragraphs(text), vocabSize);
    }

    /// <summary>Writes the tokenizer alone into a GGUF file.</summary>
    public static void Save(TokenizerSpec spec, string path)
    {
        var w = new GgufWriter();
        w.Set("general.architecture", "tokenizer");
        w.Set("general.name", "pare-tokenizer");
        spec.WriteTo(w);
        Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(path))!);
        w.Write(path);
    }

    /// <summary>Reads the tokenizer of any GGUF (a tokenizer-only file or a model).</summary>
    public static TokenizerSpec Load(string path)
    {
        if (!File.Exists(path)) throw new PareException($"tokenizer file not found: {path}");
        using var f = GgufFile.Open(path);
        return TokenizerSpec.FromGguf(f);
    }

    /// <summary>
    /// Token ids of a text file, cached beside it as NAME.tok-HASH.bin (HASH covers the text and the tokenizer), so a
    /// 16 MB split is encoded once. The text is encoded in paragraphs (split at blank lines) in parallel; the blank line
    /// goes with the following paragraph's leading "\n\n" so every byte of the text is encoded exactly once.
    /// </summary>
    public static int[] EncodeFileCached(Gpt2BpeTokenizer tokenizer, string textPath)
    {
        string text = File.ReadAllText(textPath);
        string key = Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(text + "\u0000" + string.Join('\n', tokenizer.Spec.Merges ?? []))))[..16];
        string cache = textPath + $".tok-{key}.bin";
        if (File.Exists(cache)) return MemoryMarshal.Cast<byte, int>(File.ReadAllBytes(cache)).ToArray();
        var ids = EncodeParagraphs(tokenizer, text);
        string tmp = cache + $".tmp-{Environment.ProcessId}-{Guid.NewGuid():N}";
        File.WriteAllBytes(tmp, MemoryMarshal.AsBytes(ids.AsSpan()).ToArray());
        File.Move(tmp, cache, overwrite: true);
        return ids;
    }

    /// <summary>Encodes paragraph by paragraph in parallel (no BOS); the ids concatenate in text order.</summary>
    public static int[] EncodeParagraphs(Gpt2BpeTokenizer tokenizer, string text)
    {
        var parts = Paragraphs(text).ToArray();
        var encoded = new int[parts.Length][];
        Parallel.For(0, parts.Length, i => encoded[i] = tokenizer.Encode(parts[i], addSpecial: false));
        return [.. encoded.SelectMany(e => e)];
    }

    /// <summary>Splits at blank lines, keeping the separator with the paragraph that follows it.</summary>
    internal static IEnumerable<string> Paragraphs(string text)
    {
        int start = 0;
        while (start < text.Length)
        {
            int next = text.IndexOf("\n\n", start + 1, StringComparison.Ordinal);
            while (next >= 0 && next + 2 < text.Length && text[next + 2] == '\n') next++; // a run of newlines stays together
            if (next < 0) { yield return text[start..]; yield break; }
            yield return text[start..next];
            start = next;
        }
    }
}
