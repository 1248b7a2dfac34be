using Pare.Models;
using Pare.Tensors;

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
            SyntheticModel.Write(p, cfg, type, SyntheticModel.ByteLevelVocab(cfg.VocabSize), seed);
            Written[key] = p;
            return p;
        }
    }

}
