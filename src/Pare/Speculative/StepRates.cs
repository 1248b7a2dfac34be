using System.Diagnostics;

namespace Pare.Speculative;

/// <summary>
/// What speculation really costs: the measured wall time of speculative steps (drafting, the tree's forward pass,
/// acceptance walk, KV commit, drafter update) and of plain steps, kept as exponentially weighted running estimates of
/// tokens emitted per second. While plain steps are faster, <see cref="SpeculativeGenerator"/> decodes plainly and
/// probes speculation once every few plain steps, the gap doubling while it keeps losing, so it can come back when the
/// text turns repetitive. Timing steers only the choice of tree size, never the output (verification is lossless).
/// Share one instance across generations with the same session and drafter (as drafters are kept warm) so the
/// estimates need not be relearnt for every prompt; not thread-safe.
/// </summary>
public sealed class StepRates(SpeculativeOptions spec)
{
    static readonly double TickSeconds = 1.0 / Stopwatch.Frequency;

    readonly Func<double> _clock = spec.Clock ?? (() => Stopwatch.GetTimestamp() * TickSeconds);
    // Running means: tokens and seconds per speculative step (the rate is their ratio), seconds per plain step.
    double _specTokens, _specSeconds, _plainSeconds;
    bool _specSeen, _plainSeen;
    int _plainSinceProbe, _specSincePlain, _probeGap;

    /// <summary>Measured tokens per second of speculative steps (NaN before the first).</summary>
    public double SpeculativeRate => _specSeen ? _specTokens / _specSeconds : double.NaN;
    /// <summary>Measured tokens per second of plain steps (NaN before the first).</summary>
    public double PlainRate => _plainSeen ? 1 / _plainSeconds : double.NaN;

    /// <summary>Both rates are known and speculation beats plain decoding by at least <see cref="SpeculativeOptions.MinGain"/>.</summary>
    bool Winning => _specTokens > _specSeconds * spec.MinGain / _plainSeconds;

    internal double Now() => _clock();

    /// <summary>The tree sizer of the last generation that used these rates (carried over when it fits).</summary>
    internal TreeSizer? Sizer { get; set; }

    /// <summary>
    /// Whether the next step should speculate (the sizer asked for a tree); advances the probe schedule. A probe that is
    /// due while <paramref name="mayProbe"/> is false waits (plain steps) until it is true.
    /// </summary>
    internal bool Speculate(bool mayProbe = true)
    {
        Probe = false;
        if (!_plainSeen) return false;           // price plain decoding first
        if (!_specSeen) return Probe = mayProbe;
        if (Winning)
        {
            // Re-time a plain step now and then so the comparison follows the machine's load.
            if (++_specSincePlain < spec.MaxProbeInterval) return true;
            _specSincePlain = 0;
            return false;
        }
        if (++_plainSinceProbe < Math.Max(1, _probeGap) || !mayProbe) return false;
        _plainSinceProbe = 0;
        return Probe = true;
    }

    /// <summary>Whether the last <see cref="Speculate"/> that said yes was a probe (speculation not measured faster yet).</summary>
    internal bool Probe { get; private set; }

    /// <summary>Records one step: <paramref name="speculative"/> when a tree was drafted, the tokens it emitted and its wall time.</summary>
    internal void Observe(bool speculative, int tokens, double seconds)
    {
        seconds = Math.Max(seconds, 1e-9);
        double keep = spec.RateSmoothing;
        if (!speculative)
        {
            _plainSeconds = _plainSeen ? keep * _plainSeconds + (1 - keep) * seconds : seconds;
            _plainSeen = true;
            return;
        }
        _specTokens = _specSeen ? keep * _specTokens + (1 - keep) * tokens : tokens;
        _specSeconds = _specSeen ? keep * _specSeconds + (1 - keep) * seconds : seconds;
        _specSeen = true;
        if (!_plainSeen || Winning) _probeGap = 0;
        // A probe that beat plain decoding by itself is followed at once by another, so the estimate can catch up.
        else if (tokens > seconds * spec.MinGain / _plainSeconds) _probeGap = 1;
        else _probeGap = _probeGap < spec.ProbeInterval ? spec.ProbeInterval : Math.Min(2 * _probeGap, spec.MaxProbeInterval);
    }
}
