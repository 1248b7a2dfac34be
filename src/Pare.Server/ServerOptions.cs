namespace Pare.Server;

/// <summary>Settings of <c>pare serve</c>. Defaults are safe for a local machine.</summary>
public sealed record ServerOptions
{
    /// <summary>Address to bind. Default 127.0.0.1 (loopback only); anything else exposes the server to the network.</summary>
    public string Host { get; init; } = "127.0.0.1";
    /// <summary>TCP port; 0 picks a free one (printed at start). Default 8080.</summary>
    public int Port { get; init; } = 8080;
    /// <summary>Speculative drafter for every request (none, pld, recycle, lookahead, aded, auto). Default auto.</summary>
    public string Draft { get; init; } = "auto";
    /// <summary>Largest draft tree verified per pass. Default 32 (as <c>pare run</c>).</summary>
    public int MaxTree { get; init; } = 32;
    /// <summary>Requests generating at the same time (session slots). Default 1.</summary>
    public int Parallel { get; init; } = 1;
    /// <summary>Requests waiting for a slot before new ones are refused with 503. Default 16.</summary>
    public int QueueLength { get; init; } = 16;
    /// <summary>When set, every /v1 endpoint requires <c>Authorization: Bearer KEY</c>. Default none.</summary>
    public string? ApiKey { get; init; }
    /// <summary>KV cache length per slot; null = the model's, at most 4096.</summary>
    public int? ContextLength { get; init; }
    /// <summary>Kernel threads per slot. Default: all cores.</summary>
    public int Threads { get; init; } = Environment.ProcessorCount;
    /// <summary>KV cache value type (default F32, exact).</summary>
    public Pare.Kernels.KvValueType KvType { get; init; } = Pare.Kernels.KvValueType.F32;
    /// <summary>Largest request body in bytes; larger ones get 413. Default 1 MiB.</summary>
    public long MaxRequestBytes { get; init; } = 1 << 20;
    /// <summary>Tokens generated when a request gives no max_tokens (still capped by the context). Default 256.</summary>
    public int DefaultMaxTokens { get; init; } = 256;

    public void Validate()
    {
        if (Port is < 0 or > 65535) throw new PareException($"port must be in 0..65535 (got {Port})");
        if (Parallel < 1) throw new PareException($"parallel must be at least 1 (got {Parallel})");
        if (QueueLength < 0) throw new PareException($"queue length must be 0 or more (got {QueueLength})");
        if (Threads < 1) throw new PareException($"threads must be at least 1 (got {Threads})");
        if (ContextLength is < 2) throw new PareException($"ctx must be at least 2 (got {ContextLength})");
        if (MaxTree < 1) throw new PareException($"max tree must be at least 1 (got {MaxTree})");
        if (ApiKey is { Length: 0 }) throw new PareException("the API key is empty");
        if (!Speculative.Drafters.Names.Contains(Draft)) throw new PareException($"unknown drafter '{Draft}' (choose one of: {string.Join(", ", Speculative.Drafters.Names)})");
    }
}
