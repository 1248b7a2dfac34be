// Side-by-side benchmark: Pare and llama.cpp on the same GGUF files, same threads, same prompt, alternating runs.
//
//   dotnet run -c Release --project benchmarks/Pare.SideBySide -- [--threads 2] [--prefill 128] [--decode 32]
//       [--rounds 5] [--formats F16,Q8_0,Q4_K_M] [--dir .cache/bench] [--small] [--leave-output-tensor]
//       [--pairs LABEL=PARE.gguf:LLAMA.gguf,...]   (Pare on one file, llama.cpp on another: compact sparse vs dense)
//   dotnet run -c Release --project benchmarks/Pare.SideBySide -- quantize IN.gguf OUT.gguf TYPE   (llama.cpp's quantizer)
//   dotnet run -c Release --project benchmarks/Pare.SideBySide -- kv-memory MODEL.gguf CONTEXT
//       KV cache bytes at CONTEXT positions per cache type (f32, f16, q8_0), llama.cpp (the size its context reports in
//       its log, and the resident memory the context adds) beside Pare's (KvCache.Bytes, and the resident memory a
//       filled session adds). One JSON line per (engine, type).
//
// The model is a non-repeating random-weight llama-shaped model (dim 2048, 16 layers, 32 heads, 8 KV heads,
// FFN 5632, vocab 32000: about 852M parameters), written in F16 by Pare's writer; Q8_0 and Q4_K_M copies are made
// by llama.cpp's own quantizer with its defaults, so the output head is quantized too (Q8_0 -> Q8_0, Q4_K_M -> Q6_K), as in
// the files users download; --leave-output-tensor keeps the head in F16 (llama-quantize's --leave-output-tensor; files
// named *-f16head.gguf). --small uses a 4-layer, 512-wide model for a quick check.
using System.Diagnostics;
using System.Globalization;
using LLama;
using LLama.Common;
using LLama.Native;
using Pare.Kernels;
using Pare.Models;
using Pare.Tensors;

var llamaLog = new List<string>();
NativeLibraryConfig.All.WithLogCallback((_, msg) => { lock (llamaLog) llamaLog.Add(msg); });
NativeApi.llama_empty_call();

if (args is ["kv-memory", var kvModel, var kvContext]) return KvMemory.Run(kvModel, int.Parse(kvContext, CultureInfo.InvariantCulture), llamaLog);

// `quantize IN OUT TYPE`: llama.cpp's own quantizer with its defaults (e.g. pare-ref to Q8_0 for the thread check).
if (args is ["quantize", var qIn, var qOut, var qType])
{
    if (!LLamaQuantizer.Quantize(qIn, qOut, qType, nthread: 2, allowRequantize: true, quantizeOutputTensor: true))
    {
        Console.Error.WriteLine($"side-by-side: error: llama.cpp could not quantize {qIn} to {qType}");
        return 1;
    }
    return 0;
}

var opt = Args.Parse(args);
Directory.CreateDirectory(opt.Dir);

var cfg = opt.Small
    ? new LlamaConfig { Dim = 512, Layers = 4, Heads = 8, KvHeads = 2, HeadDim = 64, RopeDim = 64, FfnDim = 1536, VocabSize = 32000, ContextLength = 2048 }
    : new LlamaConfig { Dim = 2048, Layers = 16, Heads = 32, KvHeads = 8, HeadDim = 64, RopeDim = 64, FfnDim = 5632, VocabSize = 32000, ContextLength = 2048 };
string tag = opt.Small ? "small" : "852m";
string f16 = Path.Combine(opt.Dir, $"random-{tag}-F16.gguf");
if (!File.Exists(f16))
{
    Console.Error.WriteLine($"writing {f16} ...");
    var sw = Stopwatch.StartNew();
    SyntheticModel.Write(f16, cfg, GgmlType.F16, SyntheticModel.ByteLevelVocab(cfg.VocabSize), seed: 852);
    Console.Error.WriteLine($"  {new FileInfo(f16).Length / 1e9:F2} GB in {sw.Elapsed.TotalSeconds:F0} s");
}

double bandwidth = MemoryBandwidth.Measure(opt.Threads);
Console.WriteLine($"# Pare vs llama.cpp, side by side ({DateTime.UtcNow:yyyy-MM-dd HH:mm} UTC)");
Console.WriteLine();
Console.WriteLine($"Machine: {Environment.ProcessorCount} logical CPUs, {opt.Threads} threads used; measured multi-stream read bandwidth {bandwidth:F1} GB/s.");
Console.WriteLine($"Model: random llama, dim {cfg.Dim}, {cfg.Layers} layers, {cfg.Heads} heads / {cfg.KvHeads} KV heads, FFN {cfg.FfnDim}, vocab {cfg.VocabSize}.");
Console.WriteLine($"Settings: prompt {opt.Prefill} random tokens, then {opt.Decode} greedy decode steps; {opt.Rounds} alternating rounds per format, medians reported.");
Console.WriteLine($"Load average at start (1, 5, 15 min): {LoadAverage()}.");
Console.WriteLine("Prefill GFLOP/s = 2 x parameters x prompt tokens / prefill time.");
Console.WriteLine();
Console.WriteLine("| format | file GB | Pare prefill tok/s | llama.cpp prefill tok/s | ratio | Pare prefill GFLOP/s | llama.cpp prefill GFLOP/s | Pare decode tok/s | llama.cpp decode tok/s | ratio | Pare decode GB/s | roofline tok/s | Pare % of roofline |");
Console.WriteLine("|---|---|---|---|---|---|---|---|---|---|---|---|---|");

var rng = new Random(128);
int[] prompt = [.. Enumerable.Range(0, opt.Prefill).Select(_ => rng.Next(cfg.VocabSize))];
// Rows to measure: (label, file Pare runs, file llama.cpp runs). --pairs compares different files (e.g. Pare's compact
// sparse file against llama.cpp's dense pruned one); otherwise each format's one file for both.
var rows = new List<(string Label, string Pare, string Llama)>();
foreach (var pair in opt.Pairs)
{
    int eq = pair.IndexOf('=');
    var files = eq > 0 ? pair[(eq + 1)..].Split(':') : [];
    if (files.Length != 2 || !File.Exists(files[0]) || !File.Exists(files[1]))
    {
        Console.Error.WriteLine($"side-by-side: error: --pairs wants LABEL=PARE.gguf:LLAMA.gguf with existing files, got '{pair}'");
        return 1;
    }
    rows.Add((pair[..eq], files[0], files[1]));
}
foreach (var format in opt.Pairs.Length > 0 ? [] : opt.Formats)
{
    string path = format == "F16" ? f16 : Path.Combine(opt.Dir, $"random-{tag}-{format}{(opt.LeaveOutputTensor ? "-f16head" : "")}.gguf");
    if (!File.Exists(path))
    {
        Console.Error.WriteLine($"quantizing to {format} with llama.cpp ...");
        if (!LLamaQuantizer.Quantize(f16, path, format, nthread: opt.Threads, allowRequantize: true, quantizeOutputTensor: !opt.LeaveOutputTensor))
            throw new InvalidOperationException($"llama.cpp could not quantize to {format}");
    }
    rows.Add((format, path, path));
}
foreach (var (format, path, llamaPath) in rows)
{
    using var pare = LlamaModel.Load(path);
    var session = pare.CreateSession(new SessionOptions { Threads = opt.Threads, ContextLength = opt.Prefill + opt.Decode });
    var lp = new ModelParams(llamaPath)
    {
        ContextSize = (uint)(opt.Prefill + opt.Decode), BatchSize = (uint)opt.Prefill, UBatchSize = (uint)opt.Prefill,
        Threads = opt.Threads, BatchThreads = opt.Threads, GpuLayerCount = 0,
    };
    using var lw = LLamaWeights.LoadFromFile(lp);
    using var lc = lw.CreateContext(lp);

    var pp = new List<double>(); var pd = new List<double>(); var lpf = new List<double>(); var ld = new List<double>();
    RunPare(); RunLlama(); // warm-up: page in the file, JIT
    pp.Clear(); pd.Clear(); lpf.Clear(); ld.Clear();
    for (int round = 0; round < opt.Rounds; round++)
    {
        // Alternate which engine goes first so neither always gets the warmer cache or the quieter moment.
        if (round % 2 == 0) { RunPare(); RunLlama(); } else { RunLlama(); RunPare(); }
    }
    double mpp = Median(pp), mpd = Median(pd), mlp = Median(lpf), mld = Median(ld);
    double gbs = mpd * pare.WeightBytesPerToken / 1e9, roof = bandwidth * 1e9 / pare.WeightBytesPerToken;
    double flopsPerToken = 2.0 * pare.ParameterCount;
    Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
        $"| {format} | {FileBytes(path) / 1e9:F2} | {mpp:F1} | {mlp:F1} | {mpp / mlp:F2}x | {mpp * flopsPerToken / 1e9:F0} | {mlp * flopsPerToken / 1e9:F0} | {mpd:F1} | {mld:F1} | {mpd / mld:F2}x | {gbs:F1} | {roof:F1} | {mpd / roof:P0} |"));

    void RunPare()
    {
        session.Reset();
        var sw = Stopwatch.StartNew();
        var logits = session.Forward(prompt);
        pp.Add(opt.Prefill / sw.Elapsed.TotalSeconds);
        sw.Restart();
        for (int i = 0; i < opt.Decode; i++) logits = session.Forward([Pare.Generation.Sampler.ArgMax(logits)]);
        pd.Add(opt.Decode / sw.Elapsed.TotalSeconds);
    }

    void RunLlama()
    {
        var h = lc.NativeHandle;
        h.MemoryClear();
        var batch = new LLamaBatch();
        for (int i = 0; i < prompt.Length; i++) batch.Add((LLamaToken)prompt[i], i, (LLamaSeqId)0, i == prompt.Length - 1);
        var sw = Stopwatch.StartNew();
        Check(h.Decode(batch));
        lpf.Add(opt.Prefill / sw.Elapsed.TotalSeconds);
        int last = batch.TokenCount - 1;
        sw.Restart();
        for (int i = 0; i < opt.Decode; i++)
        {
            int next = Pare.Generation.Sampler.ArgMax(h.GetLogitsIth(last));
            batch.Clear();
            batch.Add((LLamaToken)next, prompt.Length + i, (LLamaSeqId)0, true);
            Check(h.Decode(batch));
            last = 0;
        }
        ld.Add(opt.Decode / sw.Elapsed.TotalSeconds);
    }
}

Console.WriteLine();
Console.WriteLine($"Load average at end (1, 5, 15 min): {LoadAverage()}.");
return 0;

// A symbolic link (the bench files linked from another checkout) reports its own length: measure the target.
static long FileBytes(string path) =>
    (new FileInfo(path).ResolveLinkTarget(returnFinalTarget: true) as FileInfo ?? new FileInfo(path)).Length;

static string LoadAverage() =>
    File.Exists("/proc/loadavg") ? string.Join(", ", File.ReadAllText("/proc/loadavg").Split(' ').Take(3)) : "unknown";

static void Check(DecodeResult r)
{
    if (r != DecodeResult.Ok) throw new InvalidOperationException($"llama.cpp decode failed: {r}");
}

static double Median(List<double> xs)
{
    var s = xs.Order().ToArray();
    return s.Length % 2 == 1 ? s[s.Length / 2] : (s[s.Length / 2 - 1] + s[s.Length / 2]) / 2;
}

sealed record Args(int Threads, int Prefill, int Decode, int Rounds, string[] Formats, string Dir, bool Small, bool LeaveOutputTensor = false)
{
    /// <summary>--pairs LABEL=PARE.gguf:LLAMA.gguf,...: Pare on one file, llama.cpp on another (same model, other storage).</summary>
    public string[] Pairs { get; init; } = [];

    public static Args Parse(string[] a)
    {
        var o = new Args(2, 128, 32, 5, ["F16", "Q8_0", "Q4_K_M"], Path.Combine(".cache", "bench"), false);
        for (int i = 0; i < a.Length; i++)
        {
            string Next() => i + 1 < a.Length ? a[++i] : throw new ArgumentException($"{a[i]} needs a value");
            o = a[i] switch
            {
                "--threads" => o with { Threads = int.Parse(Next(), CultureInfo.InvariantCulture) },
                "--prefill" => o with { Prefill = int.Parse(Next(), CultureInfo.InvariantCulture) },
                "--decode" => o with { Decode = int.Parse(Next(), CultureInfo.InvariantCulture) },
                "--rounds" => o with { Rounds = int.Parse(Next(), CultureInfo.InvariantCulture) },
                "--formats" => o with { Formats = Next().Split(',') },
                "--dir" => o with { Dir = Next() },
                "--small" => o with { Small = true },
                "--leave-output-tensor" => o with { LeaveOutputTensor = true },
                "--pairs" => o with { Pairs = Next().Split(',') },
                _ => throw new ArgumentException($"unknown option {a[i]} (see the comment at the top of Program.cs)"),
            };
        }
        return o;
    }
}
