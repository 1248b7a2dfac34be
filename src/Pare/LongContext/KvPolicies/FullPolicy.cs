using Pare.Models.Kv;

namespace Pare.LongContext.KvPolicies;

/// <summary><c>full</c>: every head reads the whole cache (the engine's dense kernel; the baseline of every table).</summary>
public sealed class FullPolicy : IKvPolicy
{
    public string Name => "full";
    public int Budget => int.MaxValue;
    public int LocalWindow => int.MaxValue;
    public int[][]? Select(int layer, int slot, ReadOnlySpan<float> query, int queryPosition, int prefix, in KvView kv) => null;
    public void OnAppend(int layer, ReadOnlySpan<float> queries, int n, int pos0, in KvView kv) { }
    public void OnRewind(int position) { }
}
