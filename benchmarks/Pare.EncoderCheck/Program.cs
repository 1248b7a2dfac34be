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
//   dotnet run -c Release --project benchmarks/Pare.EncoderCheck -- speed [--threads 2] [--seq 128] [--seconds 10] [--gap-ms 20] [--out FILE.json]
//     Sentences/s of Pare and ONNX Runtime on the same ids (all-MiniLM-L6-v2), batch 1 and 32, sequence SEQ tokens;
//     an untimed pause of GAP_MS before each timed batch lets the other engine's spinning pool threads park.
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
    string loadBefore = LoadAverage();
    var model = EncoderModels.Model(EncoderModels.MiniLm);
    var inputs = FixedLengthInputs(model, seq);
    using var ort = new OrtEncoder(EncoderModels.Get(EncoderModels.MiniLm).OnnxPath, threads);
    var result = new List<Dictionary<string, object>>();
    foreach (int batch in new[] { 1, 32 })
    {
        var batches = Enumerable.Range(0, inputs.Count / batch).Select(b => inputs.Skip(b * batch).Take(batch).ToArray()).ToArray();
        var r = TakeTurns(batches, batch, seconds, b => model.EmbedIds(b, new EmbedOptions { Threads = threads, BatchSize = batch }), b => ort.Embed(b, BertPooling.Mean), gapMs);
        result.Add(new() { ["batch"] = batch, ["seq"] = seq, ["threads"] = threads, ["gap_ms"] = gapMs, ["pare_sentences_s"] = r.A, ["ort_sentences_s"] = r.B, ["pare_vs_ort"] = r.A / r.B,
            ["pare_cpu_ms_per_sentence"] = r.CpuA, ["ort_cpu_ms_per_sentence"] = r.CpuB, ["rounds"] = r.Rounds });
        Console.Error.WriteLine($"batch {batch,2}, seq {seq}, {threads} threads: Pare {r.A:F1} sentences/s ({r.CpuA:F0} CPU-ms each), ONNX Runtime {r.B:F1} sentences/s ({r.CpuB:F0} CPU-ms each), {r.A / r.B:F2}x");
    }
    string text = JsonSerializer.Serialize(new { load_average_before = loadBefore, load_average_after = LoadAverage(), runs = result }, json);
    Console.WriteLine(text);
    if (Opt("--out", "") is { Length: > 0 } outPath) File.WriteAllText(outPath, text + "\n");
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

Console.Error.WriteLine("usage: Pare.EncoderCheck check [--count N] [--out F] | prune [--queries N] [--calib N] [--out F] | token-prune [--queries N] [--layer L] [--out F] | speed [--threads N] [--seq N] [--seconds S] [--gap-ms G] [--out F] | compact-speed [--threads N] [--seq N] [--seconds S] [--patterns P] [--out F]");
return 2;
