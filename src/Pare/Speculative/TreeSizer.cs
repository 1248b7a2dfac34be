namespace Pare.Speculative;

/// <summary>
/// Picks the tree size (node budget) that maximises expected tokens per second from T(n) and the acceptance seen so
/// far. A verified tree also tells what every smaller budget would have given: drafters add nodes parents first, so
/// the tree cut to its first c nodes is the tree a budget of c would have drafted, and the walk would have stopped at
/// the first accepted node numbered c or more. So each step updates the estimates of all budgets up to its own,
/// and every few steps the next larger budget is tried. While plain decoding is best, the smallest budget is probed
/// every few steps (as often as its cost allows: at most 1% slower than plain decoding when every probe fails), so
/// that output turning repetitive (a loop, a quote) is noticed.
/// With <see cref="SpeculativeOptions.MeasuredSizing"/> the trees and the plain step are priced as measured while
/// decoding rather than by T(n) alone (see <see cref="Timed"/>).
/// </summary>
internal sealed class TreeSizer
{
    readonly CostModel? _costs;
    readonly SpeculativeOptions _spec;
    readonly int[] _sizes;
    // Per candidate budget: running means of the tokens a step emits and of its cost T(nodes drafted), and a count.
    readonly double[] _tokens, _cost;
    readonly int[] _seen;
    // The same for the drafter's trees without filling (Observe's lead): a composite's first parts only (`auto`: prompt
    // lookup's chain), the last part drafting only where they had nothing. Learnt from every verified tree that says where
    // its lead ends (its first `lead` nodes are that tree), never tried on optimism: chosen only once seen.
    readonly double[] _leadTokens, _leadCost;
    readonly int[] _leadSeen;
    bool _fill = true;
    // The filling's own nodes (past the lead) in filled trees that had a lead, and the tokens they carried (accepted nodes
    // past the lead): running sums over the last ~1 / (1 - Decay) such trees (FillerPays).
    double _fillerNodes, _fillerTokens;
    int _step, _last = 1;
    readonly int _probeEvery;
    // Steps between the sizer's probes: _probeEvery (or, measured, what keeps a failed probe's measured extra cost
    // within ProbeOverhead), times _backoff: doubled after each probe that accepted nothing (up to MaxProbeBackoff),
    // back to 1 after one that accepted a draft. On text where nothing is
    // accepted (out-of-domain prompts) the probes' real cost (drafting, the tree pass, the drafter's update, not only
    // T(2) - T(1)) is then amortized over ever longer plain runs.
    int _backoff = 1, _sinceProbe;
    // Measured seconds of this sizer's drafted steps per second of T(nodes) (running mean; NaN before the first), and the
    // same over all the sizers of its drafter (TreeScale): the price of trees until this sizer has timed its own.
    double _scale = double.NaN;
    readonly TreeScale _price;
    // Measured tokens and seconds of this sizer's drafted steps (running means over the last ~1 / (1 - Decay) of them,
    // the first MinMeasured averaged alike), and how many: what its trees really gave per second, everything included.
    double _realTokens, _realSeconds;
    int _realSteps;
    const int MinMeasured = 4;
    const int MaxProbeBackoff = 2;
    const double Decay = 0.85;
    const int ExploreEvery = 8;
    const double ProbeOverhead = 0.01;

    /// <summary>Whether this sizer was built for these costs and options (then it can carry over to another generation).</summary>
    public bool Fits(CostModel? costs, SpeculativeOptions spec) =>
        ReferenceEquals(costs, _costs) && spec.MaxTreeSize == _spec.MaxTreeSize && spec.MinGain == _spec.MinGain && spec.Adaptive == _spec.Adaptive
        && spec.MeasuredSizing == _spec.MeasuredSizing;

    /// <param name="price">The measured price of trees, shared with the other sizers of the same drafter (one per context
    /// class); null = its own.</param>
    public TreeSizer(CostModel? costs, SpeculativeOptions spec, TreeScale? price = null)
    {
        _costs = costs; _spec = spec; _price = price ?? new TreeScale();
        _sizes = costs == null ? [spec.MaxTreeSize] : [.. costs.Sizes.Where(n => n > 1 && n <= spec.MaxTreeSize)];
        _tokens = new double[_sizes.Length]; _cost = new double[_sizes.Length]; _seen = new int[_sizes.Length];
        _leadTokens = new double[_sizes.Length]; _leadCost = new double[_sizes.Length]; _leadSeen = new int[_sizes.Length];
        // A failed probe costs T(smallest) - T(1) more than a plain step.
        double extra = costs == null || _sizes.Length == 0 ? 1 : costs.Time(_sizes[0]) / costs.Time(1) - 1;
        _probeEvery = (int)Math.Clamp(Math.Ceiling(extra / ProbeOverhead), ExploreEvery, 1 << 20);
    }

    /// <summary>The smallest budget it chooses among (the cheapest probe).</summary>
    public int Smallest => _sizes.Length > 0 ? _sizes[0] : _spec.MaxTreeSize;

    /// <summary>Whether the last <see cref="Choose"/> was a probe while plain decoding was best: of the smallest budget, or of the tree it would draft where its estimates say trees pay but its drafted steps measure losing (<see cref="Losing"/>).</summary>
    public bool Probing { get; private set; }

    /// <summary>
    /// Whether the tree of the last <see cref="Choose"/> is filled to the budget (false: a composite drafter's first parts
    /// only, where they draft: <see cref="CompositeDrafter.Fill"/>). With prompt lookup's chain short of the budget, `auto`
    /// filled the rest with Token Recycling's guesses, so in the quote category its sizer chose 4-8 nodes (guesses past 6
    /// cost more than they gave) where prompt lookup alone verified 8-10-node chains at budgets 12-32 for 6-7 tokens
    /// (session 14's traces).
    /// </summary>
    public bool Fill => _fill;

    /// <summary>
    /// The budget for the next step (1 = plain); a probe that is due while <paramref name="mayProbe"/> is false waits until
    /// it is true. <paramref name="plainSeconds"/>: the measured wall time of a plain step (NaN = not measured: T(1) prices it).
    /// <paramref name="due"/>: where plain decoding is chosen, probe now whatever the schedule (the context shows a draft
    /// would be accepted: <see cref="StepPlanner"/>'s Followed).
    /// </summary>
    public int Choose(bool mayProbe = true, double plainSeconds = double.NaN, bool due = false)
    {
        if (_costs == null || !_spec.Adaptive || _sizes.Length == 0) return _spec.MaxTreeSize;
        _step++;
        // Measured sizing: a plain step costs what it measured, a tree T(n) x the scale its steps measured (before the
        // first one, the plain step's own ratio to T(1): then the choice is the unmeasured one). T(n) alone priced
        // Token Recycling's guesses where nothing repeats (out of domain) as paying when they did not (docs/speculative.md, session 10).
        bool measured = _spec.MeasuredSizing && plainSeconds > 0 && double.IsFinite(plainSeconds);
        if (measured) _price.PlainRatio = plainSeconds / _costs.Time(1);
        double scale = !measured ? 1 : double.IsNaN(_scale) ? _price.Current : _scale;
        double best = measured ? 1.0 / plainSeconds : 1.0 / _costs.Time(1);
        int bestI = -1;
        for (int i = 0; i < _sizes.Length; i++)
        {
            // Untried budgets start optimistic so that they get tried.
            double rate = (_seen[i] == 0 ? Math.Min(1 + Math.Log2(_sizes[i]), 4.0) / _costs.Time(_sizes[i]) : _tokens[i] / _cost[i]) / scale;
            if (rate > best * _spec.MinGain) { best = rate; bestI = i; }
        }
        // Trees without filling, as measured (beside the filled ones: MinGain is the bar against plain decoding only).
        int leadI = -1;
        for (int i = 0; i < _sizes.Length; i++)
        {
            if (_leadSeen[i] == 0) continue;
            double rate = _leadTokens[i] / _leadCost[i] / scale;
            if (rate > best * (bestI < 0 ? _spec.MinGain : 1)) { best = rate; leadI = i; }
        }
        _fill = leadI < 0;
        if (leadI >= 0) bestI = leadI;
        // Measured, a class whose drafted steps emit fewer tokens per second than plain steps by MinGain decodes plain,
        // probing the tree it would draft (not the smallest: its trees decide). The estimates per budget are cut from
        // verified trees and the best of them is chosen, so where acceptance is low and uneven (no n-gram evidence: Token
        // Recycling's guesses alone) the chosen one was the luckiest: in session 14's traces (quote) such trees were
        // predicted at 1.5x plain and measured at 0.97x.
        int vetoed = -1;
        if (bestI >= 0 && measured && Losing(plainSeconds)) { vetoed = bestI; bestI = -1; }
        // Now and then one budget larger than the best, so that the estimates above it do not go stale.
        // Without filling, every fourth time the filled tree of the same budget instead (its estimates above the chain's
        // length are only learnt from filled trees).
        if (bestI >= 0 && _step % ExploreEvery == 0)
        {
            // (every sixteenth time while the filling's nodes carry less than the unfilled tree's nodes earn: FillerPays).
            if (!_fill && _step / ExploreEvery % (FillerPays(bestI) ? 4 : 16) == 0) _fill = true;
            else if (bestI + 1 < _sizes.Length) bestI++;
        }
        // Measured, at most MaxProbeInterval apart (times the back-off): a scale inflated by a few preempted steps on a busy
        // machine must not keep the sizer from ever measuring again.
        int probe = Math.Max(vetoed, 0);
        int every = !measured ? _probeEvery
            : (int)Math.Clamp(Math.Ceiling((_costs.Time(_sizes[probe]) * scale / plainSeconds - 1) / ProbeOverhead), ExploreEvery, Math.Max(_probeEvery, _spec.MaxProbeInterval));
        Probing = bestI < 0 && (++_sinceProbe >= every * _backoff || due) && mayProbe;
        if (Probing) { bestI = probe; _sinceProbe = 0; _fill = _fill || vetoed < 0; }
        return _last = bestI < 0 ? 1 : _sizes[bestI];
    }

    /// <summary>
    /// A plain step the generator decided without <see cref="Choose"/> (no evidence to draft from while plain decoding
    /// is ahead): counted towards the next probe, as a <see cref="Choose"/> that kept plain decoding would count it.
    /// </summary>
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveInlining)]
    public void Idle()
    {
        Probing = false;
        _fill = true;
        _last = 1;
        if (_costs == null || !_spec.Adaptive || _sizes.Length == 0) return;
        _step++;
        _sinceProbe++;
    }

    /// <summary>
    /// Whether this sizer's drafted steps, as measured (at least <see cref="MinMeasured"/> of them), emitted fewer tokens per
    /// second than plain steps of <paramref name="plainSeconds"/> by <see cref="SpeculativeOptions.MinGain"/>.
    /// </summary>
    public bool Losing(double plainSeconds) => _realSteps >= MinMeasured && _realTokens * plainSeconds < _realSeconds * _spec.MinGain;

    /// <summary>
    /// Whether this sizer's drafted steps, as measured (at least <see cref="MinMeasured"/> of them), emitted more tokens per
    /// second than plain steps of <paramref name="plainSeconds"/> by <see cref="SpeculativeOptions.MinGain"/>: its class pays
    /// whatever the arm's running rate, which mixes every class's steps, says (<see cref="StepPlanner"/>).
    /// </summary>
    public bool Winning(double plainSeconds) => _realSteps >= MinMeasured && _realTokens * plainSeconds > _realSeconds * _spec.MinGain;

    /// <summary>
    /// The measured wall time of a drafted step of <paramref name="nodes"/> nodes (whole step: drafting to the drafter's
    /// update) that emitted <paramref name="tokens"/> tokens.
    /// </summary>
    public void Timed(int nodes, int tokens, double seconds)
    {
        if (_costs == null || nodes < 2 || !(seconds > 0)) return;
        // The measured rate: a step counts for at most twice the running mean's seconds (a preempted step, as below).
        double w = Math.Max(1 - Decay, 1.0 / ++_realSteps);
        _realTokens += w * (tokens - _realTokens);
        _realSeconds += w * ((_realSteps == 1 ? seconds : Math.Min(seconds, 2 * _realSeconds)) - _realSeconds);
        double r = seconds / _costs.Time(nodes);
        // One step counts for at most twice the running scale: a step preempted by another process (tens of plain steps
        // long on a loaded machine) moves it by at most 15%.
        // The first one against the plain step's own ratio to T(1) (the prior Choose used).
        _scale = Next(_scale, r);
        _price.Scale = Next(_price.Scale, r);
    }

    double Next(double scale, double r)
    {
        double first = double.IsNaN(_price.PlainRatio) ? r : Math.Min(r, 2 * Math.Max(1, _price.PlainRatio));
        return double.IsNaN(scale) ? first : Decay * scale + (1 - Decay) * Math.Min(r, 2 * scale);
    }

    /// <summary>
    /// Records a verified tree: its size in nodes (1 = a plain step), the accepted path (node indices, root first) and,
    /// for a composite drafter, <paramref name="lead"/>: how many of its first nodes its first parts drafted (root
    /// included; 1 = they had nothing, then the tree is all the last part's). 0 = a drafter that does not fill.
    /// </summary>
    public void Observe(int nodes, IReadOnlyList<int> path, int lead = 0)
    {
        // A probe that accepted nothing (or had nothing to draft) pushes the next one further away.
        if (Probing) _backoff = path.Count > 1 ? 1 : Math.Min(2 * _backoff, MaxProbeBackoff);
        if (_costs == null || nodes < 2) return;
        // A tree that was not filled says nothing about filled budgets past its own size, and its own size is where the
        // first parts' draft ended (a filled budget learnt only from the long ones would look better than it is): the
        // filled estimates are learnt from filled trees (every 32nd step while unfilled ones are chosen).
        if (_fill) Update(_tokens, _cost, _seen, Math.Max(_last, nodes), nodes, path);
        // Without filling, the tree would have been its first `lead` nodes (all of it where the first parts had nothing).
        if (lead > 0) Update(_leadTokens, _leadCost, _leadSeen, Math.Max(_last, nodes), lead >= 2 ? Math.Min(lead, nodes) : nodes, path);
        // What the filling's nodes carried where there was a lead to fill after (FillerPays).
        if (_fill && lead >= 2 && nodes > lead)
        {
            int carried = 0;
            foreach (int node in path) if (node >= lead) carried++;
            _fillerNodes = Decay * _fillerNodes + (nodes - lead);
            _fillerTokens = Decay * _fillerTokens + carried;
        }
    }

    /// <summary>
    /// Whether the filling's nodes (Token Recycling's guesses after prompt lookup's chain, in `auto`) carried, per node, what
    /// a node of the unfilled tree at budget index <paramref name="i"/> earns: its estimated tokens per second of T(n) times
    /// the mean slope of T(n) up to that budget (a node that carries less lowers the tree's rate). Unmeasured, they do. In
    /// session 16's traces (quote, class 0) they carried 0.04-0.10 tokens per node where a chain of 4-5 tokens earned
    /// ~0.2-0.3 per node's time at either thread count: the filled trees that keep the filled estimates fresh cost more
    /// than they tell.
    /// </summary>
    bool FillerPays(int i)
    {
        if (_fillerNodes <= 0 || i < 0 || _leadSeen[i] == 0) return true;
        double slope = (_costs!.Time(_sizes[i]) - _costs.Time(1)) / Math.Max(1, _sizes[i] - 1);
        return _fillerTokens * _leadCost[i] >= _fillerNodes * slope * _leadTokens[i];
    }

    // The estimates of every budget up to `upTo` from a tree of `nodes` nodes (cut to its first c for budget c).
    void Update(double[] tokensOf, double[] costOf, int[] seen, int upTo, int nodes, IReadOnlyList<int> path)
    {
        for (int i = 0; i < _sizes.Length && _sizes[i] <= upTo; i++)
        {
            int c = Math.Min(_sizes[i], nodes), tokens = 0;
            while (tokens < path.Count && path[tokens] < c) tokens++;
            double cost = _costs!.Time(c);
            // The first observations averaged alike, then a running mean over the last ~1 / (1 - Decay): a lucky first
            // tree (Token Recycling's 7 guesses all accepted once) no longer holds a budget's estimate for ten steps.
            double w = Math.Max(1 - Decay, 1.0 / ++seen[i]);
            tokensOf[i] += w * (tokens - tokensOf[i]);
            costOf[i] += w * (cost - costOf[i]);
        }
    }
}

/// <summary>
/// What a drafter's trees really cost against T(n): measured seconds of its drafted steps per second of T(nodes) (a
/// running mean, NaN before the first), beside the forward pass that T(n) prices (drafting, the walk, the commit, the
/// drafter's update, attention at the current position rather than at the measurement's, T(n) itself measured early in
/// the process). One per drafter (arm), fed by its sizers of every context class: a class's sizer prices its trees with
/// it until it has timed trees of its own (then with its own scale: a class may draft costlier trees). Before, a class
/// the drafter rarely meets (a context with only a bigram match: 5% of `auto`'s steps in the quote category) priced its
/// first trees by the plain step's ratio to T(1).
/// </summary>
internal sealed class TreeScale
{
    /// <summary>The running mean (NaN before the first drafted step).</summary>
    public double Scale { get; set; } = double.NaN;
    /// <summary>The last measured plain step over T(1) (NaN before one).</summary>
    public double PlainRatio { get; set; } = double.NaN;

    /// <summary>
    /// The scale to price trees with: the measured one, else the plain step's ratio to T(1) but never below 1. T(1) is a
    /// tree pass of one node (lower quartile, measured at the start), and on the quiet machine of session 12 plain decoding
    /// ran at 0.87 T(1) (1,340 tok/s against T(1) = 0.85 ms): a tree priced at 0.87 T(n) before its first timing was a
    /// tree priced below its own pass.
    /// </summary>
    public double Current => double.IsNaN(Scale) ? Math.Max(1, PlainRatio) : Scale;
}
