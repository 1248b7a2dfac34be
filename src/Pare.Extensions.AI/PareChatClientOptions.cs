namespace Pare.Extensions.AI;

/// <summary>Settings of a <see cref="PareChatClient"/>; per-request sampling comes from <c>ChatOptions</c>.</summary>
public sealed record PareChatClientOptions
{
    /// <summary>Model id reported in responses; null = the file name without extension.</summary>
    public string? ModelId { get; init; }
    /// <summary>Speculative drafter (none, pld, recycle, lookahead, aded, auto); output is identical to plain decoding. Default auto.</summary>
    public string Draft { get; init; } = "auto";
    /// <summary>Largest draft tree per verification pass. Default 32.</summary>
    public int MaxTree { get; init; } = 32;
    /// <summary>KV cache length; null = the model's, at most 4096.</summary>
    public int? ContextLength { get; init; }
    /// <summary>Kernel threads. Default: all cores.</summary>
    public int Threads { get; init; } = Environment.ProcessorCount;
    /// <summary>Tokens generated when ChatOptions.MaxOutputTokens is not set (capped by the context). Default 256.</summary>
    public int DefaultMaxOutputTokens { get; init; } = 256;
}
