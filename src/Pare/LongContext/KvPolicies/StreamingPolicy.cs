using Pare.Models.Kv;

namespace Pare.LongContext.KvPolicies;

/// <summary>StreamingLLM settings (mit-han-lab/streaming-llm <c>StartRecentKVCache</c>).</summary>
public sealed record StreamingOptions
{
    /// <summary>Positions attended per query (sinks + window).</summary>
    public int Budget { get; init; } = 1024;
    /// <summary>Attention sinks: the first tokens, always kept (reference start_size = 4).</summary>
    public int Sinks { get; init; } = 4;
}

/// <summary>
/// <c>streaming</c> (StreamingLLM, attention sinks): the first <see cref="StreamingOptions.Sinks"/> positions plus the most
/// recent Budget − Sinks; the middle is skipped. Unlike the reference, keys stay rotated at their true positions (Pare's
/// cache holds post-RoPE keys), so positions are not re-numbered by cache slot; needles outside the window are unreachable.
/// </summary>
public sealed class StreamingPolicy(StreamingOptions options) : IKvPolicy
{
    readonly int _sinks = Math.Min(options.Sinks, options.Budget / 2);
    public string Name => "streaming";
    public int Budget => options.Budget;
    public int LocalWindow => options.Budget - _sinks;

    public int[][]? Select(int layer, int slot, ReadOnlySpan<float> query, int queryPosition, int prefix, in KvView kv)
    {
        if (queryPosition <= Budget) return null;
        return KvPolicy.Shared(kv.Heads, [.. KvPolicy.Range(0, _sinks), .. KvPolicy.Range(queryPosition - LocalWindow, queryPosition)]);
    }

    public void OnAppend(int layer, ReadOnlySpan<float> queries, int n, int pos0, in KvView kv) { }
    public void OnRewind(int position) { }
}
