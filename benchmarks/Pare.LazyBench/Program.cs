// LazyLLM's prefill against the full prefill, side by side in one process, on random prompt tokens:
//   dotnet run -c Release --project benchmarks/Pare.LazyBench -- MODEL [--lengths 488,2024] [--threads 1,2] [--reps 7]
//       [--settings "1@0.625;0.2@0.625;0.7@0.625,0.75,0.875"]
// A setting is keep@prune-at (one keep, or one per pruning layer: "0.9,0.5,0.2@0.625,0.75,0.875"); keep 1 runs the
// layer-at-a-time path without pruning, i.e. the pruned prefill's own overhead over InferenceSession.Forward. Each rep runs
// the full prefill and every setting, the order rotating per rep; the first rep warms up. Prints a markdown row per
// (length, threads, setting): median process CPU time (all threads: less sensitive to a loaded machine than wall time)
// and wall time of the setting and of the full prefill, the median of the per-rep ratios (CPU and wall), and the ideal
// speed-up from multiply-adds (projections and FFN per token plus causal attention, as benchmarks/lazyllm-ttft.sh).
// A setting may end in @flags, comma-separated: max (max over heads), wN (observation window of N), wmax (max over the
// window), poolK (max-pool over K neighbours), same (score a pruning layer by its own attention), e.g. "0.2@0.5@w8,wmax,pool5".
//   ... -- MODEL --probe passkey|single [--lengths 2024] [--depths 0,0.5,1] [--trials 5]
// instead prints, per layer, where the full prefill's attention ranks the needle's value tokens (the best-ranked of them, as
// a percentile of the prompt: 0% = the most attended token) under three importances: the last token's attention, mean
// over heads (the paper's); max over heads; the last 10 tokens' (the question's), max over them and over heads; and the
// last token's attention mass on the needle line (max over heads). Medians over the haystacks: at which layer the
// question finds the needle, i.e. which layer's importance can keep it.
//   ... -- MODEL --recall passkey|single [--lengths 2024] [--depths 0,0.5,1] [--trials 5] [--settings S]
// instead prints, per setting and depth, the share of the needle's tokens (from its start to the end of the answer value)
// that the pruned prefill still computes at the last layer (what the first answer token can read), on pare needle's
// haystacks (seed 1): a cheap look at which importance signal finds the needle, before running the accuracy.
using System.Diagnostics;
using System.Globalization;
using Pare;
using Pare.LongContext;
using Pare.Models;

try
{
    if (args.Length < 1) throw new PareException("usage: Pare.LazyBench MODEL [--lengths 488,2024] [--threads 1,2] [--reps 7] [--settings S]");
    int[] lengths = [488, 2024], threadCounts = [1, 2];
    int reps = 7;
    string settingsText = "1@0.625;0.2@0.625;0.7@0.625,0.75,0.875";
    string? recall = null, probe = null;
    double[] depths = [0, 0.5, 1];
    int trials = 5;
    for (int i = 1; i < args.Length; i++)
    {
        string Next() => i + 1 < args.Length ? args[++i] : throw new PareException($"{args[i]} needs a value");
        switch (args[i])
        {
            case "--lengths": lengths = Ints(Next()); break;
            case "--threads": threadCounts = Ints(Next()); break;
            case "--reps": reps = int.Parse(Next(), CultureInfo.InvariantCulture); break;
            case "--settings": settingsText = Next(); break;
            case "--recall": recall = Next(); break;
            case "--probe": probe = Next(); break;
            case "--depths": depths = [.. Next().Split(',').Select(x => double.Parse(x, CultureInfo.InvariantCulture))]; break;
            case "--trials": trials = int.Parse(Next(), CultureInfo.InvariantCulture); break;
            default: throw new PareException($"unknown option {args[i]}");
        }
    }
    if (reps < 1) throw new PareException($"--reps must be at least 1 (got {reps})");
    var settings = settingsText.Split(';', StringSplitOptions.RemoveEmptyEntries).Select(Setting).ToArray();
    using var model = LlamaModel.Load(args[0]);
    var c = model.Config;
    foreach (int n in lengths)
        if (n < 2 || n > c.ContextLength) throw new PareException($"--lengths: {n} is outside 2 .. {c.ContextLength}");
    if (recall != null) return Recall(model, recall, lengths, depths, trials, settings);
    if (probe != null) return Probe(model, probe, lengths, depths, trials);
    Console.WriteLine($"{DateTime.UtcNow:yyyy-MM-ddTHH:mm}Z, load {File.ReadAllText("/proc/loadavg").Split(' ')[0]}, {args[0]}, {reps} reps");
    Console.WriteLine("| tokens | threads | setting | ideal (multiply-adds) | CPU ms, pruned vs full | wall ms, pruned vs full | speed-up CPU / wall |");
    Console.WriteLine("|---|---|---|---|---|---|---|");
    foreach (int n in lengths)
        foreach (int threads in threadCounts)
        {
            var session = model.CreateSession(new SessionOptions { ContextLength = n, Threads = threads });
            var rng = new Random(1);
            int[] prompt = [.. Enumerable.Range(0, n).Select(_ => rng.Next(c.VocabSize))];
            int runs = settings.Length + 1;   // run 0 = full prefill
            var cpu = new List<double>[runs];
            var wall = new List<double>[runs];
            for (int r = 0; r < runs; r++) { cpu[r] = []; wall[r] = []; }
            for (int rep = 0; rep <= reps; rep++)
                for (int j = 0; j < runs; j++)
                {
                    int run = (j + rep) % runs;
                    session.Reset();
                    double cpu0 = Process.GetCurrentProcess().TotalProcessorTime.TotalMilliseconds;
                    var sw = Stopwatch.StartNew();
                    if (run == 0) session.Forward(prompt);
                    else LazyLlm.Prefill(session, prompt, settings[run - 1].Options);
                    double w = sw.Elapsed.TotalMilliseconds, t = Process.GetCurrentProcess().TotalProcessorTime.TotalMilliseconds - cpu0;
                    if (rep == 0) continue;   // warm-up
                    cpu[run].Add(t);
                    wall[run].Add(w);
                }
            for (int s = 0; s < settings.Length; s++)
            {
                double sc = Median(cpu[0].Zip(cpu[s + 1], (f, p) => f / p)), swr = Median(wall[0].Zip(wall[s + 1], (f, p) => f / p));
                Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                    $"| {n} | {threads} | {settings[s].Label} | {1 / IdealWork(c, settings[s].Options, n):F2}x | {Median(cpu[s + 1]):F1} vs {Median(cpu[0]):F1} | {Median(wall[s + 1]):F1} vs {Median(wall[0]):F1} | {sc:F2}x / {swr:F2}x |"));
            }
        }
    return 0;
}
catch (Exception e) when (e is PareException or FormatException or IOException)
{
    Console.Error.WriteLine(e.Message);
    return 1;
}

static int[] Ints(string s) => [.. s.Split(',').Select(x => int.Parse(x, CultureInfo.InvariantCulture))];

static double Median(IEnumerable<double> xs)
{
    var a = xs.Order().ToArray();
    return a.Length % 2 == 1 ? a[a.Length / 2] : (a[a.Length / 2 - 1] + a[a.Length / 2]) / 2;
}

static (string Label, LazyLlmOptions Options) Setting(string s)
{
    var parts = s.Split('@');
    double[] D(string x) => [.. x.Split(',').Select(v => double.Parse(v, CultureInfo.InvariantCulture))];
    if (parts.Length is not (2 or 3)) throw new PareException($"--settings: '{s}' is not keep@prune-at[@flags]");
    var keep = D(parts[0]);
    var at = D(parts[1]);
    var o = new LazyLlmOptions { PruneAt = at, KeepAt = keep.Length == 1 ? null : keep, Keep = keep[0] };
    foreach (var f in parts.Length == 3 ? parts[2].Split(',') : [])
        o = f switch
        {
            "max" => o with { MaxOverHeads = true },
            "wmax" => o with { MaxOverWindow = true },
            "same" => o with { SameLayer = true },
            _ when f.StartsWith('w') => o with { Window = int.Parse(f[1..], CultureInfo.InvariantCulture) },
            _ when f.StartsWith("pool") => o with { Pool = int.Parse(f[4..], CultureInfo.InvariantCulture) },
            _ => throw new PareException($"--settings: unknown flag '{f}' (max, wN, wmax, poolK, same)"),
        };
    _ = o.Schedule(8);
    return ($"keep {parts[0]} at {parts[1]}{(parts.Length == 3 ? " " + parts[2] : "")}", o);
}

// pare needle's haystacks (seed 1) for a task, per depth.
static (TokenText Text, NeedleSample[][] Samples) Haystacks(LlamaModel model, string taskName, int n, double[] depths, int trials)
{
    var task = NeedleTasks.Parse(taskName);
    var tok = model.Tokenizer ?? throw new PareException("the model has no tokenizer");
    var text = new TokenText(tok);
    const string fillerPath = ".cache/data/corpus/test.txt";
    if (!File.Exists(fillerPath)) throw new PareException($"filler text not found: {fillerPath}");
    var filler = new Filler(tok is Pare.Tokenizers.Gpt2BpeTokenizer g ? Pare.Data.TokenizerFiles.EncodeFileCached(g, fillerPath)
        : tok.Encode(File.ReadAllText(fillerPath), addSpecial: false), text);
    var o = new NeedleOptions { Task = task, Lengths = [n], Depths = depths, Trials = trials };
    return (text, depths.Select(d => Enumerable.Range(0, trials).Select(t => NeedleHarness.Sample(o, text, filler, n, d, t)).ToArray()).ToArray());
}

// The needle line (its start up to the end of the first gold value) and its value tokens (the shortest tail of it that
// still decodes to the gold value).
static (int Start, int ValueStart, int End) NeedleSpan(TokenText text, NeedleSample smp)
{
    int start = smp.NeedlePositions[0], end = start;
    while (end < smp.Prompt.Length && !text.Decode(smp.Prompt.AsSpan(start, end - start + 1)).Contains(smp.Gold[0])) end++;
    int vs = end;
    while (vs > start && !text.Decode(smp.Prompt.AsSpan(vs, end - vs + 1)).Contains(smp.Gold[0])) vs--;
    return (start, vs, end);
}

static int Probe(LlamaModel model, string taskName, int[] lengths, double[] depths, int trials)
{
    const int window = 10;
    var c = model.Config;
    Console.WriteLine($"{DateTime.UtcNow:yyyy-MM-ddTHH:mm}Z, load {File.ReadAllText("/proc/loadavg").Split(' ')[0]}, {model.Source}, {taskName}, {trials} trials per depth");
    Console.WriteLine("| length | depth | layer | rank of the value, last token mean over heads | max over heads | question (last 10) max, heads max | needle line's attention mass, last token, best head |");
    Console.WriteLine("|---|---|---|---|---|---|---|");
    foreach (int n in lengths)
    {
        var session = model.CreateSession(new SessionOptions { ContextLength = n, Threads = 1 });
        var (text, samples) = Haystacks(model, taskName, n, depths, trials);
        for (int di = 0; di < depths.Length; di++)
        {
            var rows = new List<double[]>[c.Layers];
            for (int l = 0; l < c.Layers; l++) rows[l] = [];
            foreach (var smp in samples[di])
            {
                var (start, vs, end) = NeedleSpan(text, smp);
                var att = LazyLlmProbe.Attention(session, smp.Prompt, window);
                int np = smp.Prompt.Length, cand = np - window;   // the window is always kept: rank among the others
                for (int l = 0; l < c.Layers; l++)
                {
                    int heads = c.HeadsAt(l);
                    float At(int h, int w, int i) => att[l][(h * window + w) * np + i];
                    var mean = new float[cand];
                    var hmax = new float[cand];
                    var qmax = new float[cand];
                    double mass = 0;
                    for (int h = 0; h < heads; h++)
                    {
                        double m = 0;
                        for (int i = start; i <= end; i++) m += At(h, window - 1, i);
                        mass = Math.Max(mass, m);
                        for (int i = 0; i < cand; i++)
                        {
                            float last = At(h, window - 1, i);
                            mean[i] += last / heads;
                            hmax[i] = Math.Max(hmax[i], last);
                            for (int w = 0; w < window; w++) qmax[i] = Math.Max(qmax[i], At(h, w, i));
                        }
                    }
                    double Rank(float[] s)
                    {
                        if (vs >= cand) return 0;   // the value is inside the window, always kept
                        float best = float.NegativeInfinity;
                        for (int i = vs; i <= Math.Min(end, cand - 1); i++) best = Math.Max(best, s[i]);
                        return s.Count(x => x > best) / (double)cand;
                    }
                    rows[l].Add([Rank(mean), Rank(hmax), Rank(qmax), mass]);
                }
            }
            for (int l = 0; l < c.Layers; l++)
                Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                    $"| {n} | {depths[di]} | {l} | {100 * Median(rows[l].Select(r => r[0])):F0}% | {100 * Median(rows[l].Select(r => r[1])):F0}% | {100 * Median(rows[l].Select(r => r[2])):F0}% | {Median(rows[l].Select(r => r[3])):F3} |"));
        }
    }
    return 0;
}

// Share of each needle's tokens (its start up to the end of the first gold value) still computed at the last layer.
static int Recall(LlamaModel model, string taskName, int[] lengths, double[] depths, int trials, (string Label, LazyLlmOptions Options)[] settings)
{
    var session = model.CreateSession(new SessionOptions { ContextLength = lengths.Max(), Threads = 1 });
    Console.WriteLine($"{DateTime.UtcNow:yyyy-MM-ddTHH:mm}Z, load {File.ReadAllText("/proc/loadavg").Split(' ')[0]}, {model.Source}, {taskName}, {trials} trials per depth");
    Console.WriteLine($"| length | setting | {string.Join(" | ", depths.Select(d => $"depth {d}"))} | all |");
    Console.WriteLine($"|---|---|{string.Concat(depths.Select(_ => "---|"))}---|");
    foreach (int n in lengths)
    {
        var (text, samples) = Haystacks(model, taskName, n, depths, trials);
        foreach (var (label, opt) in settings)
        {
            var shares = samples.Select(ds => ds.Average(smp =>
            {
                var (start, _, end) = NeedleSpan(text, smp);
                var lp = LazyLlm.Prefill(session, smp.Prompt, opt);
                int layers = model.Config.Layers;
                return Enumerable.Range(start, end - start + 1).Count(p => lp.DeferredAt[p] == layers) / (double)(end - start + 1);
            })).ToArray();
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"| {n} | {label} | {string.Join(" | ", shares.Select(x => $"{100 * x:F0}%"))} | {100 * shares.Average():F0}% |"));
        }
    }
    return 0;
}

// Share of the full prefill's multiply-adds the pruned prefill does: per layer, tokens x (projections + SwiGLU) plus
// causal attention (QK and AV: heads x head_dim x t(t+1)); the tokens a layer computes follow the schedule (ceil); with
// same-layer scoring, plus the pruning layer's keys of every remaining token and the window's queries and scores.
static double IdealWork(LlamaConfig c, LazyLlmOptions o, int n)
{
    var schedule = o.Schedule(c.Layers);
    double Cost(int l, double t) => t * ((double)c.Dim * (c.HeadsAt(l) + 2 * c.KvHeadsAt(l)) * c.HeadDim + (double)c.HeadsAt(l) * c.HeadDim * c.Dim
        + 3.0 * c.Dim * c.FfnAt(l)) + (double)c.HeadsAt(l) * c.HeadDim * t * (t + 1);
    double pruned = 0, full = 0;
    int kept = n;
    for (int l = 0; l < c.Layers; l++)
    {
        if (schedule.TryGetValue(l, out double k) && k < 1 && kept > o.Window)
        {
            // Same-layer scoring: the layer's keys of every remaining token, the window's queries and their scores.
            if (o.SameLayer) pruned += (double)kept * c.Dim * c.KvHeadsAt(l) * c.HeadDim + o.Window * (double)c.HeadsAt(l) * c.HeadDim * (c.Dim + kept);
            kept = Math.Max(o.Window, (int)Math.Ceiling(kept * k));
        }
        pruned += Cost(l, kept);
        full += Cost(l, n);
    }
    return pruned / full;
}
