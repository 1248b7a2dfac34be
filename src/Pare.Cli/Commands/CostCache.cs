using System.Globalization;
using System.Runtime.CompilerServices;
using Pare.Models;
using Pare.Speculative;

namespace Pare.Cli.Commands;

/// <summary>
/// Forward-pass costs T(n) per model file and thread count, measured once and kept in the user's cache folder,
/// so that `pare run --draft auto` does not pay the measurement on every call. The file is one "n seconds" line per
/// size: reading it must cost next to nothing (System.Text.Json's first deserialization, compiled on the spot, took
/// longer than decoding 96 tokens of pare-ref).
/// </summary>
internal static class CostCache
{
    static readonly int[] Sizes = [1, 2, 4, 8, 16, 32, 64];

    /// <summary>Compiles <see cref="Get"/> and <see cref="Parse"/> (with <see cref="SpeculativeGenerator.Prepare"/>: off the path to the first token).</summary>
    public static void Prepare()
    {
        RuntimeHelpers.PrepareMethod(typeof(CostCache).GetMethod(nameof(Get))!.MethodHandle);
        RuntimeHelpers.PrepareMethod(typeof(CostCache).GetMethod(nameof(Parse), System.Reflection.BindingFlags.NonPublic | System.Reflection.BindingFlags.Static)!.MethodHandle);
    }

    public static CostModel Get(LlamaModel m, InferenceSession session)
    {
        string dir = Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.LocalApplicationData, Environment.SpecialFolderOption.Create), "pare", "costs");
        var fi = new FileInfo(m.Source);
        string key = $"{Path.GetFileName(m.Source)}-{(fi.Exists ? fi.Length : 0)}-{(fi.Exists ? fi.LastWriteTimeUtc.Ticks : 0)}-t{session.Threads}";
        string path = Path.Combine(dir, string.Concat(key.Select(c => char.IsLetterOrDigit(c) || c is '-' or '.' ? c : '_')) + ".txt");
        try
        {
            if (File.Exists(path) && Parse(File.ReadAllLines(path)) is { } saved) return saved;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException) { }
        var costs = CostModel.Measure(session, Sizes);
        try
        {
            Directory.CreateDirectory(dir);
            File.WriteAllLines(path, costs.Sizes.Select((n, i) => string.Create(CultureInfo.InvariantCulture, $"{n} {costs.Seconds[i]:R}")));
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException) { }
        return costs;
    }

    /// <summary>The cost model of "n seconds" lines (sizes from 1, increasing; seconds positive), or null when the file is not one.</summary>
    internal static CostModel? Parse(string[] lines)
    {
        var sizes = new List<int>();
        var secs = new List<double>();
        foreach (var l in lines)
        {
            var f = l.Split(' ', StringSplitOptions.RemoveEmptyEntries);
            if (f.Length != 2 || !int.TryParse(f[0], NumberStyles.None, CultureInfo.InvariantCulture, out int n)
                || !double.TryParse(f[1], NumberStyles.Float, CultureInfo.InvariantCulture, out double s) || !(s > 0) || double.IsInfinity(s)
                || (sizes.Count > 0 && n <= sizes[^1])) return null;
            sizes.Add(n); secs.Add(s);
        }
        return sizes.Count > 0 && sizes[0] == 1 ? new CostModel([.. sizes], [.. secs]) : null;
    }
}
