using System.Diagnostics;

namespace Pare.Speculative;

/// <summary>
/// What speculation really costs: the measured wall time of speculative steps (drafting, the tree's forward pass,
/// acceptance walk, KV commit, drafter update) and of plain steps, kept as exponentially weighted running estimates of
/// tokens emitted per second. While plain steps are faster, <see cref="SpeculativeGenerator"/> decodes plainly and
/// probes speculation once every few plain steps, the gap doubling while it keeps losing, so it can come back when the
/// text turns repetitive. Timing steers only the choice of tree size, never the output (verification is lossless).
/// With several drafters (arms of a <see cref="DrafterChoice"/>), each arm has its own estimate and tree sizer: steps
/// draft with the arm measured fastest (arm 0, the default, unless another beats it by <see cref="SpeculativeOptions.MinGain"/>),
/// an arm not measured yet is tried first (once the default arm's estimate has settled: <see cref="SettleSteps"/>), and every other arm is re-measured now and then (after
/// <see cref="SpeculativeOptions.ProbeInterval"/> drafted steps, the gap growing x4 up to 4 x
/// <see cref="SpeculativeOptions.MaxProbeInterval"/> while it keeps losing to the best, or longer where a re-measure
/// loses much (a draft model's passes: all losing re-measures together cost at most ~1% of the drafted time), halved when
/// it wins; arm 0's at most MaxProbeInterval / 4), so the choice follows the text; an arm takes over from arm 0 only after
/// two winning steps in a row. An arm with a costly first trial (a draft model's) waits for it until the time observed
/// makes that cost its part of the same exploration budget (<see cref="SetTrialCosts"/>), and while the tokens of its
/// probe could not beat the best arm's measured rate in that time (<see cref="Hopeless"/>).
/// Share one instance across generations with the same session and drafter (as drafters are kept warm) so the
/// estimates need not be relearnt for every prompt; not thread-safe.
/// </summary>
public sealed class StepRates(SpeculativeOptions spec)
{
    // A losing arm is re-measured after at most this many times MaxProbeInterval drafted steps.
    const int MaxRemeasureFactor = 4;
    // The default arm (0) is re-measured after at most MaxProbeInterval / this many drafted steps.
    const int DefaultRemeasureDivisor = 4;
    // The losing arms' re-measures together may cost at most this share of the drafted time (each arm its part of it).
    const double RemeasureShare = 0.01;
    // ... a costly arm's up to this many times MaxProbeInterval drafted steps apart (one draft-model re-measure per ~4,000
    // steps: at 16 x, ~1,000, the two model arms' re-measures and first trials were ~3-5% of a bench-spec lane's time).
    const int CostlyRemeasureFactor = 64;
    // An arm other than the default becomes the best only after this many measured steps in a row beat the bar (the
    // default's rate x MinGain, or the best other arm's): one lucky step (a long accepted run under a noisy clock) no
    // longer hands it the steps. A winning re-measure is followed at once by another (ChooseArm).
    const int ConfirmSteps = 2;
    // The other arms are first tried only after the default arm (0) has had this many turns (measured steps, steps it had
    // nothing to draft, plain steps while it measured slower than plain decoding): a first trial is weighed against the
    // default's running rate, which after one or two steps is one or two steps' luck. In session 15's traces (prose, the
    // first category of bench-spec, where every lane starts fresh) the Lookahead trie's first trial came right after the
    // default's first measured step, beat it with 2 tokens at 2 nodes and drafted 8 of the next 11 steps (six of them
    // 1-2 tokens) before the default took them back.
    internal const int SettleSteps = 8;

    // The test hook, or null: then Now reads the Stopwatch directly (no delegate and no lambda of its own to compile
    // and tier up while decoding: every step reads the clock two to four times).
    readonly Func<double>? _clock = spec.Clock;
    // Per arm, running means of tokens and seconds per speculative step (the rate is their ratio); seconds per plain step.
    double[] _specTokens = new double[1], _specSeconds = new double[1];
    bool[] _specSeen = new bool[1];
    // Per arm: drafted steps since it last drafted, and the gap after which it is re-measured.
    int[] _since = new int[1], _gap = new int[1];
    // Per arm: its measured steps in a row that beat the bar (ConfirmSteps).
    int[] _streak = new int[1];
    // Per arm: the estimated cost of its first trial beyond a plain step (0 = none: tried at once; SetTrialCosts), and the
    // seconds of all steps observed so far (the time a first trial's cost is weighed against).
    double[] _trialSeconds = new double[1];
    // The most tokens a first trial can emit (SetTrialCosts).
    int _trialTokens = int.MaxValue;
    double _observedSeconds;
    // The default arm's turns so far (SettleSteps).
    int _defaultTurns;
    double _plainSeconds;
    bool _plainSeen;
    int _plainSinceProbe, _specSincePlain, _probeGap, _arm;
    // The best measured arm as of the last speculative step (-1: none yet).
    int _best = -1;

    /// <summary>Measured tokens per second of speculative steps with the best arm (NaN before the first).</summary>
    public double SpeculativeRate => Best is var b and >= 0 ? Rate(b) : double.NaN;
    /// <summary>Measured tokens per second of plain steps (NaN before the first).</summary>
    public double PlainRate => _plainSeen ? 1 / _plainSeconds : double.NaN;
    /// <summary>Measured wall time of a plain step, in seconds (NaN before the first).</summary>
    internal double PlainSeconds => _plainSeen ? _plainSeconds : double.NaN;
    /// <summary>Measured tokens per second of each arm's speculative steps (NaN where not measured yet).</summary>
    public IReadOnlyList<double> ArmRates => [.. Enumerable.Range(0, _specSeen.Length).Select(Rate)];

    double Rate(int a) => _specSeen[a] ? _specTokens[a] / _specSeconds[a] : double.NaN;

    /// <summary>
    /// The measured arm with the highest rate, or -1; arm 0 (the default: `auto`'s drafter-free arm) unless another beats
    /// it by <see cref="SpeculativeOptions.MinGain"/>. Without that margin, step-to-step noise on a loaded machine (one
    /// step weighs 1 - RateSmoothing) let any arm that measured a lucky step take over, and a draft-model arm that
    /// accepted more but cost more per token held whole prompts: `auto:FILE` ran at 0.86-0.91 of prompt lookup where
    /// drafter-free `auto` ran at 0.93-0.99 (docs/speculative.md, session 11).
    /// </summary>
    int Best
    {
        get
        {
            int best = -1;
            for (int a = 0; a < _specSeen.Length; a++)
                if (_specSeen[a] && (a == 0 || a == _best || _streak[a] >= ConfirmSteps) && (best < 0 || Rate(a) > Rate(best))) best = a;
            if (best > 0 && _specSeen[0] && Rate(best) < Rate(0) * spec.MinGain) best = 0;
            return best;
        }
    }

    /// <summary>Both rates are known and the best arm beats plain decoding by at least <see cref="SpeculativeOptions.MinGain"/>.</summary>
    bool Winning => Best is var b and >= 0 && _specTokens[b] > _specSeconds[b] * spec.MinGain / _plainSeconds;

    /// <summary><see cref="Winning"/> as of the last <see cref="Observe"/> (a field: read on every step without a loop over the arms).</summary>
    internal bool Ahead { get; private set; }

    /// <summary>
    /// A step that the generator decodes plainly without consulting the schedule: no evidence to draft from while
    /// speculation is not measured faster (then <see cref="Speculate"/> would have said no). The probe schedule
    /// counts it as <see cref="Speculate"/> would have.
    /// </summary>
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveInlining)]
    internal void Idle()
    {
        Probe = false;
        Remeasure = false;
        if (_plainSeen && _specSeen[_arm]) _plainSinceProbe++;
    }

    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveInlining)]
    internal double Now() => _clock == null ? (double)Stopwatch.GetTimestamp() / Stopwatch.Frequency : _clock();

    /// <summary>The tree sizers (one per arm) of the last generation that used these rates (carried over when they fit).</summary>
    internal TreeSizer[]? Sizers { get; set; }

    /// <summary>Sets the number of arms (drafters chosen among); a different number forgets the speculative estimates.</summary>
    internal void SetArms(int arms)
    {
        if (arms == _specSeen.Length) return;
        _specTokens = new double[arms]; _specSeconds = new double[arms]; _specSeen = new bool[arms];
        _since = new int[arms]; _gap = new int[arms]; _streak = new int[arms];
        _trialSeconds = new double[arms];
        _defaultTurns = 0;
        _arm = 0;
        _best = -1;
        Ahead = false;
    }

    /// <summary>
    /// The estimated cost of each arm's first trial beyond a plain step, in seconds (after <see cref="SetArms"/>; 0 = tried
    /// at once, as drafter-free arms are). An arm with a cost is first tried only once that cost is at most its part of the
    /// exploration budget (<see cref="RemeasureShare"/> shared by all arms but one) of the time observed so far, as its
    /// re-measures are: a draft-model arm's first trial (a catch-up prefill on the draft model, draft passes, a losing tree)
    /// cost `auto:FILE` ~3% of the first category's time in session 12's quiet runs, in every lane and process, for arms that
    /// then drafted under 3% of the steps.
    /// </summary>
    /// <param name="tokens">The most tokens a first trial can emit (an arm not measured yet drafts a probe: its sizer's
    /// smallest tree, all accepted); a trial that could not beat the best arm's measured rate even so is not made
    /// (<see cref="Hopeless"/>).</param>
    internal void SetTrialCosts(IReadOnlyList<double> seconds, int tokens)
    {
        _trialTokens = tokens;
        // Arm 0, the default, is never deferred: some arm must be measured first.
        for (int a = 1; a < _trialSeconds.Length; a++) _trialSeconds[a] = a < seconds.Count ? Math.Max(0, seconds[a]) : 0;
    }

    /// <summary>
    /// An arm not measured yet whose first trial waits: for the default arm's estimate to settle (<see cref="SettleSteps"/>
    /// turns), or until its cost fits its share of the exploration budget.
    /// </summary>
    bool Deferred(int a) => !_specSeen[a] && a > 0
        && (_defaultTurns < SettleSteps || _trialSeconds[a] > RemeasureShare / Math.Max(1, _specSeen.Length - 1) * _observedSeconds
            || Hopeless(a));

    /// <summary>
    /// A costly first trial that cannot win: even accepting all it could (<see cref="SetTrialCosts"/>' tokens), in the time
    /// it is estimated to take (a plain step and its cost), it would emit fewer tokens than the best arm's measured rate
    /// does. Such a trial only loses its cost and then waits for the long re-measure gap: in session 15's traces (all
    /// categories, 1 thread, CPU time) the draft-model arms' first trials were 2-node probes behind a catch-up prefill
    /// (2.7-6.5 ms, 2-5 plain steps, for 1-2 tokens, measuring 120-240 tokens/s against plain decoding's ~750), made when
    /// `auto`'s rate dipped to 430-1,060. The best arm's rate (not a stale one of an arm re-measured rarely): the trial is
    /// made once it falls far enough (a text where the default arm's drafts fail).
    /// </summary>
    bool Hopeless(int a) => _trialSeconds[a] > 0 && _best >= 0 && _trialTokens < Rate(_best) * (_trialSeconds[a] + (_plainSeen ? _plainSeconds : 0));

    /// <summary>The rate a step of <paramref name="arm"/> must beat to count as a win: the best other measured arm's, the default arm's raised by MinGain (as <see cref="Best"/> does); 0 when none is measured.</summary>
    double Bar(int arm)
    {
        double bar = 0;
        for (int a = 0; a < _specSeen.Length; a++)
            if (a != arm && _specSeen[a]) bar = Math.Max(bar, a == 0 ? Rate(a) * spec.MinGain : Rate(a));
        return bar;
    }

    /// <summary>
    /// The arm the next step drafts with, should it draft: one not measured yet, else one whose last step beat the best
    /// but is not confirmed yet (ConfirmSteps), else one due for re-measuring (in turn after the best), else the best.
    /// </summary>
    /// <param name="mayTry">Whether this step may make an arm's first trial: an arm not measured yet drafts only where a
    /// probe may (<see cref="Speculate"/>: the context offers evidence), so on other steps it would only make the step
    /// plain; the best arm drafts those instead. In session 13's trace, steps of `auto:FILE` waiting for a model arm's
    /// first trial were plain 38 times in one category's 2 lanes (quote), where `auto` drafted them.</param>
    internal int ChooseArm(bool mayTry = true)
    {
        int k = _specSeen.Length;
        Remeasure = false;
        if (k == 1) return _arm = 0;
        // Arms not measured yet first, the one waiting longest first (an arm that had nothing to draft waits its turn again).
        int fresh = -1;
        for (int a = 0; a < k; a++) if (!_specSeen[a] && !Deferred(a) && (fresh < 0 || _since[a] > _since[fresh])) fresh = a;
        int best = Best;
        if (fresh >= 0 && (mayTry || best < 0)) return _arm = fresh;
        // A win to confirm first (ConfirmSteps): the arm drafts again at once.
        for (int a = 1; a < k; a++) if (a != best && _streak[a] is > 0 and < ConfirmSteps) { Remeasure = true; return _arm = a; }
        for (int i = 1; i < k; i++)
        {
            int a = (best + i) % k;
            if (_specSeen[a] && _since[a] >= Math.Max(spec.ProbeInterval, _gap[a])) { Remeasure = true; return _arm = a; }
        }
        return _arm = best;
    }

    /// <summary>The arm of the last <see cref="ChooseArm"/>.</summary>
    internal int Arm => _arm;

    /// <summary>Whether the last <see cref="ChooseArm"/> picked a measured arm other than the best, to re-measure it.</summary>
    internal bool Remeasure { get; private set; }

    /// <summary>
    /// Whether the next step should speculate (the sizer asked for a tree); advances the probe schedule. A probe that is
    /// due while <paramref name="mayProbe"/> is false waits (plain steps) until it is true.
    /// </summary>
    internal bool Speculate(bool mayProbe = true)
    {
        Probe = false;
        if (!_plainSeen) return false;           // price plain decoding first
        if (!_specSeen[_arm]) return Probe = mayProbe;
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

    /// <summary>The arm of the last <see cref="ChooseArm"/> had nothing to draft: the other arms get their turn first.</summary>
    internal void Skipped()
    {
        for (int a = 0; a < _since.Length; a++) _since[a]++;
        _since[_arm] = 0;
        if (_arm == 0) _defaultTurns++;
        // A win waiting for confirmation is not confirmed by a step without a draft (nor chosen again at once for ever).
        if (_streak[_arm] < ConfirmSteps) _streak[_arm] = 0;
    }

    /// <summary>Records one step: <paramref name="speculative"/> when a tree was drafted (by the arm of the last <see cref="ChooseArm"/>), the tokens it emitted and its wall time.</summary>
    internal void Observe(bool speculative, int tokens, double seconds)
    {
        if (!speculative) { ObservePlain(seconds); return; }
        seconds = Math.Max(seconds, 1e-9);
        _observedSeconds += seconds;
        double keep = spec.RateSmoothing;
        int arm = _arm;
        // Arm bookkeeping: a step that loses to the best other arm pushes this arm's next re-measure further away.
        int bestOther = -1;
        for (int a = 0; a < _specSeen.Length; a++)
        {
            if (a == arm) continue;
            _since[a]++;
            if (_specSeen[a] && (bestOther < 0 || Rate(a) > Rate(bestOther))) bestOther = a;
        }
        _since[arm] = 0;
        if (arm == 0) _defaultTurns++;
        // A step that beats it halves the gap (one lucky step on a loaded machine should not bring back frequent
        // re-measuring; an arm that keeps winning becomes the best through its estimate anyway).
        // The default arm (0) is re-measured at most DefaultRemeasureDivisor-th of MaxProbeInterval apart: its steps cost
        // about a plain step, so keeping its estimate fresh is cheap, and a stale low one (taken in a load spike or a
        // context with nothing to copy) is what left other arms in charge for whole prompts.
        int most = arm == 0 ? Math.Max(spec.ProbeInterval, spec.MaxProbeInterval / DefaultRemeasureDivisor) : MaxRemeasureFactor * spec.MaxProbeInterval;
        if (bestOther >= 0)
        {
            double bestRate = Bar(arm);
            if (tokens / seconds < bestRate)
            {
                _streak[arm] = 0;
                // A re-measure costs what its step lost against the best arm (seconds beyond the best arm's for as many
                // tokens): an arm whose steps lose much (a draft model's passes: 2-5 plain steps each against an 8M target
                // on 2 cores) waits until that loss is at most its part of RemeasureShare (shared by all arms but the
                // best) of the drafted time in between, rather than being tried again after 4, 16 and 64 steps.
                double byCost = (seconds - tokens / bestRate) / (RemeasureShare / (_specSeen.Length - 1) * _specSeconds[bestOther]);
                _gap[arm] = Math.Max(Math.Min(4 * Math.Max(spec.ProbeInterval, _gap[arm]), most), (int)Math.Min(arm == 0 ? most : CostlyRemeasureFactor * spec.MaxProbeInterval, byCost));
            }
            else
            {
                _streak[arm]++;
                _gap[arm] = Math.Max(spec.ProbeInterval, _gap[arm] / 2);
            }
        }
        _specTokens[arm] = _specSeen[arm] ? keep * _specTokens[arm] + (1 - keep) * tokens : tokens;
        _specSeconds[arm] = _specSeen[arm] ? keep * _specSeconds[arm] + (1 - keep) * seconds : seconds;
        _specSeen[arm] = true;
        if (!_plainSeen || Winning) _probeGap = 0;
        // A probe that beat plain decoding by itself is followed at once by another, so the estimate can catch up.
        else if (tokens > seconds * spec.MinGain / _plainSeconds) _probeGap = 1;
        else _probeGap = _probeGap < spec.ProbeInterval ? spec.ProbeInterval : Math.Min(2 * _probeGap, spec.MaxProbeInterval);
        _best = Best;
        Ahead = Winning;
    }

    /// <summary>Records a plain step's wall time (no loop over the arms: a plain step costs what plain decoding costs).</summary>
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveInlining)]
    internal void ObservePlain(double seconds)
    {
        seconds = Math.Max(seconds, 1e-9);
        _observedSeconds += seconds;
        double keep = spec.RateSmoothing;
        _plainSeconds = _plainSeen ? keep * _plainSeconds + (1 - keep) * seconds : seconds;
        _plainSeen = true;
        // A plain step while the default arm is measured but not ahead is one of its turns too: it lost to plain decoding,
        // so the others need not wait for it to draft SettleSteps times (probes are spaced out while it loses).
        if (_specSeen[0] && !Ahead) _defaultTurns++;
        Ahead = _best >= 0 && _specTokens[_best] > _specSeconds[_best] * spec.MinGain / _plainSeconds;
    }
}
