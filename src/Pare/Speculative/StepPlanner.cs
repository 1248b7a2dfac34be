using Pare.Models;

namespace Pare.Speculative;

/// <summary>
/// What a speculative step drafts: plain or a tree, of which size, with which arm. Holds the measured step rates, one
/// tree sizer per arm and context class (<see cref="SpeculativeOptions.SizeByContext"/>), and the evidence indexes
/// (the last <see cref="SpeculativeOptions.EvidenceNgram"/> tokens, and one token fewer, seen before). Kept out of the
/// generator's state machine (which is compiled fully optimised before the first token): its set-up and the budget
/// choice are compiled when first used, and a run that never gets to draft only ever calls <see cref="Idle"/>.
/// </summary>
internal sealed class StepPlanner
{
    readonly SpeculativeOptions _spec;
    readonly TreeSizer[] _sizers;
    readonly int _classes;
    readonly DrafterChoice? _choice;
    readonly NgramIndex? _evidence, _shorter;
    // The drafter (or arm) that fills its trees from a last part (`auto`), which the sizers decide for: the one drafting now.
    readonly CompositeDrafter? _single;
    CompositeDrafter? _composite;
    int _evidenceSteps;
    // The last step's match (its earlier occurrence's end, -1 = none) and history length, and the steps in a row whose
    // text followed their match's continuation (Followed).
    int _end = -1, _at, _followed;
    bool _match, _mayProbe;

    /// <summary>After the prompt pass: <paramref name="capacity"/> = prompt + output tokens at most (the indexes never rehash).</summary>
    public StepPlanner(InferenceSession session, SpeculativeOptions spec, IDrafter drafter, IReadOnlyList<int> history, int capacity)
    {
        _spec = spec;
        Rates = spec.Adaptive && spec.MeasuredFallback ? spec.Rates ?? new StepRates(spec) : null;
        CostModel? costs = spec.Costs;
        if (costs == null && spec.Adaptive)
        {
            var sizes = new List<int>();
            foreach (int n in CostModel.DefaultSizes) if (n <= spec.MaxTreeSize) sizes.Add(n);
            costs = CostModel.Measure(session, sizes);
        }
        // The sizer's estimates travel with shared rates (same session and drafter): a new prompt starts from what earlier ones measured.
        // A choice among drafters (auto:FILE) has one estimate and one sizer per arm, in the same rates.
        _choice = drafter as DrafterChoice;
        _single = drafter as CompositeDrafter;
        int arms = _choice?.Arms.Count ?? 1;
        Rates?.SetArms(arms);
        // One sizer per arm and context class (SizeByContext): class 0 = the last EvidenceNgram tokens occurred before,
        // 1 = only the last EvidenceNgram - 1 did (with a trigram or longer), last = neither.
        _classes = spec.SizeByContext && spec.EvidenceNgram > 0 ? (spec.EvidenceNgram >= 3 ? 3 : 2) : 1;
        var shared = Rates?.Sizers;
        bool fits = shared != null && shared.Length == arms * _classes;
        for (int i = 0; fits && i < shared!.Length; i++) fits = shared[i].Fits(costs, spec);
        if (fits) _sizers = shared!;
        else
        {
            _sizers = new TreeSizer[arms * _classes];
            // One measured price of trees per arm, shared by its classes' sizers (TreeScale).
            for (int a = 0; a < arms; a++)
            {
                var price = new TreeScale();
                for (int c = 0; c < _classes; c++) _sizers[a * _classes + c] = new TreeSizer(costs, spec, price);
            }
        }
        if (Rates != null) Rates.Sizers = _sizers;
        // A draft-model arm's first trial waits until it fits the exploration budget, and while it could not beat the best
        // arm's measured rate with the tokens of its probe (StepRates.SetTrialCosts): an arm not measured yet drafts as a
        // probe, of its sizer's smallest tree.
        if (_choice != null && costs != null) Rates?.SetTrialCosts(_choice.TrialSeconds(costs, session.Model.ParameterCount), _sizers[0].Smallest);
        // Sized for prompt + output up front: no rehash (and no first-call compilation of one) while decoding.
        _evidence = spec.EvidenceNgram > 0 ? new NgramIndex(spec.EvidenceNgram, capacity) : null;
        // Index the prompt with the prompt (before the first token), not inside the first decoding step.
        _evidence?.Latest(history);
        // The shorter match of class 1, looked up only at steps that may draft (it catches up on the tokens in between then).
        _shorter = _classes == 3 ? new NgramIndex(spec.EvidenceNgram - 1, capacity) : null;
    }

    /// <summary>The measured step rates (null without the measured fallback).</summary>
    public StepRates? Rates { get; }

    /// <summary>The sizer that chose the last budget (null after a plain step decided by <see cref="Idle"/>).</summary>
    public TreeSizer? Sizer { get; private set; }

    /// <summary>
    /// Looks at the context of the next step: whether it offers evidence to draft from. True when the step is plain without
    /// asking the sizer or the rates: nothing to draft from while plain decoding measures faster (no probe may be made:
    /// they wait for evidence; and the rates would veto any other tree). The schedules count it. Out of domain nearly
    /// every step is such a step: it then runs only plain decoding's code and the evidence index.
    /// </summary>
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveInlining)]
    public bool Idle(IReadOnlyList<int> history)
    {
        // Probes wait for evidence: steps whose last EvidenceNgram tokens occurred before (O(1) per token: an incremental
        // index), EvidenceSteps of them since the last draft that accepted nothing (one repeated "of the" is no loop).
        int end = _evidence?.Latest(history) ?? -1;
        // Whether the text went on as at the last step's match (prompt lookup's first draft token would have been accepted),
        // known without drafting: the token after the last step's root against the one after its earlier occurrence.
        _followed = _end >= 0 && history.Count > _at && At(history, _at) == At(history, _end) ? _followed + 1 : 0;
        _end = end; _at = history.Count;
        _match = end >= 0;
        if (_match) _evidenceSteps++;
        _mayProbe = _evidence == null || (_match && _evidenceSteps >= _spec.EvidenceSteps);
        Sizer = null;
        _composite = null;
        if (_mayProbe || Rates == null || Rates.Ahead) return false;
        // A repeated n-gram where the arm's trees of that class measure winning, or whose continuation the text followed
        // (Followed): the step is the sizer's (Budget).
        if (_match && (Followed || _sizers[Rates.Arm * _classes].Winning(Rates.PlainSeconds))) return false;
        Rates.Idle();
        _sizers[Rates.Arm * _classes + (_match ? 0 : _classes - 1)].Idle();
        return true;
    }

    /// <summary>
    /// history[i], read in place from the generator's List (as <see cref="NgramIndex"/> does): no interface call whose
    /// tier-up would be compiled while decoding plain steps.
    /// </summary>
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveInlining)]
    static int At(IReadOnlyList<int> history, int i) => history is List<int> list ? System.Runtime.InteropServices.CollectionsMarshal.AsSpan(list)[i] : history[i];

    /// <summary>The node budget of a step that <see cref="Idle"/> did not decide (1 = plain), at most <paramref name="room"/>; sets the drafting arm.</summary>
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.NoInlining)]
    public int Budget(IReadOnlyList<int> history, int room)
    {
        var rates = Rates;
        int arm = rates?.ChooseArm(_mayProbe) ?? 0;
        if (_choice != null) _choice.Current = arm;
        int cls = Class = _match || _classes == 1 ? 0 : _shorter != null && _shorter.Latest(history) >= 0 ? 1 : _classes - 1;
        Arm = arm;
        var sizer = Sizer = _sizers[arm * _classes + cls];
        _composite = _choice == null ? _single : _choice.Arms[arm] as CompositeDrafter;
        // A class without the evidence n-gram is only reached while speculation measures faster (or without the measured
        // fallback): its sizer's own cheap probes may not wait for a match that its steps by definition lack.
        // Where the text followed the match's continuation at the last steps, a class-0 probe is due at once (Followed).
        bool due = cls == 0 && Followed;
        int want = sizer.Choose(_mayProbe || due || (cls > 0 && (rates == null || rates.Ahead)), rates?.PlainSeconds ?? double.NaN, due);
        // Re-measuring a losing arm whose own sizer says plain: its smallest tree, a probe of that arm.
        if (rates != null && rates.Remeasure && want <= 1) want = sizer.Smallest;
        int budget = Math.Min(want, room);
        // The measured rates may veto a tree, but not the sizer's cheap probes (they are how it notices text turning predictable),
        // nor the tree of a class whose own drafted steps measure winning while the arm's running rate, which mixes every
        // class's steps, says plain: in the quote category a few losing steps of Token Recycling's guesses (no n-gram
        // evidence) took `auto`'s rate below plain decoding's, and the repeated-trigram steps after them (prompt lookup's
        // chains, 4-5 tokens accepted) were plain or 2-node probes until a probe won it back: 45-250 such steps per run of 4
        // lanes (`pld` the same after its unigram chains failed; docs/speculative.md, session 16).
        if (budget > 1 && !sizer.Probing && rates != null && (rates.Ahead || !sizer.Winning(rates.PlainSeconds)))
        {
            if (!rates.Speculate(_mayProbe)) budget = 1;
            // A probe while plain decoding measures faster is as small as the sizer allows: it only has to show that
            // drafts are accepted again (then speculation wins and the sizer chooses freely), and a failed one costs ~T(2) - T(1).
            else if (rates.Probe) budget = Math.Min(budget, sizer.Smallest);
        }
        // Filled to the budget or not, as the sizer measured (a composite drafter: `auto`).
        if (_composite != null) _composite.Fill = sizer.Fill || budget <= 1;
        return budget;
    }

    /// <summary>
    /// Records a verified tree with the sizer that chose its budget: its nodes, the accepted path and, for a composite
    /// drafter, where its first parts' nodes end (<see cref="CompositeDrafter.Lead"/>).
    /// </summary>
    public void Observe(int nodes, IReadOnlyList<int> path) => Sizer?.Observe(nodes, path, _composite != null && nodes > 1 ? _composite.Lead : 0);

    /// <summary>The context class and the arm of the last <see cref="Budget"/> (<see cref="SpeculationStats.ClassSteps"/>).</summary>
    public int Class { get; private set; }
    /// <inheritdoc cref="Class"/>
    public int Arm { get; private set; }

    /// <summary>
    /// At each of the last <see cref="SpeculativeOptions.EvidenceSteps"/> steps (or more) in a row, the text went on as after
    /// the earlier occurrence of its repeated n-gram (the first token prompt lookup drafts there was the token chosen): a
    /// quote going on. Then a class-0 step is drafted, and its sizer probes at once where it
    /// decodes plain (<see cref="TreeSizer.Choose"/>' due) rather than on its schedule (up to MaxProbeInterval steps apart
    /// where its trees measured losing): in session 16's traces (quote, 1 thread) the class-0 steps that were plain
    /// after a quote had diverged and resumed would have had 3-8 of prompt lookup's tokens accepted.
    /// </summary>
    bool Followed => _followed >= Math.Max(1, _spec.EvidenceSteps);

    /// <summary>A draft accepted nothing: evidence is counted afresh.</summary>
    public void Failed() => _evidenceSteps = 0;
}
