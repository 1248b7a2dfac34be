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
    /// lookup has a quote to copy; elsewhere only Token Recycling's or a trie's guesses), so one running estimate per
    /// budget over all steps made `auto` verify trees too large for the guesses and too small for the quotes. Default true.
    /// </summary>
    public bool SizeByContext { get; init; } = true;
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

        var rates = spec.Adaptive && spec.MeasuredFallback ? spec.Rates ?? new StepRates(spec) : null;
        // Prefill. Seeding the drafter needs the logits of every prompt position, an LM-head pass per position that
        // plain decoding does not pay (it doubles the prefill on pare-ref-draft), so by default only the last is computed.
        float[] all = spec.SeedFromPrompt ? session.ForwardAll([.. prompt]) : session.Forward([.. prompt]);
        var costs = spec.Costs ?? (spec.Adaptive ? CostModel.Measure(session, CostModel.DefaultSizes.Where(n => n <= spec.MaxTreeSize)) : null);
        // The sizer's estimates travel with shared rates (same session and drafter): a new prompt starts from what earlier ones measured.
        // A choice among drafters (auto:FILE) has one estimate and one sizer per arm, in the same rates.
        var choice = drafter as DrafterChoice;
        int arms = choice?.Arms.Count ?? 1;
        rates?.SetArms(arms);
        // One sizer per arm and context class (SizeByContext): class 0 = the last EvidenceNgram tokens occurred before,
        // 1 = only the last EvidenceNgram - 1 did (with a trigram or longer), last = neither.
        int classes = spec.SizeByContext && spec.EvidenceNgram > 0 ? (spec.EvidenceNgram >= 3 ? 3 : 2) : 1;
        var sizers = rates?.Sizers is { } shared && shared.Length == arms * classes && shared.All(z => z.Fits(costs, spec)) ? shared
            : [.. Enumerable.Range(0, arms * classes).Select(_ => new TreeSizer(costs, spec))];
        if (rates != null) rates.Sizers = sizers;
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
        // Sized for prompt + output up front: no rehash (and no first-call compilation of one) while decoding.
        var evidence = spec.EvidenceNgram > 0 ? new NgramIndex(spec.EvidenceNgram, prompt.Count + Math.Min(options.MaxTokens, session.ContextLength)) : null;
        // Index the prompt with the prompt (before the first token), not inside the first decoding step.
        evidence?.Latest(history);
        // The shorter match of class 1, looked up only at steps that may draft (it catches up on the tokens in between then).
        var shorter = classes == 3 ? new NgramIndex(spec.EvidenceNgram - 1, prompt.Count + Math.Min(options.MaxTokens, session.ContextLength)) : null;
        int evidenceSteps = 0;
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
            // Probes wait for evidence: steps whose last EvidenceNgram tokens occurred before (O(1) per token: an incremental
            // index), EvidenceSteps of them since the last draft that accepted nothing (one repeated "of the" is no loop).
            bool match = evidence != null && evidence.Latest(history) >= 0;
            if (match) evidenceSteps++;
            bool mayProbe = evidence == null || (match && evidenceSteps >= spec.EvidenceSteps);
            int budget = 1;
            TreeSizer? sizer = null;
            // Nothing to draft from while plain decoding measures faster: no probe may be made (they wait for evidence) and
            // the rates would veto any other tree, so the step is plain without asking the sizer or the rates (their
            // schedules count it). Out of domain nearly every step is such a step: it then runs only plain decoding's code
            // and the evidence index, and the drafter, the tree path and their first-call compilation wait for a draft.
            if (!mayProbe && rates != null && !rates.Ahead)
            {
                rates.Idle();
                sizers[rates.Arm * classes + (match ? 0 : classes - 1)].Idle();
            }
            else
            {
                int arm = rates?.ChooseArm() ?? 0;
                if (choice != null) choice.Current = arm;
                int cls = match || classes == 1 ? 0 : shorter != null && shorter.Latest(history) >= 0 ? 1 : classes - 1;
                sizer = sizers[arm * classes + cls];
                // A class without the evidence n-gram is only reached while speculation measures faster (or without the measured
                // fallback): its sizer's own cheap probes may not wait for a match that its steps by definition lack.
                int want = sizer.Choose(mayProbe || (cls > 0 && (rates == null || rates.Ahead)));
                // Re-measuring a losing arm whose own sizer says plain: its smallest tree, a probe of that arm.
                if (rates != null && rates.Remeasure && want <= 1) want = sizer.Smallest;
                budget = Math.Min(want, Math.Min(session.ContextLength - session.Position, options.MaxTokens - emitted + 1));
                // The measured rates may veto a tree, but not the sizer's cheap probes (they are how it notices text turning predictable).
                if (budget > 1 && !sizer.Probing && rates != null)
                {
                    if (!rates.Speculate(mayProbe)) budget = 1;
                    // A probe while plain decoding measures faster is as small as the sizer allows: it only has to show that
                    // drafts are accepted again (then speculation wins and the sizer chooses freely), and a failed one costs ~T(2) - T(1).
                    else if (rates.Probe) budget = Math.Min(budget, sizer.Smallest);
                }
            }
            bool drafted = budget > 1;
            // The drafter starts at its first draft (its set-up is decoding time, as it should be, but only when it drafts):
            // it has seen nothing since the prompt, and plain steps do not update it.
            if (drafted && !started) { drafter.Start(prompt, spec.SeedFromPrompt ? all : [], vocab); started = true; }
            var sampled = drafted && modelDrafter != null ? modelDrafter.DraftSampled(history, budget, options.Sampling, specRng) : null;
            // A plain step has no tree (tree == null): one node, the pending token.
            var tree = sampled?.Tree ?? (drafted ? drafter.Draft(history, budget) : null);
            // Nothing to draft from (no match, no row yet): a plain step, not a probe.
            bool empty = drafted && tree!.Count < 2;
            if (empty) { drafted = false; sampled = null; rates?.Skipped(); }
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
            if (drafted && path.Count == 1) evidenceSteps = 0;
            stats.Tokens += chosen.Count;
            sizer?.Observe(nodes, path);
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
                double seconds = stepSeconds + (rates.Now() - t1);
                if (drafted) rates.Observe(true, chosen.Count, seconds); else rates.ObservePlain(seconds);
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
