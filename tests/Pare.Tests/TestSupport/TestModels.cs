using Pare.Models;
using Pare.Tensors;
using Pare.Tokenizers;

namespace Pare.Tests.TestSupport;

/// <summary>Small random-weight models for tests, written once per test run into a temp folder.</summary>
public static class TestModels
{
    public static readonly string Dir = Directory.CreateTempSubdirectory("pare-tests-").FullName;

    /// <summary>The four oracle shapes: multi-head, grouped-query, tied head, untied head (vocab 512, 3+ layers).</summary>
    public static readonly (string Name, LlamaConfig Config)[] OracleShapes =
    [
        ("mha-untied", Cfg(dim: 64, layers: 3, heads: 4, kvHeads: 4, ffn: 160, tied: false)),
        ("gqa-untied", Cfg(dim: 64, layers: 3, heads: 8, kvHeads: 2, ffn: 128, tied: false)),
        ("gqa-tied", Cfg(dim: 96, layers: 4, heads: 6, kvHeads: 3, ffn: 192, tied: true)),
        ("mha-tied", Cfg(dim: 64, layers: 3, heads: 2, kvHeads: 2, ffn: 96, tied: true)),
    ];

    public static LlamaConfig Cfg(int dim, int layers, int heads, int kvHeads, int ffn, bool tied, int vocab = 512, int ctx = 256) => new()
    {
        Dim = dim, Layers = layers, Heads = heads, KvHeads = kvHeads, HeadDim = dim / heads, RopeDim = dim / heads,
        FfnDim = ffn, VocabSize = vocab, ContextLength = ctx, TiedEmbeddings = tied, RopeBase = 10000f, RmsEps = 1e-5f,
    };

    static readonly Lock Gate = new();
    static readonly Dictionary<string, string> Written = [];

    /// <summary>Path of a synthetic model (written on first use).</summary>
    public static string Get(string name, LlamaConfig cfg, GgmlType type, ulong seed = 7)
    {
        string key = $"{name}-{type}-{seed}";
        lock (Gate)
        {
            if (Written.TryGetValue(key, out var p)) return p;
            p = Path.Combine(Dir, key + ".gguf");
            SyntheticModel.Write(p, cfg, type, ByteLevelVocab(cfg.VocabSize), seed);
            Written[key] = p;
            return p;
        }
    }

    /// <summary>
    /// A valid gpt2-kind vocabulary of any size >= 258 that needs no training: the 256 byte tokens,
    /// BOS/EOS, then merges of lowercase letter pairs ("a b" -> "ab", ...).
    /// </summary>
    public static TokenizerSpec ByteLevelVocab(int size)
    {
        var byteChar = ByteChars();
        var tokens = new List<string>(size);
        var types = new List<int>(size);
        for (int b = 0; b < 256; b++) { tokens.Add(byteChar[b].ToString()); types.Add((int)TokenType.Normal); }
        tokens.Add("<s>"); types.Add((int)TokenType.Control);
        tokens.Add("</s>"); types.Add((int)TokenType.Control);
        var merges = new List<string>();
        for (char a = 'a'; a <= 'z' && tokens.Count < size; a++)
            for (char b = 'a'; b <= 'z' && tokens.Count < size; b++)
            {
                merges.Add($"{a} {b}");
                tokens.Add($"{a}{b}");
                types.Add((int)TokenType.Normal);
            }
        if (tokens.Count != size) throw new ArgumentOutOfRangeException(nameof(size));
        return new TokenizerSpec
        {
            Model = "gpt2", Pre = "default", Tokens = [.. tokens], TokenTypes = [.. types], Merges = [.. merges],
            BosId = 256, EosId = 257, AddBos = false,
        };
    }

    /// <summary>GPT-2's byte-to-printable-character map.</summary>
    static char[] ByteChars()
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
}
