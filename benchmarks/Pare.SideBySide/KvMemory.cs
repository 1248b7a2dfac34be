using System.Globalization;
using System.Text.Json;
using System.Text.RegularExpressions;
using LLama;
using LLama.Common;
using LLama.Native;
using Pare.Models;
using Pare.Kernels;
using Pare.Models.Kv;

/// <summary>KV cache bytes per type at one context: llama.cpp's (its log's cache size, resident memory added) beside Pare's.</summary>
static class KvMemory
{
    public static int Run(string path, int context, List<string> llamaLog)
    {
        (string Name, GGMLType Llama, KvValueType Pare)[] types =
            [("f32", GGMLType.GGML_TYPE_F32, KvValueType.F32), ("f16", GGMLType.GGML_TYPE_F16, KvValueType.F16), ("q8_0", GGMLType.GGML_TYPE_Q8_0, KvValueType.Q8_0)];
        foreach (var (name, lt, pt) in types)
        {
            var p = new ModelParams(path)
            {
                ContextSize = (uint)context, GpuLayerCount = 0, Threads = 2, BatchSize = 512, UBatchSize = 512, TypeK = lt, TypeV = lt,
                FlashAttention = pt != KvValueType.F32,   // llama.cpp quantizes V only with flash attention
            };
            using var weights = LLamaWeights.LoadFromFile(p);
            lock (llamaLog) llamaLog.Clear();
            double before = Rss();
            double added;
            using (var ctx = weights.CreateContext(p)) added = Rss() - before;
            string logged;
            lock (llamaLog) logged = string.Join("", llamaLog);
            // llama.cpp logs e.g. "llama_kv_cache: size = 1024.00 MiB (16384 cells, 16 layers, ...), K (f16): 512.00 MiB, V (f16): 512.00 MiB"
            var m = Regex.Match(logged, @"kv_cache[^\n]*?size\s*=\s*([0-9.]+)\s*MiB");
            Emit("llama.cpp", name, context, m.Success ? double.Parse(m.Groups[1].Value, CultureInfo.InvariantCulture) : double.NaN, added);
        }
        // Pare's cache is managed memory: its exact size; the resident memory a filled cache adds is measured for the first
        // type only (later ones reuse the pages the collector keeps), and per process by Pare.KvBench (peak RSS).
        using var model = LlamaModel.Load(path);
        bool first = true;
        foreach (var (name, _, pt) in types)
        {
            double before = Rss();
            var cache = new KvCache(model.Config, context, pt);
            var rows = new float[model.Config.KvHeads * model.Config.HeadDim];
            for (int l = 0; l < model.Config.Layers; l++)
                for (int pos = 0; pos < context; pos++) cache.Write(l, rows, rows, 1, pos);   // touch every page
            Emit("pare", name, context, cache.Bytes / 1048576.0, first ? Rss() - before : double.NaN);
            GC.KeepAlive(cache);
            first = false;
        }
        return 0;
    }

    static void Emit(string engine, string type, int context, double cacheMib, double rssAddedMib) =>
        Console.WriteLine(JsonSerializer.Serialize(new { engine, kv_type = type, context, cache_mib = cacheMib, rss_added_mib = rssAddedMib },
            new JsonSerializerOptions { NumberHandling = System.Text.Json.Serialization.JsonNumberHandling.AllowNamedFloatingPointLiterals }));

    static double Rss()
    {
        GC.Collect();
        foreach (var line in File.ReadLines("/proc/self/status"))
            if (line.StartsWith("VmRSS:", StringComparison.Ordinal)) return double.Parse(line[6..].Trim().Split(' ')[0], CultureInfo.InvariantCulture) / 1024.0;
        return double.NaN;
    }
}
