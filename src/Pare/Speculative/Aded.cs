namespace Pare.Speculative;

/// <summary>
/// ADED (Liu et al., 2024, "Adaptive Draft-Verification for Efficient Large Language Model Decoding"): a tri-gram
/// table approximates the model's next-token distribution and is updated from the model's own verified outputs as
/// decoding goes. Drafts grow a small tree best-first, scoring each candidate by its estimated path probability plus
/// an exploration bonus for continuations tried less often (an upper-confidence rule, as in MCTS), so the drafter
/// keeps learning which continuations the model actually takes.
/// </summary>
public sealed class Aded(double exploration = 0.3) : IHistoryLearner
{
    // (t-2, t-1) -> next-token counts, and a bigram fallback t-1 -> counts.
    readonly Dictionary<(int, int), Dictionary<int, int>> _tri = [];
    readonly Dictionary<int, Dictionary<int, int>> _bi = [];
    // How often each (context, token) was drafted: the exploration term's denominator.
    readonly Dictionary<(int, int, int), int> _tried = [];
    int _learned;

    public string Name => "aded";
    public double Exploration { get; } = exploration;

    public void Start(IReadOnlyList<int> prompt, ReadOnlySpan<float> promptLogits, int vocab)
    {
        _learned = 0;
        Learn(prompt, prompt.Count);
        // The model's own argmax after each prompt token is a verified output too.
        int n = promptLogits.Length / vocab;
        for (int i = 1; i < n && i < prompt.Count; i++)
            Add(prompt[i - 1], prompt[i], Generation.Sampler.ArgMax(promptLogits.Slice(i * vocab, vocab)));
    }

    public DraftTree Draft(IReadOnlyList<int> history, int budget)
    {
        var tree = new DraftTree(history[^1]);
        int prev = history.Count >= 2 ? history[^2] : -1;
        var frontier = new PriorityQueue<(int Parent, int Prev, int Token, double LogP), double>();
        Expand(0, prev, history[^1], 0.0);
        while (frontier.Count > 0 && tree.Count < budget)
        {
            var (parent, p2, token, logP) = frontier.Dequeue();
            int id = tree.Add(token, parent);
            var key = (p2, tree.Tokens[parent], token);
            _tried[key] = _tried.GetValueOrDefault(key) + 1;
            Expand(id, tree.Tokens[parent], token, logP);
        }
        return tree;

        void Expand(int node, int t2, int t1, double logP)
        {
            var counts = (t2 >= 0 && _tri.TryGetValue((t2, t1), out var c3)) ? c3 : _bi.GetValueOrDefault(t1);
            if (counts == null) return;
            double total = counts.Values.Sum();
            int visits = 0;
            foreach (var t in counts.Keys) visits += _tried.GetValueOrDefault((t2, t1, t));
            foreach (var (t, c) in counts)
            {
                double lp = logP + Math.Log(c / total);
                double bonus = Exploration * Math.Sqrt(Math.Log(1 + visits) / (1 + _tried.GetValueOrDefault((t2, t1, t))));
                if (lp < Math.Log(0.02)) continue; // unlikely drafts only cost verification time
                frontier.Enqueue((node, t2, t, lp), -(Math.Exp(lp) + bonus));
            }
        }
    }

    public void Update(IReadOnlyList<int> history, DraftTree tree, ReadOnlySpan<float> logits, int vocab)
    {
        Learn(history, history.Count);
        // Each verified node also tells what the model predicts after it.
        for (int i = 0; i < tree.Count; i++)
        {
            int parent = tree.Parents[i];
            int t2 = parent >= 0 ? tree.Tokens[parent] : (history.Count >= 2 ? history[^2] : -1);
            if (t2 >= 0) Add(t2, tree.Tokens[i], Generation.Sampler.ArgMax(logits.Slice(i * vocab, vocab)));
        }
    }

    /// <summary>The trigrams of the text not learnt yet (what the skipped trees' other nodes would have taught is lost).</summary>
    public void CatchUp(IReadOnlyList<int> history, int count) => Learn(history, count);

    void Learn(IReadOnlyList<int> history, int count)
    {
        if (count < _learned) _learned = 0;
        for (int i = Math.Max(2, _learned); i < count; i++) Add(history[i - 2], history[i - 1], history[i]);
        _learned = count;
    }

    void Add(int t2, int t1, int next)
    {
        if (!_tri.TryGetValue((t2, t1), out var c3)) _tri[(t2, t1)] = c3 = [];
        c3[next] = c3.GetValueOrDefault(next) + 1;
        if (!_bi.TryGetValue(t1, out var c2)) _bi[t1] = c2 = [];
        c2[next] = c2.GetValueOrDefault(next) + 1;
    }
}
