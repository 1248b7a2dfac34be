using Pare.Generation;

namespace Pare.Server;

/// <summary>A validated /v1/chat/completions or /v1/completions request.</summary>
internal sealed record CompletionRequest
{
    public bool Chat { get; init; }
    public string? Model { get; init; }
    public IReadOnlyList<ChatTurn> Messages { get; init; } = [];
    public string Prompt { get; init; } = "";
    public bool Stream { get; init; }
    public bool IncludeUsage { get; init; }
    /// <summary>Requested completion length; null = the server's default; capped by the context either way.</summary>
    public int? MaxTokens { get; init; }
    public IReadOnlyList<string> Stop { get; init; } = [];
    public float? Temperature { get; init; }
    public float? TopP { get; init; }
    public int? TopK { get; init; }
    public float? MinP { get; init; }
    public float? RepeatPenalty { get; init; }
    public ulong? Seed { get; init; }

    /// <summary>Sampling options from the request; unset fields keep Pare's (llama.cpp's) defaults.</summary>
    public SamplingOptions Sampling()
    {
        var d = new SamplingOptions();
        return new SamplingOptions
        {
            Temperature = Temperature ?? d.Temperature,
            TopK = TopK ?? d.TopK,
            TopP = TopP ?? d.TopP,
            MinP = MinP ?? d.MinP,
            RepetitionPenalty = RepeatPenalty ?? d.RepetitionPenalty,
            Seed = Seed ?? (ulong)Random.Shared.NextInt64(),
        };
    }
}
