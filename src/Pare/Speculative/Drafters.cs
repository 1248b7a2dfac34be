using Pare.Models;

namespace Pare.Speculative;

/// <summary>
/// Several drafters in one tree: each adds its draft under the shared root, in order, until the budget is used; every
/// part but the last drafts into at most <paramref name="share"/> of the budget left (default half, so one long wrong
/// chain cannot crowd out the rest; RASD's retrieval tree). `auto` is prompt lookup on matches of 2-3 tokens first
/// (exact quotes are the surest drafts) with the whole budget to use, then Token Recycling filling what is left
/// (everything when prompt lookup finds no match).
/// </summary>
public sealed class CompositeDrafter(string name, double share, params IDrafter[] parts) : IDrafter
{
    /// <summary>A composite whose parts but the last draft into at most half of the budget left.</summary>
    public CompositeDrafter(string name, params IDrafter[] parts) : this(name, 0.5, parts) { }

    public string Name { get; } = name;

    /// <summary>
    /// Whether the last part fills the budget left by the others (default); false: it drafts only where they drafted
    /// nothing. Set per step from measurement (<see cref="TreeSizer.Fill"/>).
    /// </summary>
    public bool Fill { get; set; } = true;

    /// <summary>The nodes of the last <see cref="Draft"/> that came before the last part's (root included; 1 = none).</summary>
    public int Lead { get; private set; } = 1;

    public void Start(IReadOnlyList<int> prompt, ReadOnlySpan<float> promptLogits, int vocab)
    {
        foreach (var p in parts) p.Start(prompt, promptLogits, vocab);
    }

    public DraftTree Draft(IReadOnlyList<int> history, int budget)
    {
        var tree = new DraftTree(history[^1]);
        Lead = 0;
        for (int k = 0; k < parts.Length; k++)
        {
            if (k == parts.Length - 1) Lead = tree.Count;
            if (tree.Count >= budget || (k == parts.Length - 1 && k > 0 && !Fill && tree.Count > 1)) break;
            int room = budget - tree.Count;
            var d = parts[k].Draft(history, k == parts.Length - 1 ? budget : 1 + Math.Max(1, (int)(room * share)));
            // Re-add d's nodes under the matching nodes of tree (shared prefixes merge).
            var map = new int[d.Count];
            for (int i = 1; i < d.Count && tree.Count < budget; i++)
                map[i] = tree.Add(d.Tokens[i], map[d.Parents[i]]);
        }
        // The budget was used before the last part: the whole tree is the first parts'.
        if (Lead == 0) Lead = tree.Count;
        return tree;
    }

    public void Update(IReadOnlyList<int> history, DraftTree tree, ReadOnlySpan<float> logits, int vocab)
    {
        foreach (var p in parts) p.Update(history, tree, logits, vocab);
    }
}

/// <summary>The drafters by their command-line names.</summary>
public static class Drafters
{
    public static readonly string[] Names = ["none", "pld", "recycle", "lookahead", "aded", "auto"];

    /// <summary>The drafters that draft with a model: a draft model file (same tokenizer as the target), or the target itself with layers skipped.</summary>
    public static readonly string[] ModelForms = ["auto:FILE", "model:FILE", "tree:FILE", "dyspec:FILE", "rasd:FILE", "self[:LAYERS]"];

    /// <summary>A fresh drafter; null for "none" (plain decoding).</summary>
    public static IDrafter? Create(string name) => name switch
    {
        "none" => null,
        "pld" => new PromptLookup(),
        "recycle" => new TokenRecycling(),
        "lookahead" => new LookaheadTrie(),
        "aded" => new Aded(),
        // Prompt lookup may fill the whole tree: a half share (the composite's default) cost `auto` 5-10% against prompt
        // lookup alone (docs/speculative.md, session 8).
        "auto" => new CompositeDrafter("auto", 1.0, new PromptLookup(minNgram: 2), new TokenRecycling()),
        _ => throw new PareException($"unknown drafter '{name}' (choose one of: {string.Join(", ", Names.Concat(ModelForms))})"),
    };

    /// <summary>Whether <paramref name="spec"/> names a model drafter (auto:, model:, tree:, dyspec:, rasd:, self).</summary>
    public static bool IsModelDrafter(string spec) =>
        spec == "self" || spec.StartsWith("self:", StringComparison.Ordinal) || spec.StartsWith("model:", StringComparison.Ordinal)
        || spec.StartsWith("auto:", StringComparison.Ordinal)
        || spec.StartsWith("tree:", StringComparison.Ordinal) || spec.StartsWith("dyspec:", StringComparison.Ordinal) || spec.StartsWith("rasd:", StringComparison.Ordinal);

    /// <summary>
    /// A fresh drafter for speculation on <paramref name="target"/>: any name of <see cref="Create(string)"/>, or a model
    /// drafter: auto:FILE (<see cref="DrafterChoice"/>: the fastest by measurement of auto, ADED, Lookahead, DySpec and the
    /// chain on FILE), model:FILE (chain), tree:FILE (fixed tree), dyspec:FILE, rasd:FILE, self[:LAYERS] (chain of the target
    /// with only LAYERS blocks, default half). Its draft session is as long as the target's context. Dispose the
    /// drafter's <see cref="IModelDrafter.Runner"/> when done.
    /// </summary>
    public static IDrafter? Create(string spec, InferenceSession target)
    {
        if (!IsModelDrafter(spec)) return Create(spec);
        int colon = spec.IndexOf(':');
        string kind = colon < 0 ? spec : spec[..colon], arg = colon < 0 ? "" : spec[(colon + 1)..];
        if (kind == "self")
        {
            int layers = SelfDraft.DefaultLayers(target.Model);
            if (arg.Length > 0 && (!int.TryParse(arg, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out layers) || layers < 1 || layers >= target.Model.Config.Layers))
                throw new PareException($"self:LAYERS keeps 1 to {target.Model.Config.Layers - 1} of the model's {target.Model.Config.Layers} layers (got '{arg}')");
            var self = new DraftModelRunner(SelfDraft.LayerSkipped(target.Model, layers), target.ContextLength, target.Threads);
            return new DraftChain(self, $"self:{layers}");
        }
        if (arg.Length == 0) throw new PareException($"drafter '{kind}' needs a draft model file: {kind}:FILE");
        if (!File.Exists(arg)) throw new PareException($"draft model not found: {arg}");
        var m = LlamaModel.Load(arg);
        if (m.Config.VocabSize != target.Model.Config.VocabSize)
        {
            m.Dispose();
            throw new PareException($"{arg}: the draft model's vocabulary ({m.Config.VocabSize}) is not the target's ({target.Model.Config.VocabSize}); it needs the same tokenizer");
        }
        // auto:FILE's model arms draft now and then: their session catches up on a window of recent text, not all of it.
        var runner = new DraftModelRunner(m, target.ContextLength, target.Threads, ownsModel: true) { CatchUpWindow = kind == "auto" ? DrafterChoice.CatchUpWindow : 0 };
        return kind switch
        {
            "model" => new DraftChain(runner),
            "tree" => new FixedDraftTree(runner),
            "dyspec" => new DySpec(runner),
            "auto" => new DrafterChoice(spec, runner, Create("auto")!, new Aded(), new LookaheadTrie(), new DySpec(runner), new DraftChain(runner)),
            _ => new Rasd(runner),
        };
    }
}
