using System.Text.Json;
using Pare.Models;
using Pare.Speculative;

namespace Pare.Cli.Commands;

/// <summary>
/// Forward-pass costs T(n) per model file and thread count, measured once and kept in the user's cache folder,
/// so that `pare run --draft auto` does not pay the measurement on every call.
/// </summary>
internal static class CostCache
{
    static readonly int[] Sizes = [1, 2, 4, 8, 16, 32, 64];

    public static CostModel Get(LlamaModel m, InferenceSession session)
    {
        string dir = Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.LocalApplicationData, Environment.SpecialFolderOption.Create), "pare", "costs");
        var fi = new FileInfo(m.Source);
        string key = $"{Path.GetFileName(m.Source)}-{(fi.Exists ? fi.Length : 0)}-{(fi.Exists ? fi.LastWriteTimeUtc.Ticks : 0)}-t{session.Threads}";
        string path = Path.Combine(dir, string.Concat(key.Select(c => char.IsLetterOrDigit(c) || c is '-' or '.' ? c : '_')) + ".json");
        try
        {
            if (File.Exists(path))
            {
                var saved = JsonSerializer.Deserialize<Saved>(File.ReadAllText(path));
                if (saved is { Sizes.Length: > 0 } && saved.Sizes.Length == saved.Seconds.Length) return new CostModel(saved.Sizes, saved.Seconds);
            }
        }
        catch (Exception e) when (e is IOException or JsonException or ArgumentException or UnauthorizedAccessException) { }
        var costs = CostModel.Measure(session, Sizes);
        try
        {
            Directory.CreateDirectory(dir);
            File.WriteAllText(path, JsonSerializer.Serialize(new Saved([.. costs.Sizes], [.. costs.Seconds])));
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException) { }
        return costs;
    }

    sealed record Saved(int[] Sizes, double[] Seconds);
}
