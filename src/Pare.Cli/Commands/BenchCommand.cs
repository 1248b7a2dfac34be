using System.CommandLine;
using System.Diagnostics;
using Pare.Models;
using Spectre.Console;

namespace Pare.Cli.Commands;

/// <summary><c>pare bench MODEL</c>: prefill and decode speed, achieved weight bandwidth, peak memory.</summary>
internal static class BenchCommand
{
    public static Command Create()
    {
        var model = Cli.ModelArgument();
        var prefill = new Option<int>("--prefill") { Description = "Prompt length in tokens for the prefill measurement.", DefaultValueFactory = _ => 128 }.AtLeast(1);
        var decode = new Option<int>("--decode") { Description = "Tokens to decode one at a time after the prompt.", DefaultValueFactory = _ => 32 }.AtLeast(0);
        var runs = new Option<int>("--runs") { Description = "Repetitions; the median is reported.", DefaultValueFactory = _ => 3 }.Between(1, 1000);
        var seed = new Option<int>("--seed") { Description = "Seed of the random prompt tokens.", DefaultValueFactory = _ => 1 };
        var roofline = new Option<bool>("--roofline") { Description = "Also measure memory read bandwidth (multi-stream) and report decode against the memory roofline." };
        var treeCosts = new Option<bool>("--tree-costs") { Description = "Also measure T(n)/T(1), the cost of one forward pass over n = 1..64 tokens (what speculative decoding must beat)." };
        var threads = Cli.Threads();
        var kvType = Cli.KvType();
        var json = Cli.Json();
        var cmd = new Command("bench", "Measure prefill and decode speed on random tokens (settings printed with the figures).")
            { model, prefill, decode, runs, seed, roofline, treeCosts, threads, kvType, json };
        cmd.SetAction(r => Cli.Guard(() =>
        {
            int np = r.GetValue(prefill), nd = r.GetValue(decode), nr = r.GetValue(runs), nt = r.GetValue(threads);
            if (np < 1) throw new PareException($"--prefill must be at least 1 (got {np})");
            if (nd < 0) throw new PareException($"--decode must be 0 or more (got {nd})");
            if (nr < 1) throw new PareException($"--runs must be at least 1 (got {nr})");
            bool asJson = r.GetValue(json);
            using var m = Cli.Load(r.GetValue(model)!);
            if (np + nd > m.Config.ContextLength) throw new PareException($"--prefill + --decode = {np + nd} exceeds the model's context length {m.Config.ContextLength}");
            var rng = new Random(r.GetValue(seed));
            var prompt = Enumerable.Range(0, np).Select(_ => rng.Next(m.Config.VocabSize)).ToArray();
            var session = m.CreateSession(new SessionOptions { Threads = nt, ContextLength = np + nd, KvType = r.GetValue(kvType) });
            var prefillRates = new List<double>();
            var decodeRates = new List<double>();
            Cli.WithProgress(asJson, "benchmarking", progress =>
            {
                // One untimed warm-up pass brings the weights into memory and the JIT to its final code.
                session.Reset();
                session.Forward(prompt.AsSpan(0, Math.Min(np, 8)));
                for (int run = 0; run < nr; run++)
                {
                    Cli.Cancellation.ThrowIfCancellationRequested();
                    session.Reset();
                    var sw = Stopwatch.StartNew();
                    var logits = session.Forward(prompt);
                    prefillRates.Add(np / sw.Elapsed.TotalSeconds);
                    sw.Restart();
                    for (int i = 0; i < nd; i++)
                    {
                        int next = Generation.Sampler.ArgMax(logits);
                        logits = session.Forward([next]);
                    }
                    if (nd > 0) decodeRates.Add(nd / sw.Elapsed.TotalSeconds);
                    progress?.Report((run + 1.0) / nr);
                }
                return 0;
            });
            double rss = Cli.PeakRssMb(); // before the bandwidth test's buffers, which are not the model's
            double pre = Median(prefillRates), dec = decodeRates.Count > 0 ? Median(decodeRates) : 0;
            double gbs = dec * m.WeightBytesPerToken / 1e9;
            double? bandwidth = r.GetValue(roofline) ? Kernels.MemoryBandwidth.Measure(nt) : null;
            Speculative.CostModel? tn = null;
            if (r.GetValue(treeCosts))
            {
                var tnSession = m.CreateSession(new SessionOptions { Threads = nt, ContextLength = 64 });
                tn = Speculative.CostModel.Measure(tnSession, [1, 2, 3, 4, 5, 6, 7, 8, 10, 12, 14, 16, 20, 24, 28, 32, 40, 48, 56, 64], repeats: nr);
            }
            double? rooflineTokS = bandwidth * 1e9 / m.WeightBytesPerToken;
            var result = new
            {
                model = m.Source,
                threads = nt,
                isa = Kernels.MatMul.DescribeIsa(),
                prefill_tokens = np,
                decode_tokens = nd,
                runs = nr,
                prefill_tok_s = pre,
                decode_tok_s = dec,
                decode_gb_s = gbs,
                weight_bytes_per_token = m.WeightBytesPerToken,
                peak_rss_mb = rss,
                memory_gb_s = bandwidth,
                roofline_tok_s = rooflineTokS,
                roofline_fraction = rooflineTokS is double rt ? dec / rt : (double?)null,
                t_n = tn?.Sizes.Select((n, i) => new { n, seconds = tn.Seconds[i], ratio = tn.Seconds[i] / tn.Seconds[0] }).ToArray(),
                file_mb = File.Exists(m.Source) ? new FileInfo(m.Source).Length / 1048576.0 : 0,
                kv_type = session.Cache.Type.ToString().ToLowerInvariant(),
                kv_bytes_per_token = session.Cache.BytesPerToken,
                kv_cache_mb = session.Cache.Bytes / 1048576.0,
                kv_context = session.ContextLength,
            };
            if (asJson) { Cli.PrintJson(result); return 0; }
            var t = new Table().AddColumns("measure", "value").Border(TableBorder.Rounded);
            t.AddRow("settings", $"{nt} threads, prompt {np} random tokens, {nd} greedy decode steps, median of {nr} runs");
            t.AddRow("kernels (ISA)", Markup.Escape(result.isa));
            t.AddRow("prefill", $"{pre:F1} tok/s");
            t.AddRow("decode", $"{dec:F1} tok/s");
            t.AddRow("decode weight traffic", $"{gbs:F1} GB/s ({m.WeightBytesPerToken / 1e6:F1} MB of weights per token)");
            if (bandwidth is double bw)
                t.AddRow("memory roofline", $"{bw:F1} GB/s measured ({nt} threads x 4 streams) -> {rooflineTokS:F1} tok/s; decode reaches {dec / rooflineTokS:P0}");
            if (tn != null)
                t.AddRow("T(n)/T(1)", string.Join(", ", tn.Sizes.Select((n, i) => $"{n}: {tn.Seconds[i] / tn.Seconds[0]:F2}")));
            t.AddRow("KV cache", $"{result.kv_type}: {result.kv_bytes_per_token:N0} bytes per token; {result.kv_cache_mb:F1} MiB at {result.kv_context} positions (with the one-layer F32 scratch of f16/q8_0)");
            t.AddRow("peak RSS", $"{result.peak_rss_mb:F0} MiB (file {result.file_mb:F0} MiB)");
            AnsiConsole.Write(t);
            return 0;
        }));
        return cmd;
    }

    static double Median(List<double> xs)
    {
        var s = xs.Order().ToArray();
        return s.Length % 2 == 1 ? s[s.Length / 2] : (s[s.Length / 2 - 1] + s[s.Length / 2]) / 2;
    }
}
