// Pare's BERT encoder against its oracles and side by side with ONNX Runtime.
//
//   dotnet run -c Release --project benchmarks/Pare.EncoderCheck -- check [--count 1000] [--out FILE.json]
//     Both packaged models on COUNT test-split sentences: Pare vs ONNX Runtime (cosine per sentence, on Pare's ids),
//     Pare's token ids vs the package tokenizer's and llama.cpp's, Pare vs llama.cpp's embedding API on the GGUF Pare
//     wrote. Exit code 1 if an acceptance bound fails (ORT cosine < 0.99999, llama.cpp ids differ).
//
//   dotnet run -c Release --project benchmarks/Pare.EncoderCheck -- prune [--queries 200] [--calib 128] [--obert-calib 256]
//       [--methods magnitude,wanda,sparsegpt,obert] [--patterns 0.5,0.7,0.9,2:4] [--fisher-damp 1e-5] [--fisher-block 50] [--out FILE.json]
//     all-MiniLM-L6-v2 pruned by each method at each pattern (calibration: CALIB train-split sentences; oBERT: the first
//     OBERT-CALIB sentences of the same file and seed, one gradient each): retrieval recall@1/10 and MRR on the test split, mean cosine to
//     the dense model's embeddings.
//
//   dotnet run -c Release --project benchmarks/Pare.EncoderCheck -- token-prune [--queries 200] [--layer 3] [--methods a,b] [--keeps 0.5,0.3] [--out FILE.json]
//     all-MiniLM-L6-v2 with tokens pruned/merged after block LAYER by each token reducer at keep 0.5 and 0.3: encoder
//     FLOPs saved, wall speedup (documents + queries, 2 threads) and retrieval recall@1/10, MRR, cosine to dense.
//
//   dotnet run -c Release --project benchmarks/Pare.EncoderCheck -- speed [--threads 2] [--seq 128] [--seconds 10] [--gap-ms 20]
//       [--turn-ms 150] [--ort-spin 1] [--scaling-seconds 10] [--out FILE.json]
//     Sentences/s of Pare and ONNX Runtime on the same ids (all-MiniLM-L6-v2), batch 1 and 32, sequence SEQ tokens: the
//     engines take turns (order alternating round by round; a turn is TURN_MS of back-to-back batches), and before each
//     turn the process waits GAP_MS and then until the other engine's pool threads have parked (see Duel).
//     --ort-spin 0 sets ONNX Runtime's session.intra_op.allow_spinning to 0. Then, unless --scaling-seconds 0, each engine
//     at THREADS against itself on one thread at batch 1 (same turns; default 10 s each): what the second thread buys.
//
//   dotnet run -c Release --project benchmarks/Pare.EncoderCheck -- probe [--seq 128] [--reps 30] [--ort-idle 1]
//     Scratch diagnostics for batch 1: which threads burn CPU after an ONNX Runtime run (per-thread schedstat), Pare
//     alone on 1 vs 2 threads, the kernel pool's fork/join cost, the four products at SEQ tokens on 1 vs 2 threads.
//
//   dotnet run -c Release --project benchmarks/Pare.EncoderCheck -- pare-loop [--threads 1] [--batch 1] [--count 200]
//     Pare alone, COUNT batches back to back (for perf record): ms and CPU-ms per sentence, allocation, GCs.
//
//   dotnet run -c Release --project benchmarks/Pare.EncoderCheck -- compact-speed [--threads 2] [--seq 128] [--seconds 5] [--patterns 0.5,0.7,0.9,2:4] [--out FILE.json]
//     all-MiniLM-L6-v2 pruned (magnitude) at each pattern: sentences/s with the linear layers dense (zeros stored) vs in
//     the compact sparse format (bitmask + packed F32 non-zeros), taking turns batch by batch, batch 1 and 32.
using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using Microsoft.ML.OnnxRuntime;
using Pare.Models.Bert;
using Pare.Tests.TestSupport;

string mode = args.Length > 0 ? args[0] : "check";
string Opt(string name, string dflt) { int i = Array.IndexOf(args, name); return i >= 0 && i + 1 < args.Length ? args[i + 1] : dflt; }
string LoadAverage() => File.Exists("/proc/loadavg") ? string.Join(' ', File.ReadAllText("/proc/loadavg").Split(' ').Take(3)) : "?";
List<int[]> FixedLengthInputs(BertModel model, int seq)
{
    // Inputs of exactly SEQ tokens: test-split text cut into windows of SEQ-2 pieces, wrapped in [CLS] … [SEP].
    var pieces = model.Tokenizer.Encode(string.Join(' ', EncoderModels.TestSentences(400)), addSpecial: false);
    var inputs = new List<int[]>();
    for (int i = 0; i + seq - 2 <= pieces.Length && inputs.Count < 64; i += seq - 2)
        inputs.Add([model.Tokenizer.ClsId, .. pieces.AsSpan(i, seq - 2), model.Tokenizer.SepId]);
    return inputs;
}
// Two engines taking turns batch by batch (a shared machine's load falls on both alike) for 2 x SECONDS and at least
// three rounds each: sentences/s from the median batch time, and process CPU-ms per sentence. With GAP_MS > 0 each
// timed batch starts after an untimed pause of that length: both engines' pool threads spin for a while after a
// batch (ONNX Runtime's intra-op pool by default, Pare's kernel pool 200 us), and without the pause one engine's
// spinning threads hold a core while the other engine is being timed.
(double A, double B, double CpuA, double CpuB, int Rounds) TakeTurns(int[][][] batches, int batch, double seconds, Action<int[][]> a, Action<int[][]> b, int gapMs = 0)
{
    a(batches[0]); b(batches[0]); // warm up
    var wall = new List<double>[] { [], [] };
    var cpu = new double[2];
    var proc = Process.GetCurrentProcess();
    var total = Stopwatch.StartNew();
    for (int k = 0; total.Elapsed.TotalSeconds < 2 * seconds || wall[0].Count < 3; k++)
        for (int e = 0; e < 2; e++)
        {
            if (gapMs > 0) Thread.Sleep(gapMs);
            proc.Refresh();
            var c0 = proc.TotalProcessorTime;
            var sw = Stopwatch.StartNew();
            (e == 0 ? a : b)(batches[k % batches.Length]);
            wall[e].Add(sw.Elapsed.TotalSeconds);
            proc.Refresh();
            cpu[e] += (proc.TotalProcessorTime - c0).TotalSeconds;
        }
    double Median(List<double> l) { l.Sort(); return l[l.Count / 2]; }
    return (batch / Median(wall[0]), batch / Median(wall[1]), cpu[0] * 1000 / (wall[0].Count * batch), cpu[1] * 1000 / (wall[1].Count * batch), wall[0].Count);
}
// CPU time of this process's threads in ns (/proc/self/task/*/schedstat): the measuring thread apart, so its polling
// is not charged to an engine.
string selfTid = File.Exists("/proc/thread-self/stat") ? File.ReadAllText("/proc/thread-self/stat").Split(' ')[0] : "";
long SchedNs(string dir) { try { return long.Parse(File.ReadAllText(Path.Combine(dir, "schedstat")).Split(' ')[0], CultureInfo.InvariantCulture); } catch (IOException) { return 0; } }
long SelfNs() => selfTid.Length == 0 ? 0 : SchedNs("/proc/thread-self");
long OthersNs() => selfTid.Length == 0 ? 0 : Directory.GetDirectories("/proc/self/task").Where(d => Path.GetFileName(d) != selfTid).Sum(SchedNs);
// After GAP_MS, waits (at most 2 s) until the process's other threads ran < 0.1 ms in each of two consecutive 5 ms
// windows: the last engine's pool threads have parked. Returns the ms waited and whether idle was reached.
(double Ms, bool Idle) WaitIdle(int gapMs)
{
    var sw = Stopwatch.StartNew();
    if (gapMs > 0) Thread.Sleep(gapMs);
    if (selfTid.Length == 0) return (sw.Elapsed.TotalMilliseconds, true);
    int quiet = 0;
    while (sw.ElapsedMilliseconds < 2000)
    {
        long o0 = OthersNs();
        Thread.Sleep(5);
        quiet = OthersNs() - o0 < 100_000 ? quiet + 1 : 0;
        if (quiet >= 2) return (sw.Elapsed.TotalMilliseconds, true);
    }
    return (sw.Elapsed.TotalMilliseconds, false);
}
// Two engines (0 = Pare, 1 = ONNX Runtime) taking turns for 2 x SECONDS and at least four rounds: the order alternates
// round by round (even rounds Pare first), a turn runs batches back to back for TURN_MS (at least one), and before every
// turn the process waits until the other engine's threads have parked (WaitIdle: ONNX Runtime's intra-op threads spin
// for tens of ms after a run by default and would otherwise hold a core while Pare is timed, and Pare's 200 us).
// Sentences/s from the median batch time; the ratio also per order and as the median of per-round ratios; CPU-ms per
// sentence from the threads' schedstat over each turn up to the end of the idle wait after it (tail spinning included).
Dictionary<string, object> Duel(int[][][] batches, int batch, double seconds, int gapMs, int turnMs, Action<int[][]>[] engines, string[]? names = null)
{
    names ??= ["pare", "ort"];
    foreach (var e in engines) { e(batches[0]); e(batches[^1]); } // warm-up
    var times = new List<double>[] { [], [] };
    var byOrder = new List<double>[2, 2] { { [], [] }, { [], [] } }; // [order, engine]
    var roundRatio = new List<double>();
    var cpuNs = new double[2];
    var sentences = new long[2];
    int timeouts = 0, next = 0;
    var waited = new List<double>[] { [], [] }; // idle wait after each engine's turn, ms
    var total = Stopwatch.StartNew();
    int rounds = 0;
    var idle = WaitIdle(gapMs);
    for (; total.Elapsed.TotalSeconds < 2 * seconds || rounds < 4; rounds++)
    {
        int order = rounds % 2;
        var turnMean = new double[2];
        foreach (int e in order == 0 ? new[] { 0, 1 } : new[] { 1, 0 })
        {
            long self0 = SelfNs(), others0 = OthersNs(), selfEnd;
            var turn = Stopwatch.StartNew();
            int n = 0; double sum = 0;
            do
            {
                long t0 = Stopwatch.GetTimestamp();
                engines[e](batches[next++ % batches.Length]);
                double sec = Stopwatch.GetElapsedTime(t0).TotalSeconds;
                times[e].Add(sec); byOrder[order, e].Add(sec); sum += sec; n++;
            } while (turn.Elapsed.TotalMilliseconds < turnMs);
            selfEnd = SelfNs();
            idle = WaitIdle(gapMs);
            waited[e].Add(idle.Ms); if (!idle.Idle) timeouts++;
            cpuNs[e] += selfEnd - self0 + OthersNs() - others0;
            sentences[e] += (long)n * batch;
            turnMean[e] = sum / n;
        }
        roundRatio.Add(turnMean[1] / turnMean[0]);
    }
    double Median(List<double> l) { var a = l.Order().ToArray(); return a[a.Length / 2]; }
    double pare = batch / Median(times[0]), ort = batch / Median(times[1]);
    string A = names[0], B = names[1];
    return new()
    {
        ["batch"] = batch, [$"{A}_sentences_s"] = pare, [$"{B}_sentences_s"] = ort, [$"{A}_vs_{B}"] = pare / ort,
        [$"{A}_vs_{B}_{A}_first"] = Median(byOrder[0, 1]) / Median(byOrder[0, 0]), [$"{A}_vs_{B}_{B}_first"] = Median(byOrder[1, 1]) / Median(byOrder[1, 0]),
        [$"{A}_vs_{B}_median_of_rounds"] = Median(roundRatio),
        [$"{A}_cpu_ms_per_sentence"] = cpuNs[0] / 1e6 / sentences[0], [$"{B}_cpu_ms_per_sentence"] = cpuNs[1] / 1e6 / sentences[1],
        ["rounds"] = rounds, [$"batches_timed_{A}"] = times[0].Count, [$"batches_timed_{B}"] = times[1].Count,
        [$"idle_wait_ms_after_{A}"] = Median(waited[0]), [$"idle_wait_ms_after_{B}"] = Median(waited[1]), ["idle_wait_timeouts"] = timeouts,
    };
}
var json = new JsonSerializerOptions { WriteIndented = true, Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping };

if (mode == "check")
{
    int count = int.Parse(Opt("--count", "1000"), CultureInfo.InvariantCulture);
    var texts = EncoderModels.TestSentences(count);
    var report = new Dictionary<string, object>();
    bool ok = true;
    foreach (var name in EncoderModels.Names)
    {
        var model = EncoderModels.Model(name);
        var sw = Stopwatch.StartNew();
        var pare = model.Embed(texts, new EmbedOptions { Threads = 2, BatchSize = 32 });
        double pareSeconds = sw.Elapsed.TotalSeconds;

        // ONNX Runtime on the package graph, batches of 32 sentences padded to their longest, on Pare's ids.
        using var ort = new OrtEncoder(EncoderModels.Get(name).OnnxPath);
        var cosOrt = new double[texts.Count];
        for (int s = 0; s < texts.Count; s += 32)
        {
            var ids = pare.TokenIds.Skip(s).Take(32).ToArray();
            var o = ort.Embed(ids, model.Config.Pooling);
            for (int i = 0; i < ids.Length; i++) cosOrt[s + i] = SentencePooling.Cosine(pare.Vectors[s + i], o[i]);
        }

        // Token ids: the package tokenizer and llama.cpp's (untruncated ids on both sides).
        using var cpp = new LlamaCppEncoder(EncoderModels.Gguf(name));
        int pkgEqual = 0, pkgAscii = 0, pkgAsciiEqual = 0, cppEqual = 0;
        var pkgDiffer = new List<string>();
        var pkgAsciiDiffer = new List<string>();
        var cppDiffer = new List<string>();
        var cosCpp = new List<double>();
        for (int i = 0; i < texts.Count; i++)
        {
            var mine = model.Tokenizer.Encode(texts[i]);
            bool ascii = texts[i].All(ch => ch <= 0x7F);
            var pkg = PackageTokenizer.Encode(name, texts[i]);
            bool pe = pkg.SequenceEqual(mine);
            if (pe) pkgEqual++; else if (pkgDiffer.Count < 5) pkgDiffer.Add(texts[i]);
            if (ascii && mine.Length <= 512) { pkgAscii++; if (pe) pkgAsciiEqual++; else pkgAsciiDiffer.Add(texts[i]); }
            if (cpp.Tokenize(texts[i]).SequenceEqual(mine)) cppEqual++; else if (cppDiffer.Count < 5) cppDiffer.Add(texts[i]);
            if (mine.Length <= model.Config.SeqLimit) cosCpp.Add(SentencePooling.Cosine(pare.Vectors[i], cpp.Embed(texts[i])));
        }
        var lengths = pare.TokenIds.Select(t => t.Length).Order().ToArray();
        var r = new Dictionary<string, object>
        {
            ["sentences"] = texts.Count,
            ["tokens_min_median_max"] = new[] { lengths[0], lengths[lengths.Length / 2], lengths[^1] },
            ["truncated"] = pare.Truncated.Count,
            ["ort_cosine_min"] = cosOrt.Min(),
            ["ort_cosine_mean"] = cosOrt.Average(),
            ["ort_at_least_0_99999"] = cosOrt.Count(c => c >= 0.99999),
            ["llamacpp_ids_equal"] = cppEqual,
            ["llamacpp_ids_differ_examples"] = cppDiffer,
            ["llamacpp_embedding_compared"] = cosCpp.Count,
            ["llamacpp_cosine_min"] = cosCpp.Min(),
            ["llamacpp_cosine_mean"] = cosCpp.Average(),
            ["package_ids_equal"] = pkgEqual,
            ["package_ascii_sentences"] = pkgAscii,
            ["package_ascii_ids_equal"] = pkgAsciiEqual,
            ["package_ids_differ_examples"] = pkgDiffer,
            ["package_ascii_ids_differ"] = pkgAsciiDiffer,
            ["pare_seconds_2_threads"] = pareSeconds,
        };
        report[name] = r;
        ok &= cosOrt.Min() >= 0.99999 && cppEqual == texts.Count;
        Console.Error.WriteLine($"{name}: ORT cosine min {cosOrt.Min():F7} ({r["ort_at_least_0_99999"]}/{texts.Count} >= 0.99999); llama.cpp ids {cppEqual}/{texts.Count}, cosine min {cosCpp.Min():F6} over {cosCpp.Count}; package ids {pkgEqual}/{texts.Count} (ASCII {pkgAsciiEqual}/{pkgAscii})");
    }
    string text = JsonSerializer.Serialize(report, json);
    Console.WriteLine(text);
    if (Opt("--out", "") is { Length: > 0 } outPath) File.WriteAllText(outPath, text + "\n");
    return ok ? 0 : 1;
}

if (mode == "speed")
{
    int threads = int.Parse(Opt("--threads", "2"), CultureInfo.InvariantCulture);
    int seq = int.Parse(Opt("--seq", "128"), CultureInfo.InvariantCulture);
    double seconds = double.Parse(Opt("--seconds", "10"), CultureInfo.InvariantCulture);
    int gapMs = int.Parse(Opt("--gap-ms", "20"), CultureInfo.InvariantCulture);
    int turnMs = int.Parse(Opt("--turn-ms", "150"), CultureInfo.InvariantCulture);
    bool ortSpin = Opt("--ort-spin", "1") != "0";
    string loadBefore = LoadAverage();
    var model = EncoderModels.Model(EncoderModels.MiniLm);
    var inputs = FixedLengthInputs(model, seq);
    using var ort = new OrtEncoder(EncoderModels.Get(EncoderModels.MiniLm).OnnxPath, threads, ortSpin);
    var result = new List<Dictionary<string, object>>();
    foreach (int batch in new[] { 1, 32 })
    {
        var batches = Enumerable.Range(0, inputs.Count / batch).Select(b => inputs.Skip(b * batch).Take(batch).ToArray()).ToArray();
        var eo = new EmbedOptions { Threads = threads, BatchSize = batch };
        var r = Duel(batches, batch, seconds, gapMs, turnMs, [b => model.EmbedIds(b, eo), b => ort.Embed(b, BertPooling.Mean)]);
        r["seq"] = seq; r["threads"] = threads; r["gap_ms"] = gapMs; r["turn_ms"] = turnMs; r["ort_spinning"] = ortSpin;
        result.Add(r);
        Console.Error.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"batch {batch,2}, seq {seq}, {threads} threads: Pare {r["pare_sentences_s"]:F1} sentences/s ({r["pare_cpu_ms_per_sentence"]:F1} CPU-ms each), ONNX Runtime {r["ort_sentences_s"]:F1} sentences/s ({r["ort_cpu_ms_per_sentence"]:F1} CPU-ms each): {r["pare_vs_ort"]:F2}x (Pare first {r["pare_vs_ort_pare_first"]:F2}x, ORT first {r["pare_vs_ort_ort_first"]:F2}x, median of rounds {r["pare_vs_ort_median_of_rounds"]:F2}x; {r["rounds"]} rounds, idle wait after Pare / ORT {r["idle_wait_ms_after_pare"]:F0} / {r["idle_wait_ms_after_ort"]:F0} ms, {r["idle_wait_timeouts"]} timeouts)"));
    }
    // Each engine against itself on one thread at batch 1 (same turns): what the second thread buys. 0 skips it.
    double scalingSeconds = double.Parse(Opt("--scaling-seconds", "10"), CultureInfo.InvariantCulture);
    var scaling = new List<Dictionary<string, object>>();
    if (scalingSeconds > 0 && threads > 1)
    {
        var batches1 = inputs.Select(i => new[] { i }).ToArray();
        var eo1 = new EmbedOptions { Threads = 1, BatchSize = 1 }; var eoN = new EmbedOptions { Threads = threads, BatchSize = 1 };
        var p = Duel(batches1, 1, scalingSeconds, gapMs, turnMs, [b => model.EmbedIds(b, eoN), b => model.EmbedIds(b, eo1)], ["pare_n", "pare_1"]);
        using var ort1 = new OrtEncoder(EncoderModels.Get(EncoderModels.MiniLm).OnnxPath, 1, ortSpin);
        var o = Duel(batches1, 1, scalingSeconds, gapMs, turnMs, [b => ort.Embed(b, BertPooling.Mean), b => ort1.Embed(b, BertPooling.Mean)], ["ort_n", "ort_1"]);
        scaling.Add(p); scaling.Add(o);
        Console.Error.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"batch  1, {threads} threads vs 1: Pare {p["pare_n_vs_pare_1"]:F2}x ({p["pare_n_cpu_ms_per_sentence"]:F1} vs {p["pare_1_cpu_ms_per_sentence"]:F1} CPU-ms each), ONNX Runtime {o["ort_n_vs_ort_1"]:F2}x ({o["ort_n_cpu_ms_per_sentence"]:F1} vs {o["ort_1_cpu_ms_per_sentence"]:F1} CPU-ms each)"));
    }
    string text = JsonSerializer.Serialize(new { load_average_before = loadBefore, load_average_after = LoadAverage(), runs = result, scaling_batch1 = scaling }, json);
    Console.WriteLine(text);
    if (Opt("--out", "") is { Length: > 0 } outPath) File.WriteAllText(outPath, text + "\n");
    return 0;
}

if (mode == "pare-loop")
{
    // Scratch for profiling: Pare alone, COUNT batches back to back.
    int threads = int.Parse(Opt("--threads", "1"), CultureInfo.InvariantCulture);
    int batch = int.Parse(Opt("--batch", "1"), CultureInfo.InvariantCulture);
    int count = int.Parse(Opt("--count", "200"), CultureInfo.InvariantCulture);
    var model = EncoderModels.Model(EncoderModels.MiniLm);
    var inputs = FixedLengthInputs(model, 128);
    var eo = new EmbedOptions { Threads = threads, BatchSize = batch };
    var batches = Enumerable.Range(0, inputs.Count / batch).Select(b => inputs.Skip(b * batch).Take(batch).ToArray()).ToArray();
    for (int i = 0; i < 5; i++) model.EmbedIds(batches[i % batches.Length], eo);
    long c0 = SelfNs() + OthersNs(); var sw = Stopwatch.StartNew();
    long a0 = GC.GetTotalAllocatedBytes(true); int g0 = GC.CollectionCount(0), g1 = GC.CollectionCount(1), g2 = GC.CollectionCount(2);
    for (int i = 0; i < count; i++) model.EmbedIds(batches[i % batches.Length], eo);
    double cpu = (SelfNs() + OthersNs() - c0) / 1e6;
    Console.Error.WriteLine($"{count} batches of {batch}, {threads} threads: {sw.Elapsed.TotalMilliseconds / count / batch:F2} ms wall, {cpu / count / batch:F2} CPU-ms per sentence; " +
        $"{(GC.GetTotalAllocatedBytes(true) - a0) / count / 1024.0:F0} KB allocated per batch, GCs gen0/1/2 {GC.CollectionCount(0) - g0}/{GC.CollectionCount(1) - g1}/{GC.CollectionCount(2) - g2}");
    return 0;
}

if (mode == "probe")
{
    // Scratch: where batch-1 time goes. (1) process CPU while idle after an ORT run; (2) the encoder's products at
    // 128 tokens on random weights, 1 vs 2 threads, hot (same layer) and cold (6 layers in turn).
    int seq = int.Parse(Opt("--seq", "128"), CultureInfo.InvariantCulture);
    int reps = int.Parse(Opt("--reps", "30"), CultureInfo.InvariantCulture);
    var proc = Process.GetCurrentProcess();
    double Cpu() => (SelfNs() + OthersNs()) / 1e6;
    if (Opt("--ort-idle", "1") == "1")
    {
        var model0 = EncoderModels.Model(EncoderModels.MiniLm);
        var inputs0 = FixedLengthInputs(model0, seq);
        var tidsBefore = Directory.GetDirectories("/proc/self/task").Select(Path.GetFileName).ToHashSet();
        using var ort0 = new OrtEncoder(EncoderModels.Get(EncoderModels.MiniLm).OnnxPath, 2);
        Console.Error.WriteLine("threads ORT created: " + string.Join(' ', Directory.GetDirectories("/proc/self/task").Select(Path.GetFileName).Where(t => !tidsBefore.Contains(t))));
        for (int r = 0; r < 5; r++) ort0.Embed([inputs0[r]], BertPooling.Mean);
        Dictionary<string, long> Threads()
        {
            var d = new Dictionary<string, long>();
            foreach (var dir in Directory.GetDirectories("/proc/self/task"))
            {
                try
                {
                    var name = File.ReadAllText(Path.Combine(dir, "comm")).Trim() + "#" + Path.GetFileName(dir);
                    d[name] = long.Parse(File.ReadAllText(Path.Combine(dir, "schedstat")).Split(' ')[0]) / 1000;
                }
                catch (IOException) { }
            }
            return d;
        }
        for (int rep = 0; rep < 3; rep++)
        {
            ort0.Embed([inputs0[rep]], BertPooling.Mean);
            var before = Threads(); var sw0 = Stopwatch.StartNew();
            var marks = new List<string>();
            for (int w = 0; w < 60; w++)
            {
                Thread.Sleep(5);
                var now = Threads();
                var busy = now.Where(kv => before.TryGetValue(kv.Key, out long b) && kv.Value > b).Select(kv => $"{kv.Key}+{(kv.Value - before[kv.Key]) / 1000.0:F1}ms");
                marks.Add($"[{sw0.ElapsedMilliseconds}ms: {string.Join(",", busy)}]");
                before = now;
            }
            Console.Error.WriteLine("after ORT run, busy threads per ~5 ms (CPU ms): " + string.Join(' ', marks));
        }
        var line = new List<string>();
        double c = Cpu();
        for (int w = 0; w < 10; w++) { Thread.Sleep(10); double c2 = Cpu(); line.Add($"{c2 - c:F1}"); c = c2; }
        Console.Error.WriteLine($"ORT idle after a run, CPU-ms per 10 ms window: {string.Join(' ', line)}");
        line.Clear();
        for (int r = 0; r < 3; r++) model0.EmbedIds([inputs0[r]], new EmbedOptions { Threads = 2, BatchSize = 1 });
        c = Cpu();
        for (int w = 0; w < 10; w++) { Thread.Sleep(10); double c2 = Cpu(); line.Add($"{c2 - c:F1}"); c = c2; }
        Console.Error.WriteLine($"Pare idle after a run, CPU-ms per 10 ms window: {string.Join(' ', line)}");
        // Whole sentences, Pare only: 1 vs 2 threads interleaved.
        var cpuT = new List<double>[] { [], [] }; var wallT = new List<double>[] { [], [] };
        for (int r = 0; r < reps; r++)
            for (int th = 1; th <= 2; th++)
            {
                Thread.Sleep(5);
                double c0 = Cpu(); var sw = Stopwatch.StartNew();
                model0.EmbedIds([inputs0[r % inputs0.Count]], new EmbedOptions { Threads = th, BatchSize = 1 });
                wallT[th - 1].Add(sw.Elapsed.TotalMilliseconds); cpuT[th - 1].Add(Cpu() - c0);
            }
        double Med(List<double> l) { var a = l.Order().ToArray(); return a[a.Length / 2]; }
        double Min(List<double> l) => l.Min();
        for (int th = 1; th <= 2; th++)
            Console.Error.WriteLine($"Pare batch 1, {th} thread(s): wall median {Med(wallT[th - 1]):F1} ms (min {Min(wallT[th - 1]):F1}), CPU median {Med(cpuT[th - 1]):F1} ms (min {Min(cpuT[th - 1]):F1})");
    }
    {
        // The kernel pool's fork/join cost: a product of 1 token x 64 outputs (two chunks of a few hundred ns) on 2
        // threads, back to back (the worker spinning) and after 2 ms asleep (the worker parked on its semaphore).
        var tw = new Pare.Kernels.F32GemmWeights(new float[64 * 16], 64, 16, []);
        var tx = new float[16]; var ty = new float[64];
        foreach (bool parked in new[] { false, true })
            foreach (int th in new[] { 1, 2 })
            {
                var l = new List<double>();
                for (int r = 0; r < (parked ? 200 : 5000); r++)
                {
                    if (parked) Thread.Sleep(2);
                    long t0 = Stopwatch.GetTimestamp();
                    Pare.Kernels.F32Gemm.Multiply(tw, tx, 1, ty, th);
                    l.Add(Stopwatch.GetElapsedTime(t0).TotalMicroseconds);
                }
                l.Sort();
                Console.Error.WriteLine($"pool {(parked ? "after 2 ms asleep" : "back to back    ")}, {th} thread(s): median {l[l.Count / 2]:F1} us, p10 {l[l.Count / 10]:F1} us, min {l[0]:F1} us");
            }
    }
    var rng = new Random(1);
    float[] Rand(int n) { var a = new float[n]; for (int i = 0; i < n; i++) a[i] = (float)(rng.NextDouble() - 0.5) * 0.1f; return a; }
    var shapes = new (string Name, int N, int K, bool Gelu)[] { ("qkv", 1152, 384, false), ("o", 384, 384, false), ("up", 1536, 384, true), ("down", 384, 1536, false) };
    var layers = Enumerable.Range(0, 6).Select(_ => shapes.Select(s => new Pare.Kernels.F32GemmWeights(Rand(s.N * s.K), s.N, s.K, Rand(s.N))).ToArray()).ToArray();
    var x = Rand(seq * 1536); var y = new float[seq * 1536];
    foreach (bool cold in new[] { false, true })
        for (int si = 0; si < shapes.Length; si++)
        {
            var res = new List<string>();
            for (int th = 1; th <= 2; th++)
            {
                var walls = new List<double>(); var cpus = new List<double>();
                for (int r = 0; r < reps; r++)
                {
                    var w = layers[cold ? r % 6 : 0][si];
                    double c0 = Cpu(); long t0 = Stopwatch.GetTimestamp();
                    for (int i = 0; i < 6; i++) Pare.Kernels.F32Gemm.Multiply(cold ? layers[i][si] : w, x, seq, y, th, shapes[si].Gelu);
                    walls.Add(Stopwatch.GetElapsedTime(t0).TotalMilliseconds / 6); cpus.Add((Cpu() - c0) / 6);
                }
                walls.Sort(); cpus.Sort();
                double gf = 2.0 * seq * shapes[si].N * shapes[si].K / 1e6;
                res.Add($"{th}t wall {walls[walls.Count / 2]:F3} ms (min {walls[0]:F3}, {gf / walls[0]:F0} GF/s) cpu {cpus[cpus.Count / 2]:F2}");
            }
            Console.Error.WriteLine($"{(cold ? "cold" : "hot "),-4} {shapes[si].Name,-4}: {string.Join(" | ", res)}");
        }
    return 0;
}

if (mode == "compact-speed")
{
    int threads = int.Parse(Opt("--threads", "2"), CultureInfo.InvariantCulture);
    int seq = int.Parse(Opt("--seq", "128"), CultureInfo.InvariantCulture);
    double seconds = double.Parse(Opt("--seconds", "5"), CultureInfo.InvariantCulture);
    string loadBefore = LoadAverage();
    var dense = EncoderModels.Model(EncoderModels.MiniLm);
    var inputs = FixedLengthInputs(dense, seq);
    var result = new List<Dictionary<string, object>>();
    foreach (var pattern in Opt("--patterns", "0.5,0.7,0.9,2:4").Split(','))
    {
        var pat = pattern.Contains(':') ? Pare.Pruning.SparsityPattern.Parse(pattern, 0) : Pare.Pruning.SparsityPattern.Unstructured(double.Parse(pattern, CultureInfo.InvariantCulture));
        var pruned = Pare.Pruning.BertPruner.Prune(dense, [], new Pare.Pruning.BertPruneOptions { Method = Pare.Pruning.PruneMethod.Magnitude, Pattern = pat, Threads = threads });
        var zeros = new BertModel(dense.Config, pruned, dense.Tokenizer.Vocab);
        var compact = new BertModel(dense.Config, pruned, dense.Tokenizer.Vocab, compact: true);
        long denseBytes = zeros.Encoder.Weights.Layers.Sum(l => new[] { l.Wqkv, l.Wo, l.Up, l.Down }.Sum(w => w.ByteLength));
        long compactBytes = compact.Encoder.Weights.Layers.Sum(l => new[] { l.Wqkv, l.Wo, l.Up, l.Down }.Sum(w => w.ByteLength));
        var check = inputs.Take(8).ToArray();
        double minCos = zeros.EmbedIds(check).Zip(compact.EmbedIds(check)).Min(p => SentencePooling.Cosine(p.First, p.Second));
        foreach (int batch in new[] { 1, 32 })
        {
            var batches = Enumerable.Range(0, inputs.Count / batch).Select(b => inputs.Skip(b * batch).Take(batch).ToArray()).ToArray();
            var eo = new EmbedOptions { Threads = threads, BatchSize = batch };
            var r = TakeTurns(batches, batch, seconds, b => zeros.EmbedIds(b, eo), b => compact.EmbedIds(b, eo));
            result.Add(new() { ["pattern"] = pattern, ["batch"] = batch, ["seq"] = seq, ["threads"] = threads, ["dense_sentences_s"] = r.A, ["compact_sentences_s"] = r.B,
                ["compact_vs_dense"] = r.B / r.A, ["dense_cpu_ms_per_sentence"] = r.CpuA, ["compact_cpu_ms_per_sentence"] = r.CpuB, ["rounds"] = r.Rounds,
                ["linear_bytes_dense"] = denseBytes, ["linear_bytes_compact"] = compactBytes, ["min_cosine_compact_vs_dense"] = minCos });
            Console.Error.WriteLine($"{pattern,-4} batch {batch,2}: dense {r.A:F1} sentences/s, compact {r.B:F1} sentences/s, {r.B / r.A:F2}x (linear weights {denseBytes / 1e6:F1} -> {compactBytes / 1e6:F1} MB, cosine {minCos:F7})");
        }
    }
    string text = JsonSerializer.Serialize(new { load_average_before = loadBefore, load_average_after = LoadAverage(), runs = result }, json);
    Console.WriteLine(text);
    if (Opt("--out", "") is { Length: > 0 } outPath) File.WriteAllText(outPath, text + "\n");
    return 0;
}

if (mode == "prune")
{
    int queries = int.Parse(Opt("--queries", "200"), CultureInfo.InvariantCulture);
    int calibCount = int.Parse(Opt("--calib", "128"), CultureInfo.InvariantCulture);
    int obertCount = int.Parse(Opt("--obert-calib", "256"), CultureInfo.InvariantCulture);
    double fisherDamp = double.Parse(Opt("--fisher-damp", "1e-5"), CultureInfo.InvariantCulture);
    int fisherBlock = int.Parse(Opt("--fisher-block", "50"), CultureInfo.InvariantCulture);
    var corpus = Pare.Data.CorpusFetcher.Fetch(new Pare.Data.FetchOptions { CacheDir = Path.Combine(Path.GetTempPath(), "pare-test-corpus") });
    var dense = EncoderModels.Model(EncoderModels.MiniLm);
    var set = Pare.Evaluation.EncoderRetrieval.Build(File.ReadAllText(corpus.TestPath), queries);
    var calib = Pare.Data.SentenceSample.Draw(File.ReadAllText(corpus.TrainPath), calibCount, seed: 1).Select(t => dense.Tokenize(t).Ids).ToArray();
    var obertCalib = Pare.Data.SentenceSample.Draw(File.ReadAllText(corpus.TrainPath), obertCount, seed: 1).Select(t => dense.Tokenize(t).Ids).ToArray();
    var eo = new EmbedOptions { Threads = 2, BatchSize = 32 };
    (float[][] Docs, float[][] Queries) Vectors(BertModel m) => (m.Embed(set.Documents, eo).Vectors, m.Embed(set.Queries, eo).Vectors);
    var (dDocs, dQueries) = Vectors(dense);
    var denseScores = Pare.Evaluation.EncoderRetrieval.Score(set, dDocs, dQueries);
    var rows = new List<Dictionary<string, object>>
    {
        new() { ["method"] = "dense", ["pattern"] = "-", ["sparsity"] = 0.0, ["recall_at_1"] = denseScores.RecallAt1, ["recall_at_10"] = denseScores.RecallAt10, ["mrr"] = denseScores.Mrr, ["cosine_to_dense"] = 1.0, ["prune_seconds"] = 0.0 },
    };
    Console.Error.WriteLine($"dense: R@1 {denseScores.RecallAt1:F3} R@10 {denseScores.RecallAt10:F3} MRR {denseScores.Mrr:F3} ({denseScores.Queries} queries, {set.Documents.Count} documents)");
    foreach (var method in Opt("--methods", "magnitude,wanda,sparsegpt,obert").Split(',').Select(m => Enum.Parse<Pare.Pruning.PruneMethod>(m, ignoreCase: true)))
        foreach (var pattern in Opt("--patterns", "0.5,0.7,0.9,2:4").Split(','))
        {
            var pat = pattern.Contains(':') ? Pare.Pruning.SparsityPattern.Parse(pattern, 0) : Pare.Pruning.SparsityPattern.Unstructured(double.Parse(pattern, CultureInfo.InvariantCulture));
            var sw = Stopwatch.StartNew();
            bool obert = method == Pare.Pruning.PruneMethod.OBert;
            var pruned = Pare.Pruning.BertPruner.Prune(dense, obert ? obertCalib : calib,
                new Pare.Pruning.BertPruneOptions { Method = method, Pattern = pat, Threads = 2, FisherDamp = fisherDamp, FisherBlockSize = fisherBlock });
            double secs = sw.Elapsed.TotalSeconds;
            var m = new BertModel(dense.Config, pruned, dense.Tokenizer.Vocab);
            var (docs, qs) = Vectors(m);
            var sc = Pare.Evaluation.EncoderRetrieval.Score(set, docs, qs);
            double cos = docs.Zip(dDocs).Concat(qs.Zip(dQueries)).Average(p => SentencePooling.Cosine(p.First, p.Second));
            double sparsity = Pare.Pruning.BertPruner.Sparsity(dense.Config, pruned);
            rows.Add(new() { ["method"] = method.ToString().ToLowerInvariant(), ["pattern"] = pattern, ["sparsity"] = sparsity, ["calibration_sentences"] = obert ? obertCalib.Length : calib.Length, ["recall_at_1"] = sc.RecallAt1, ["recall_at_10"] = sc.RecallAt10, ["mrr"] = sc.Mrr, ["cosine_to_dense"] = cos, ["prune_seconds"] = secs });
            Console.Error.WriteLine($"{method,-10} {pattern,-4} sparsity {sparsity:F3}: R@1 {sc.RecallAt1:F3} R@10 {sc.RecallAt10:F3} MRR {sc.Mrr:F3} cosine {cos:F4} ({secs:F1} s)");
        }
    string text = JsonSerializer.Serialize(new { queries = set.Queries.Count, documents = set.Documents.Count, calibration_sentences = calib.Length, obert_calibration_sentences = obertCalib.Length, fisher_block = fisherBlock, fisher_damp = fisherDamp, rows }, json);
    Console.WriteLine(text);
    if (Opt("--out", "") is { Length: > 0 } outPath) File.WriteAllText(outPath, text + "\n");
    return 0;
}

if (mode == "token-prune")
{
    int queries = int.Parse(Opt("--queries", "200"), CultureInfo.InvariantCulture);
    int layer = int.Parse(Opt("--layer", "3"), CultureInfo.InvariantCulture);
    var corpus = Pare.Data.CorpusFetcher.Fetch(new Pare.Data.FetchOptions { CacheDir = Path.Combine(Path.GetTempPath(), "pare-test-corpus") });
    var model = EncoderModels.Model(EncoderModels.MiniLm);
    var set = Pare.Evaluation.EncoderRetrieval.Build(File.ReadAllText(corpus.TestPath), queries);
    (float[][] Docs, float[][] Queries, double Flops, double Seconds) Run(ITokenReducer? reducer)
    {
        var trace = new TokenTrace();
        var eo = new EmbedOptions { Threads = 2, BatchSize = 32, TokenReducer = reducer, Trace = trace };
        model.Embed(set.Queries.Take(32).ToArray(), eo with { Trace = null });   // warm-up
        var sw = Stopwatch.StartNew();
        var d = model.Embed(set.Documents, eo).Vectors;
        var q = model.Embed(set.Queries, eo).Vectors;
        return (d, q, trace.TotalFlops(model.Config), sw.Elapsed.TotalSeconds);
    }
    var dense = Run(null);
    var ds = Pare.Evaluation.EncoderRetrieval.Score(set, dense.Docs, dense.Queries);
    var rows = new List<Dictionary<string, object>>
    {
        new() { ["method"] = "dense", ["keep"] = 1.0, ["flops_saved"] = 0.0, ["speedup"] = 1.0, ["seconds"] = dense.Seconds, ["recall_at_1"] = ds.RecallAt1, ["recall_at_10"] = ds.RecallAt10, ["mrr"] = ds.Mrr, ["cosine_to_dense"] = 1.0 },
    };
    Console.Error.WriteLine($"dense: R@1 {ds.RecallAt1:F3} R@10 {ds.RecallAt10:F3} MRR {ds.Mrr:F3} {dense.Seconds:F1} s ({ds.Queries} queries, {set.Documents.Count} documents)");
    foreach (var keep in Opt("--keeps", "0.5,0.3").Split(',').Select(k => double.Parse(k, CultureInfo.InvariantCulture)))
        foreach (var method in Opt("--methods", string.Join(",", Pare.Pruning.Tokens.TokenPruners.Methods)).Split(','))
        {
            var r = Run(Pare.Pruning.Tokens.TokenPruners.Create(method, new Pare.Pruning.Tokens.TokenPruneOptions { Keep = keep, Layers = [layer] }));
            var sc = Pare.Evaluation.EncoderRetrieval.Score(set, r.Docs, r.Queries);
            double cos = r.Docs.Zip(dense.Docs).Concat(r.Queries.Zip(dense.Queries)).Average(p => SentencePooling.Cosine(p.First, p.Second));
            double saved = 1 - r.Flops / dense.Flops, speedup = dense.Seconds / r.Seconds;
            rows.Add(new() { ["method"] = method, ["keep"] = keep, ["flops_saved"] = saved, ["speedup"] = speedup, ["seconds"] = r.Seconds, ["recall_at_1"] = sc.RecallAt1, ["recall_at_10"] = sc.RecallAt10, ["mrr"] = sc.Mrr, ["cosine_to_dense"] = cos });
            Console.Error.WriteLine($"{method,-12} keep {keep:F1}: FLOPs -{saved:P1} speedup {speedup:F2}x R@1 {sc.RecallAt1:F3} R@10 {sc.RecallAt10:F3} MRR {sc.Mrr:F3} cosine {cos:F4}");
        }
    string text = JsonSerializer.Serialize(new { queries = set.Queries.Count, documents = set.Documents.Count, layer, rows }, json);
    Console.WriteLine(text);
    if (Opt("--out", "") is { Length: > 0 } outPath) File.WriteAllText(outPath, text + "\n");
    return 0;
}

Console.Error.WriteLine("usage: Pare.EncoderCheck check [--count N] [--out F] | prune [--queries N] [--calib N] [--out F] | token-prune [--queries N] [--layer L] [--out F] | speed [--threads N] [--seq N] [--seconds S] [--gap-ms G] [--turn-ms T] [--ort-spin 0|1] [--scaling-seconds S] [--out F] | probe [--seq N] [--reps N] [--ort-idle 0|1] | pare-loop [--threads N] [--batch N] [--count N] | compact-speed [--threads N] [--seq N] [--seconds S] [--patterns P] [--out F]");
return 2;
