using System.Reflection;
using System.Runtime.CompilerServices;
using Pare.Generation;
using Pare.Models;
using Pare.Tokenizers;

namespace Pare.Speculative;

/// <summary>Counters of a speculative run.</summary>
public sealed class SpeculationStats
{
    /// <summary>Verification steps (forward passes after the prompt).</summary>
    public int Steps { get; internal set; }
    /// <summary>Steps that drafted nothing (tree size 1: plain decoding).</summary>
    public int PlainSteps { get; internal set; }
    /// <summary>Tokens emitted by those steps, bonus tokens included.</summary>
    public int Tokens { get; internal set; }
    /// <summary>Tree nodes evaluated in all steps.</summary>
    public long NodesEvaluated { get; internal set; }
    /// <summary>Mean accepted tokens per verification step, bonus included (plain decoding = 1).</summary>
    public double MeanAccepted => Steps == 0 ? 0 : (double)Tokens / Steps;
    /// <summary>Plain steps decided before asking the sizer or the rates (nothing to draft from while plain decoding measured faster).</summary>
    public int IdleSteps { get; internal set; }
    /// <summary>Steps whose drafter had nothing to propose (counted among the plain steps).</summary>
    public int EmptyDrafts { get; internal set; }
    /// <summary>
    /// Drafted steps, their emitted tokens (bonus included) and tree nodes by the context class of the step
    /// (<see cref="SpeculativeOptions.SizeByContext"/>: 0 = the last EvidenceNgram tokens occurred before, 1 = only the last
    /// EvidenceNgram - 1 did, 2 = neither; one class without it). Counts, not times: they do not depend on the machine's
    /// load, only on the choices the measured rates made.
    /// </summary>
    public int[] ClassSteps { get; } = new int[3];
    /// <inheritdoc cref="ClassSteps"/>
    public int[] ClassTokens { get; } = new int[3];
    /// <inheritdoc cref="ClassSteps"/>
    public long[] ClassNodes { get; } = new long[3];
    /// <summary>
    /// Measured seconds of the drafted steps by context class (drafting to the drafter's update, as the step rates time
    /// them) and of the plain steps; 0 without the measured fallback. Beside <see cref="ClassTokens"/>: whether a class's
    /// trees paid against plain steps, in the process's own clock.
    /// </summary>
    public double[] ClassSeconds { get; } = new double[3];
    /// <inheritdoc cref="ClassSeconds"/>
    public double PlainSeconds { get; internal set; }
    /// <summary>Drafted steps and their emitted tokens per arm of a <see cref="DrafterChoice"/> (`auto:FILE`; one arm otherwise).</summary>
    public int[] ArmSteps { get; private set; } = new int[1];
    /// <inheritdoc cref="ArmSteps"/>
    public int[] ArmTokens { get; private set; } = new int[1];

    internal void Drafted(int cls, int arm, int tokens, int nodes)
    {
        cls = Math.Clamp(cls, 0, 2);
        ClassSteps[cls]++; ClassTokens[cls] += tokens; ClassNodes[cls] += nodes;
        if (arm >= ArmSteps.Length) { ArmSteps = [.. ArmSteps, .. new int[arm + 1 - ArmSteps.Length]]; ArmTokens = [.. ArmTokens, .. new int[arm + 1 - ArmTokens.Length]]; }
        ArmSteps[arm]++; ArmTokens[arm] += tokens;
    }
}

/// <summary>Options of speculative generation.</summary>
public sealed record SpeculativeOptions
{
    /// <summary>Largest tree to verify in one pass (nodes, root included). Default 64.</summary>
    public int MaxTreeSize { get; init; } = 64;
    /// <summary>Choose the tree size each step from measured T(n) and observed acceptance (else always MaxTreeSize). Default true.</summary>
    public bool Adaptive { get; init; } = true;
    /// <summary>Speculate only when the expected speed gain exceeds this factor; otherwise decode plainly. Default 1.03.</summary>
    public double MinGain { get; init; } = 1.03;
    /// <summary>Seed the drafter with the logits of every prompt position (costs an LM-head pass per prompt token). Default false.</summary>
    public bool SeedFromPrompt { get; init; }
    /// <summary>Measured forward-pass costs; null = measure on the session at the start.</summary>
    public CostModel? Costs { get; init; }
    /// <summary>
    /// With <see cref="Adaptive"/>: time every step and decode plainly while speculative steps emit fewer tokens per second
    /// of wall time (drafting and bookkeeping included) than plain steps, probing speculation now and then. Default true.
    /// </summary>
    public bool MeasuredFallback { get; init; } = true;
    /// <summary>Weight of the old value in the running rate estimates (each new step weighs 1 - this). Default 0.7.</summary>
    public double RateSmoothing { get; init; } = 0.7;
    /// <summary>Plain steps before the first speculative probe once plain decoding is ahead; doubles per losing probe. Default 4.</summary>
    public int ProbeInterval { get; init; } = 4;
    /// <summary>Largest gap between probes, and speculative steps between plain re-timings while speculation wins. Default 64.</summary>
    public int MaxProbeInterval { get; init; } = 64;
    /// <summary>Running rate estimates to continue from (share one per session and drafter across prompts); null = fresh ones.</summary>
    public StepRates? Rates { get; init; }
    /// <summary>
    /// While speculation is not measured faster than plain decoding, probe only after steps whose last this many tokens
    /// (the pending one included) occurred earlier in prompt + output, i.e. when the context offers something to draft
    /// from (prompt lookup would find a match now, and did at <see cref="EvidenceSteps"/> steps). Text that rarely
    /// repeats itself (out-of-domain prompts under sampling) then costs what plain decoding costs. Once speculation
    /// measures faster, steps draft regardless. 0 = probe on schedule, evidence or not. Default 3.
    /// </summary>
    public int EvidenceNgram { get; init; } = 3;
    /// <summary>With <see cref="EvidenceNgram"/>: steps with such a match needed before a probe, counted since the last draft that accepted nothing. Default 2.</summary>
    public int EvidenceSteps { get; init; } = 2;
    /// <summary>
    /// With <see cref="EvidenceNgram"/> = n: size trees separately by what the context offers at each step, one tree
    /// sizer per class (and per arm): the last n tokens occurred earlier in prompt + output; only the last n - 1 did
    /// (n &gt;= 3); neither. A draft after a repeated trigram is accepted far more often than one without (prompt
    /// lookup has a quote to copy; elsewhere only Token Recycling's or a trie's guesses), so with one running estimate
    /// per budget over all steps `auto` verified both kinds in trees sized for their mixture (docs/speculative.md,
    /// session 9). Default true.
    /// </summary>
    public bool SizeByContext { get; init; } = true;
    /// <summary>
    /// With <see cref="MeasuredFallback"/>: the tree sizer prices a plain step by its measured wall time and a tree by
    /// T(n) scaled by what its own drafted steps measured against T(n) (drafting, walk, commit and the drafter's update
    /// included), instead of by T(n) alone: T(n) is the forward pass only, measured once at the start, and plain decoding
    /// ran at 0.88-1.32x 1/T(1) in session 9's quiet acceptance run (1.03-1.32x in the out-of-domain category), so trees
    /// that lost to plain steps were priced as winning. Default true.
    /// </summary>
    public bool MeasuredSizing { get; init; } = true;
    /// <summary>Clock for step timing, in seconds; null = <see cref="System.Diagnostics.Stopwatch"/>. A test hook.</summary>
    public Func<double>? Clock { get; init; }
}

/// <summary>
/// The walk over a verified tree and the scratch its sampled form reuses: at each node choose the token as plain
/// decoding would (argmax / a sample, or speculative sampling over the node's trials when the tree was sampled from a
/// draft distribution), descend while a child carries it. Kept out of the generator's state machine, so that a run
/// which never drafts never compiles it.
/// </summary>
sealed class TreeWalk(Sampler sampler, GenerationOptions options, int vocab, int? eos, Random rng, bool sampledDrafts)
{
    readonly int[] _banned = [.. options.Sampling.BannedTokens];
    readonly HashSet<int> _seen = [];
    readonly float[] _target = sampledDrafts ? new float[vocab] : [];
    readonly List<(int Token, float[]? Q)> _trials = [];
    readonly List<int> _trialChildren = [];

    /// <summary>
    /// Fills <paramref name="path"/> (root first, already holding the root) and <paramref name="chosen"/> (empty); accepted
    /// choices join <paramref name="history"/> at once (the sampler's penalties see them), the last one stays pending.
    /// </summary>
    public void Walk(DraftTree tree, ModelDraft? sampled, float[] logits, List<int> history, List<int> path, List<int> chosen, int emitted)
    {
        int node = 0;
        while (true)
        {
            var row = logits.AsSpan(node * vocab, vocab);
            int x, child;
            if (sampled == null)
            {
                x = sampler.Sample(row, history);
                child = tree.Child(node, x);
            }
            else
            {
                // The target's processed distribution p at this node, then recursive rejection over its trials.
                Sampler.Prepare(row, history, options.Sampling, _banned, _seen);
                var (ids, probs, count) = sampler.Probabilities(row);
                Array.Clear(_target);
                for (int i = 0; i < count; i++) _target[ids[i]] = probs[i];
                _trials.Clear(); _trialChildren.Clear();
                foreach (var (parent, c, q) in sampled.Trials)
                    if (parent == node) { _trials.Add((tree.Tokens[c], q >= 0 ? sampled.Q[q] : null)); _trialChildren.Add(c); }
                var (accepted, token) = SpeculativeSampling.Verify(_target, _trials, rng);
                x = token;
                child = accepted >= 0 ? _trialChildren[accepted] : -1;
            }
            chosen.Add(x);
            bool last = child < 0 || (options.StopAtEos && eos == x) || emitted + chosen.Count >= options.MaxTokens;
            if (last) break;
            path.Add(child);
            history.Add(x);
            node = child;
        }
    }
}

/// <summary>
/// Lossless speculative generation on a token tree: a drafter proposes a tree under the pending token, one forward
/// pass verifies every node, and the walk from the root accepts a child only when it carries the token the target
/// itself chooses at that node (argmax, or a sample from the same processed distribution with the same random
/// stream as plain sampling). The output is therefore the plain decoder's output, produced in fewer passes.
/// </summary>
public static class SpeculativeGenerator
{
    /// <summary>
    /// Compiles what every speculative run compiles before its first token and plain decoding does not: the generator's
    /// state machine (3 KB of IL, compiled fully optimised at once since it has loops: QuickJitForLoops is off), the step
    /// planner's set-up, the evidence index and the cost model's lookup. Called on another core while the model loads
    /// (`pare run`), it takes that compilation off the path to the first token: out of domain, where `auto` decodes
    /// plainly, it was what a fresh process's prompt pass cost `auto` more than `--draft none` (docs/speculative.md,
    /// session 11). Compiling twice is not possible: a method being compiled elsewhere is waited for. Thread-safe.
    /// </summary>
    public static void Prepare()
    {
        const BindingFlags all = BindingFlags.Public | BindingFlags.NonPublic | BindingFlags.Instance | BindingFlags.Static | BindingFlags.DeclaredOnly;
        // PrepareMethod passes over the iterator's MoveNext (measured: nothing compiled), so run it instead: an empty prompt
        // is refused by its first statement, before anything else is touched (the fault stays in the returned task).
        _ = GenerateAsync(null!, [], new GenerationOptions(), null!, new SpeculativeOptions(), new SpeculationStats()).GetAsyncEnumerator().MoveNextAsync();
        foreach (var c in typeof(StepPlanner).GetConstructors(all)) RuntimeHelpers.PrepareMethod(c.MethodHandle);
        foreach (var c in typeof(TreeSizer).GetConstructors(all)) RuntimeHelpers.PrepareMethod(c.MethodHandle);
        foreach (var m in typeof(NgramIndex).GetMethods(all)) if (m.Name == nameof(NgramIndex.Latest)) RuntimeHelpers.PrepareMethod(m.MethodHandle);
        RuntimeHelpers.PrepareMethod(typeof(CostModel).GetMethod(nameof(CostModel.Time))!.MethodHandle);
    }

    public static async IAsyncEnumerable<GeneratedToken> GenerateAsync(InferenceSession session, IReadOnlyList<int> prompt,
        GenerationOptions options, IDrafter drafter, SpeculativeOptions spec, SpeculationStats stats,
        [EnumeratorCancellation] CancellationToken ct = default)
    {
        if (prompt.Count == 0) throw new PareException("the prompt is empty: give at least one token");
        if (spec.MaxTreeSize < 1) throw new PareException($"max tree size must be at least 1 (got {spec.MaxTreeSize})");
        var tok = session.Model.Tokenizer;
        int vocab = session.Model.Config.VocabSize;
        var sampler = new Sampler(options.Sampling);
        var decoder = tok != null ? new StreamingDecoder(tok) : null;
        var history = new List<int>(prompt);
        await Task.Yield();

        // Prefill. Seeding the drafter needs the logits of every prompt position, an LM-head pass per position that
        // plain decoding does not pay (it doubles the prefill on pare-ref-draft), so by default only the last is computed.
        float[] all = spec.SeedFromPrompt ? session.ForwardAll([.. prompt]) : session.Forward([.. prompt]);
        // Rates, cost model, sizers and evidence: what each step drafts (StepPlanner).
        var plan = new StepPlanner(session, spec, drafter, history, prompt.Count + Math.Min(options.MaxTokens, session.ContextLength));
        var rates = plan.Rates;
        int next = sampler.Sample(all.AsSpan(all.Length - vocab), history);
        int emitted = 0;
        var stopper = new StopMatcher(options.StopSequences);
        bool started = false, stopped = false;
        // Plain steps reuse the prompt pass's row, as plain decoding does (unless the drafter is seeded from every prompt
        // position at its first draft): a run that never drafts allocates nothing more for logits.
        float[] logitsBuffer = spec.SeedFromPrompt ? [] : all;
        var one = new int[1];
        var path = new List<int>();
        var chosen = new List<int>();
        // A model drafter under sampling drafts from its own distribution q and is verified by speculative sampling
        // (SpeculativeSampling); its randomness is its own stream, seeded from the sampling seed.
        var modelDrafter = options.Sampling.Temperature > 0 ? drafter as IModelDrafter : null;
        var specRng = new Random(unchecked((int)(options.Sampling.Seed * 0x9E3779B97F4A7C15UL >> 33)) ^ 0x5bd1e995);
        // The walk over a tree, made at the first draft.
        TreeWalk? walk = null;
        while (true)
        {
            ct.ThrowIfCancellationRequested();
            if (options.StopAtEos && tok?.EosId == next) break;
            history.Add(next);
            emitted++;
            var (text, stop) = stopper.Push(decoder?.Push(next) ?? "");
            yield return new GeneratedToken(next, text);
            // As plain decoding: stop once the cache is full (the pending token needs one free position).
            if (stop || emitted >= options.MaxTokens || session.Position >= session.ContextLength) break;

            // Draft under the pending token, within the remaining context and token budget; a tree of one is a plain step.
            double t0 = rates?.Now() ?? 0;
            // A step with nothing to draft from while plain decoding measures faster is plain at once (StepPlanner.Idle).
            int budget = plan.Idle(history) ? 1 : plan.Budget(history, Math.Min(session.ContextLength - session.Position, options.MaxTokens - emitted + 1));
            bool drafted = budget > 1;
            // The drafter starts at its first draft (its set-up is decoding time, as it should be, but only when it drafts):
            // it has seen nothing since the prompt, and plain steps do not update it. The set-up is not part of the step's
            // measured rate (setup, below): a first step charged with it (`auto:FILE`'s arms and Token Recycling's matrix: 1.2
            // ms in bench-spec's first prompt, session 15) measured slower than plain decoding, the next steps went plain, and
            // with the default arm behind, other arms' first trials came early and took over for a few steps.
            // (From t0: the planning before it is a few microseconds, and one clock read fewer.)
            double setup = 0;
            if (drafted && !started)
            {
                drafter.Start(prompt, spec.SeedFromPrompt ? all : [], vocab);
                started = true;
                setup = (rates?.Now() ?? 0) - t0;
            }
            var sampled = drafted && modelDrafter != null ? modelDrafter.DraftSampled(history, budget, options.Sampling, specRng) : null;
            // A plain step has no tree (tree == null): one node, the pending token.
            var tree = sampled?.Tree ?? (drafted ? drafter.Draft(history, budget) : null);
            // Nothing to draft from (no match, no row yet): a plain step, not a probe.
            bool empty = drafted && tree!.Count < 2;
            if (empty) { drafted = false; sampled = null; rates?.Skipped(); stats.EmptyDrafts++; }
            int nodes = tree?.Count ?? 1;
            // A plain step is plain decoding's own pass (it moves Position itself); a tree is verified and committed below.
            // Logits go to one reused buffer: a fresh (nodes x vocab) array per step would be a large-object allocation each
            // time. It holds one row until the first tree (plain steps need no more).
            if (logitsBuffer.Length < nodes * vocab) logitsBuffer = new float[(nodes > 1 ? Math.Max(nodes, spec.MaxTreeSize) : 1) * vocab];
            var logits = logitsBuffer;
            if (drafted) session.ForwardTree(tree!, logits); else { one[0] = next; session.Forward(one, logits.AsSpan(0, vocab), allPositions: false); }
            stats.Steps++;
            if (!drafted) stats.PlainSteps++;
            stats.NodesEvaluated += nodes;

            // Choose as plain decoding would: a plain step samples the pending token's row; a tree is walked (TreeWalk).
            path.Clear(); path.Add(0);
            chosen.Clear();
            if (tree == null) chosen.Add(sampler.Sample(logits.AsSpan(0, vocab), history));
            else (walk ??= new TreeWalk(sampler, options, vocab, tok?.EosId, specRng, modelDrafter != null)).Walk(tree, sampled, logits, history, path, chosen, emitted);
            if (drafted) session.CommitTree(path);
            if (drafted && path.Count == 1) plan.Failed();
            stats.Tokens += chosen.Count;
            if (drafted) stats.Drafted(plan.Class, plan.Arm, chosen.Count, nodes);
            else if (plan.Sizer == null && budget == 1) stats.IdleSteps++;
            plan.Observe(nodes, path);
            double stepSeconds = (rates?.Now() ?? 0) - t0;

            // Emit all but the last choice now; the last becomes the next pending token (its KV is not in the cache yet).
            for (int i = 0; i < chosen.Count - 1; i++)
            {
                int t = chosen[i];
                emitted++;
                var (tx, st) = stopper.Push(decoder?.Push(t) ?? "");
                yield return new GeneratedToken(t, tx);
                if (st) { stopped = true; break; }
            }
            if (stopped) break;
            // Plain steps cost what plain decoding costs: the drafters catch up on history at their next update.
            double t1 = rates?.Now() ?? 0;
            // An empty draft still shows the drafter the root's logits (Token Recycling fills its first rows from them).
            if (drafted || empty) drafter.Update(history, tree!, logits.AsSpan(0, nodes * vocab), vocab);
            if (rates != null)
            {
                double seconds = stepSeconds + (rates.Now() - t1) - setup;
                if (drafted) { rates.Observe(true, chosen.Count, seconds); plan.Sizer?.Timed(nodes, chosen.Count, seconds); stats.ClassSeconds[Math.Clamp(plan.Class, 0, 2)] += seconds; }
                else { rates.ObservePlain(seconds); stats.PlainSeconds += seconds; }
            }
            next = chosen[^1];
        }
        // As plain decoding: flush a partial character held by the decoder, unless a stop sequence ended the text.
        if (decoder != null && !stopper.Stopped)
        {
            var (tail, _) = stopper.Push(decoder.Flush());
            tail += stopper.Flush();
            if (tail.Length > 0) yield return new GeneratedToken(-1, tail);
        }
    }
}
