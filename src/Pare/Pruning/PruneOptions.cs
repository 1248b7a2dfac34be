using System.Text.RegularExpressions;

namespace Pare.Pruning;

/// <summary>The published one-shot pruning methods Pare implements (one file each in this folder).</summary>
public enum PruneMethod
{
    /// <summary>|W|, one threshold per matrix (<see cref="Magnitude"/>).</summary>
    Magnitude,
    /// <summary>|W| x input norm, per output row (<see cref="Wanda"/>).</summary>
    Wanda,
    /// <summary>Second-order (OBS) pruning with weight updates (<see cref="SparseGpt"/>).</summary>
    SparseGpt,
    /// <summary>GBLM-Pruner: |W| x (input norm + LM-loss gradient l2 norm), per output row (<see cref="Gblm"/>).</summary>
    Gblm,
    /// <summary>The Optimal BERT Surgeon: block-wise OBS with the empirical Fisher of per-sample gradients (<see cref="OBert"/>; BERT encoders only).</summary>
    OBert,
}

/// <summary>A per-tensor exception to the global setting, chosen by a glob over GGUF tensor names ("blk.0.*", "*.ffn_down.weight").</summary>
/// <param name="Glob">'*' matches any run of characters, '?' one character; the whole name must match.</param>
/// <param name="Pattern">The pattern for matching tensors; null with <paramref name="Skip"/> = leave them dense.</param>
/// <param name="Skip">Leave matching tensors untouched.</param>
public sealed record LayerOverride(string Glob, SparsityPattern? Pattern, bool Skip = false)
{
    Regex? _regex;

    public bool Matches(string tensorName)
    {
        _regex ??= new Regex("^" + Regex.Escape(Glob).Replace(@"\*", ".*", StringComparison.Ordinal).Replace(@"\?", ".", StringComparison.Ordinal) + "$",
            RegexOptions.CultureInvariant);
        return _regex.IsMatch(tensorName);
    }

    /// <summary>Parses "GLOB=0.3", "GLOB=2:4" or "GLOB=skip".</summary>
    public static LayerOverride Parse(string spec)
    {
        int eq = spec.LastIndexOf('=');
        if (eq <= 0 || eq == spec.Length - 1) throw new PareException($"override '{spec}' must look like GLOB=0.3, GLOB=2:4 or GLOB=skip");
        string glob = spec[..eq], value = spec[(eq + 1)..].Trim();
        if (value.Equals("skip", StringComparison.OrdinalIgnoreCase) || value.Equals("dense", StringComparison.OrdinalIgnoreCase))
            return new LayerOverride(glob, null, Skip: true);
        if (value.Contains(':', StringComparison.Ordinal)) return new LayerOverride(glob, SparsityPattern.Parse(value, 0));
        if (!double.TryParse(value, System.Globalization.NumberStyles.Float, System.Globalization.CultureInfo.InvariantCulture, out double s))
            throw new PareException($"override '{spec}': '{value}' is not a sparsity, an N:M pattern or 'skip'");
        return new LayerOverride(glob, SparsityPattern.Unstructured(s));
    }
}

/// <summary>Settings of one pruning run. Defaults follow the SparseGPT/Wanda papers' protocol (see docs/pruning.md).</summary>
public sealed record PruneOptions
{
    public PruneMethod Method { get; init; } = PruneMethod.SparseGpt;
    /// <summary>Pattern applied to every prunable linear layer (q, k, v, o, gate, up, down of every block). Default 50% unstructured.</summary>
    public SparsityPattern Pattern { get; init; } = SparsityPattern.Unstructured(0.5);
    /// <summary>First match wins; tensors matching none use <see cref="Pattern"/>.</summary>
    public IReadOnlyList<LayerOverride> Overrides { get; init; } = [];
    /// <summary>Also prune the token embedding and output head (off by default, as in the papers).</summary>
    public bool PruneEmbeddings { get; init; }

    /// <summary>Calibration windows (sequences). 128 as in the papers. 0 = no calibration (magnitude only; no error report).</summary>
    public int Samples { get; init; } = 128;
    /// <summary>Tokens per calibration window; null = the model's context length (the papers' protocol).</summary>
    public int? SeqLen { get; init; }
    /// <summary>Seed of the calibration window draw.</summary>
    public int Seed { get; init; }

    /// <summary>SparseGPT: columns per lazy-update block (128 in the paper).</summary>
    public int BlockSize { get; init; } = 128;
    /// <summary>SparseGPT: damping added to the Hessian diagonal, as a fraction of its mean (0.01 in the paper).</summary>
    public double Damp { get; init; } = 0.01;
    /// <summary>GBLM: factor applied to the per-sample gradients before their l2 norm (100 in the reference code).</summary>
    public float GradScale { get; init; } = Gblm.DefaultGradScale;
    /// <summary>Calibration tokens kept per layer input to measure the reconstruction error ||WX - W'X||^2 / ||WX||^2.</summary>
    public int ErrorTokens { get; init; } = 256;
    /// <summary>
    /// Magnitude and Wanda: rows per group that keep the same columns (for the row-group compact format,
    /// <c>--repack --row-group</c>); 1 (default) = each weight or row on its own.
    /// </summary>
    public int RowGroup { get; init; } = 1;
    /// <summary>Worker threads for the kernels.</summary>
    public int Threads { get; init; } = Environment.ProcessorCount;

    /// <summary>The pattern for one tensor, or null to leave it dense.</summary>
    public SparsityPattern? PatternFor(string tensorName)
    {
        foreach (var o in Overrides)
            if (o.Matches(tensorName)) return o.Skip ? null : o.Pattern;
        return Pattern;
    }

    public void Validate()
    {
        if (Samples < 0) throw new PareException($"--samples must be 0 or more (got {Samples})");
        if (Samples == 0 && Method != PruneMethod.Magnitude) throw new PareException($"{Method} needs calibration samples (--samples >= 1)");
        if (SeqLen is < 2) throw new PareException($"--seqlen must be at least 2 (got {SeqLen})");
        if (BlockSize < 1) throw new PareException($"block size must be at least 1 (got {BlockSize})");
        if (!(Damp > 0 && Damp < 1)) throw new PareException($"damping must be in (0, 1) (got {Damp})");
        if (!(GradScale > 0) || float.IsInfinity(GradScale)) throw new PareException($"gradient scale must be positive (got {GradScale})");
        if (RowGroup < 1 || RowGroup > 64) throw new PareException($"--row-group must be in 1..64 (got {RowGroup})");
        if (RowGroup > 1 && Method is not (PruneMethod.Magnitude or PruneMethod.Wanda)) throw new PareException($"--row-group works with magnitude and wanda only (got {Method})");
        if (RowGroup > 1 && Pattern.IsNM) throw new PareException($"--row-group takes unstructured sparsity, not the {Pattern} pattern");
        if (Threads < 1) throw new PareException($"threads must be at least 1 (got {Threads})");
    }
}
