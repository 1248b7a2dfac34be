using System.Diagnostics;
using System.Globalization;
using Pare.Generation;
using Pare.Kernels;
using Pare.Models;

/// <summary>
/// Decode tok/s of one model with 1 and with 2 kernel threads, alternating rounds in one process (so both see the same
/// machine load), medians: 2 threads must not be slower than 1.
/// </summary>
static class ThreadScaling
{
    public static int Run(string[] args)
    {
        if (args.Length < 1 || !File.Exists(args[0]))
        {
            Console.Error.WriteLine("kernel-bench: error: threads needs an existing model file");
            return 1;
        }
        int rounds = 9, decode = 64;
        for (int i = 1; i + 1 < args.Length; i += 2)
        {
            if (args[i] == "--rounds") rounds = int.Parse(args[i + 1], CultureInfo.InvariantCulture);
            else if (args[i] == "--decode") decode = int.Parse(args[i + 1], CultureInfo.InvariantCulture);
            else { Console.Error.WriteLine($"kernel-bench: error: unknown option {args[i]}"); return 1; }
        }
        using var model = LlamaModel.Load(args[0]);
        var sessions = new[] { 1, 2 }.Select(t => model.CreateSession(new SessionOptions { Threads = t, ContextLength = decode + 16 })).ToArray();
        var prompt = Enumerable.Range(0, 8).Select(i => (i * 7919 + 13) % model.Config.VocabSize).ToArray();
        var tps = new List<double>[] { [], [] };
        double Once(InferenceSession s)
        {
            s.Reset();
            var logits = s.Forward(prompt);
            long t0 = Stopwatch.GetTimestamp();
            for (int i = 0; i < decode; i++) logits = s.Forward([Sampler.ArgMax(logits)]);
            return decode / Stopwatch.GetElapsedTime(t0).TotalSeconds;
        }
        Once(sessions[0]); Once(sessions[1]); // JIT, page-in
        for (int r = 0; r < rounds; r++)
            for (int k = 0; k < 2; k++)
            {
                int which = (r + k) % 2; // alternate which goes first
                tps[which].Add(Once(sessions[which]));
            }
        double m1 = Median(tps[0]), m2 = Median(tps[1]);
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"| {Path.GetFileName(args[0])} | {decode} | {m1:F1} | {m2:F1} | {m2 / m1:F2}x | {File.ReadAllText("/proc/loadavg").Split(' ')[0]} |"));
        return 0;
    }

    static double Median(List<double> v)
    {
        var s = v.Order().ToArray();
        return s.Length % 2 == 1 ? s[s.Length / 2] : (s[s.Length / 2 - 1] + s[s.Length / 2]) / 2;
    }
}
