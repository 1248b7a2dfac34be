namespace Pare.Pruning.Structured;

/// <summary>Structured methods: each removes whole attention heads (KV groups) and FFN channels, leaving a smaller dense model.</summary>
public enum StructuredMethod
{
    /// <summary>FLAP, adaptive structure (AL-AM): one global threshold over standardized scores, bias compensation (<see cref="Flap"/>).</summary>
    Flap,
    /// <summary>FLAP with the same ratio in every layer (UL-UM), bias compensation.</summary>
    FlapUniform,
    /// <summary>Structured Wanda (FLAP's baseline): |W| x input norm per channel, same ratio every layer, no compensation (<see cref="WandaSp"/>).</summary>
    WandaSp,
    /// <summary>Weight norm of each head group / channel, same ratio every layer, no calibration (<see cref="MagnitudeSp"/>).</summary>
    MagnitudeSp,
    /// <summary>CFSP: FFN channels only, budget per block by input/output angular distance, fine channel scores (<see cref="Cfsp"/>).</summary>
    Cfsp,
}

/// <summary>Settings of a structured pruning run (defaults: FLAP's reference code where it applies, see docs/structured-pruning.md).</summary>
public sealed record StructuredOptions
{
    public StructuredMethod Method { get; init; } = StructuredMethod.Flap;
    /// <summary>Fraction of the block parameters (q, k, v, o, gate, up, down) to remove, in [0, 1). Default 0.2.</summary>
    public double Ratio { get; init; } = 0.2;
    /// <summary>Calibration windows; 128 by default (FLAP's script: 1024 x 128 tokens on WikiText-2).</summary>
    public int Samples { get; init; } = 128;
    /// <summary>Tokens per calibration window; 128 as FLAP (capped at the model's context).</summary>
    public int SeqLen { get; init; } = 128;
    public int Seed { get; init; }
    public int Threads { get; init; } = Environment.ProcessorCount;

    /// <summary>Whether the method reads calibration activations (magnitude does not).</summary>
    public bool NeedsCalibration => Method != StructuredMethod.MagnitudeSp;
    /// <summary>Whether the pruned channels' mean contribution is folded into output biases (FLAP).</summary>
    public bool Compensates => Method is StructuredMethod.Flap or StructuredMethod.FlapUniform;
    /// <summary>Whether every layer keeps the same number of heads and channels (a plain llama file).</summary>
    public bool Uniform => Method is not (StructuredMethod.Flap or StructuredMethod.Cfsp);

    public string Name => Method switch
    {
        StructuredMethod.Flap => "flap",
        StructuredMethod.FlapUniform => "flap-uniform",
        StructuredMethod.WandaSp => "wanda-sp",
        StructuredMethod.Cfsp => "cfsp",
        _ => "magnitude-sp",
    };

    public static StructuredMethod Parse(string name) => name.ToLowerInvariant() switch
    {
        "flap" => StructuredMethod.Flap,
        "flap-uniform" => StructuredMethod.FlapUniform,
        "wanda-sp" => StructuredMethod.WandaSp,
        "magnitude-sp" => StructuredMethod.MagnitudeSp,
        "cfsp" => StructuredMethod.Cfsp,
        _ => throw new PareException($"unknown structured method '{name}' (flap, flap-uniform, wanda-sp, magnitude-sp, cfsp)"),
    };

    public void Validate()
    {
        if (!(Ratio >= 0 && Ratio < 1)) throw new PareException($"--ratio must be in [0, 1) (got {Ratio})");
        if (NeedsCalibration && Samples < 1) throw new PareException($"{Name} needs calibration samples (--samples >= 1)");
        if (Samples < 0) throw new PareException($"--samples must be 0 or more (got {Samples})");
        if (SeqLen < 2) throw new PareException($"--seqlen must be at least 2 (got {SeqLen})");
        if (Threads < 1) throw new PareException($"threads must be at least 1 (got {Threads})");
    }
}
