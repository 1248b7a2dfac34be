namespace Pare.Generation;

/// <summary>How the next token is chosen from the logits. Defaults follow llama.cpp's command line.</summary>
public sealed record SamplingOptions
{
    /// <summary>Softmax temperature; 0 or less means greedy (argmax). Default 0.8.</summary>
    public float Temperature { get; init; } = 0.8f;
    /// <summary>Keep only the k most likely tokens; 0 disables. Default 40.</summary>
    public int TopK { get; init; } = 40;
    /// <summary>Keep the smallest set of tokens whose probability sums to at least p; 1 disables. Default 0.95.</summary>
    public float TopP { get; init; } = 0.95f;
    /// <summary>Drop tokens less likely than min-p times the most likely one; 0 disables. Default 0.05.</summary>
    public float MinP { get; init; } = 0.05f;
    /// <summary>Divide positive (multiply negative) logits of recently seen tokens by this; 1 disables. Default 1.0.</summary>
    public float RepetitionPenalty { get; init; } = 1.0f;
    /// <summary>How many recent tokens the repetition penalty looks at. Default 64.</summary>
    public int RepetitionWindow { get; init; } = 64;
    /// <summary>Random seed; the same seed, model and options give the same text. Default 0.</summary>
    public ulong Seed { get; init; }
    /// <summary>Tokens never to produce (their logits are set to -infinity before anything else). Default none.</summary>
    public IReadOnlyCollection<int> BannedTokens { get; init; } = [];

    public static SamplingOptions Greedy { get; } = new() { Temperature = 0 };

    public void Validate()
    {
        if (!float.IsFinite(Temperature)) throw new PareException($"temperature must be a number (got {Temperature})");
        if (TopK < 0) throw new PareException($"top-k must be 0 or more (got {TopK})");
        if (!(TopP is > 0 and <= 1)) throw new PareException($"top-p must be in (0, 1] (got {TopP})");
        if (!(MinP is >= 0 and < 1)) throw new PareException($"min-p must be in [0, 1) (got {MinP})");
        if (!(RepetitionPenalty > 0) || !float.IsFinite(RepetitionPenalty)) throw new PareException($"repetition penalty must be positive (got {RepetitionPenalty})");
        if (RepetitionWindow < 0) throw new PareException($"repetition window must be 0 or more (got {RepetitionWindow})");
    }
}

/// <summary>What to generate and when to stop.</summary>
public sealed record GenerationOptions
{
    /// <summary>Tokens to generate at most. Default 128.</summary>
    public int MaxTokens { get; init; } = 128;
    public SamplingOptions Sampling { get; init; } = new();
    /// <summary>Stop when the output contains one of these; the stop text itself is not returned.</summary>
    public IReadOnlyList<string> StopSequences { get; init; } = [];
    /// <summary>Stop at the model's end-of-sequence token. Default true.</summary>
    public bool StopAtEos { get; init; } = true;
}
