// KV cache types at long contexts, one measurement per process (peak RSS is per process):
//   dotnet run -c Release --project benchmarks/Pare.KvBench -- --kv-type f16 --context 16384 [--kv-heads 8] [--threads 2]
//       [--decode 32] [--dir .cache/bench]
// Writes (once) a random llama model (dim 512, 4 layers, 8 heads, FFN 1536, vocab 32000, F16 weights) with the given
// KV heads and context, fills the cache with a prompt of context - decode random tokens, then decodes greedily.
// Prints one JSON line: the cache's bytes, bytes per token, peak RSS, prefill seconds, decode tok/s.
using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using Pare.Kernels;
using Pare.Models;
using Pare.Tensors;

string kvType = "f32", dir = ".cache/bench";
int context = 16384, kvHeads = 8, threads = Environment.ProcessorCount, decode = 32;
for (int i = 0; i < args.Length; i++)
{
    string Next() => i + 1 < args.Length ? args[++i] : throw new ArgumentException($"{args[i]} needs a value");
    switch (args[i])
    {
        case "--kv-type": kvType = Next(); break;
        case "--context": context = int.Parse(Next(), CultureInfo.InvariantCulture); break;
        case "--kv-heads": kvHeads = int.Parse(Next(), CultureInfo.InvariantCulture); break;
        case "--threads": threads = int.Parse(Next(), CultureInfo.InvariantCulture); break;
        case "--decode": decode = int.Parse(Next(), CultureInfo.InvariantCulture); break;
        case "--dir": dir = Next(); break;
        default: Console.Error.WriteLine($"kv-bench: error: unknown argument {args[i]}"); return 1;
    }
}
var type = kvType.ToLowerInvariant() switch
{
    "f32" => KvValueType.F32, "f16" => KvValueType.F16, "q8_0" => KvValueType.Q8_0,
    _ => throw new ArgumentException($"--kv-type must be f32, f16 or q8_0 (got {kvType})"),
};
var cfg = new LlamaConfig
{
    Dim = 512, Layers = 4, Heads = 8, KvHeads = kvHeads, HeadDim = 64, RopeDim = 64, FfnDim = 1536, VocabSize = 32000,
    ContextLength = context, RopeBase = 10000f, RmsEps = 1e-5f,
};
Directory.CreateDirectory(dir);
string path = Path.Combine(dir, $"random-kv{kvHeads}-ctx{context}-F16.gguf");
if (!File.Exists(path)) SyntheticModel.Write(path, cfg, GgmlType.F16, SyntheticModel.ByteLevelVocab(cfg.VocabSize), seed: 16);

using var model = LlamaModel.Load(path);
var session = model.CreateSession(new SessionOptions { ContextLength = context, Threads = threads, KvType = type });
var rng = new Random(1);
int prompt = context - decode;
var ids = Enumerable.Range(0, prompt).Select(_ => rng.Next(cfg.VocabSize)).ToArray();
var sw = Stopwatch.StartNew();
float[] logits = [];
for (int at = 0; at < prompt; at += 512) logits = session.Forward(ids.AsSpan(at, Math.Min(512, prompt - at)));
double prefill = sw.Elapsed.TotalSeconds;
sw.Restart();
for (int i = 0; i < decode; i++) logits = session.Forward([Array.IndexOf(logits, logits.Max())]);
double decodeTokS = decode / sw.Elapsed.TotalSeconds;
double rss = 0;
foreach (var line in File.ReadLines("/proc/self/status"))
    if (line.StartsWith("VmHWM:", StringComparison.Ordinal)) rss = double.Parse(line[6..].Trim().Split(' ')[0], CultureInfo.InvariantCulture) / 1024.0;
Console.WriteLine(JsonSerializer.Serialize(new
{
    kv_type = kvType, context, kv_heads = kvHeads, threads,
    cache_mib = session.Cache.Bytes / 1048576.0, bytes_per_token = session.Cache.BytesPerToken,
    peak_rss_mib = rss, weights_mib = new FileInfo(path).Length / 1048576.0,
    prefill_s = prefill, decode_tok_s = decodeTokS, load = File.ReadAllText("/proc/loadavg").Split(' ')[0],
}));
return 0;
