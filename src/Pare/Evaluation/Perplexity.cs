using Pare.Models;

namespace Pare.Evaluation;

/// <summary>Options of <see cref="Perplexity.Evaluate"/>.</summary>
public sealed record PerplexityOptions
{
    /// <summary>Window length L in tokens; null = the model's context length.</summary>
    public int? Context { get; init; }
    /// <summary>Distance between window starts; null = L (non-overlapping windows). A smaller stride gives a sliding window
    /// where each window scores only the tokens the previous windows did not.</summary>
    public int? Stride { get; init; }
    /// <summary>Kernel threads; default all cores.</summary>
    public int Threads { get; init; } = Environment.ProcessorCount;
    /// <summary>KV cache value type (default F32, exact).</summary>
    public Pare.Kernels.KvValueType KvType { get; init; } = Pare.Kernels.KvValueType.F32;
    /// <summary>KV policy for a session of the given context (null = full cache). With a policy each window is evaluated in
    /// chunks of <see cref="PolicyChunk"/> tokens, so that the policy acts while the window fills (tokens of one chunk see
    /// each other in full).</summary>
    public Func<int, Pare.Models.Kv.IKvPolicy>? KvPolicy { get; init; }
    /// <summary>Tokens per forward pass under a KV policy.</summary>
    public int PolicyChunk { get; init; } = 16;
}

/// <summary>Perplexity = exp(mean negative log-likelihood in nats) over <see cref="Tokens"/> predicted tokens.</summary>
public sealed record PerplexityResult(double Ppl, double MeanNll, long Tokens, int Windows);

/// <summary>
/// Perplexity of a causal language model over a token sequence, the standard protocol: the text is cut into windows of L
/// tokens; each window is evaluated from an empty cache and predicts its tokens 1..L−1 from their prefix inside the window
/// (log-softmax in double). With stride S = L the windows do not overlap, and the last, shorter window counts too (when it
/// has at least 2 tokens). With S &lt; L, window k starts at k·S and scores only the positions not scored by earlier windows,
/// so every token after the first is scored exactly once, with at least L − S tokens of context (except near the start).
/// </summary>
public static class Perplexity
{
    public static PerplexityResult Evaluate(LlamaModel model, ReadOnlySpan<int> tokens, PerplexityOptions? options = null, IProgress<double>? progress = null,
        CancellationToken ct = default)
    {
        options ??= new PerplexityOptions();
        int L = options.Context ?? model.Config.ContextLength;
        int S = options.Stride ?? L;
        if (L < 2) throw new PareException($"context must be at least 2 tokens (got {L})");
        if (S < 1 || S > L) throw new PareException($"stride must be in 1..{L} (got {S})");
        if (tokens.Length < 2) throw new PareException($"the text has {tokens.Length} tokens; perplexity needs at least 2");
        // No window is longer than the text: a long L on a short text needs no cache of L.
        int sessionCtx = Math.Min(L, tokens.Length);
        var session = model.CreateSession(new SessionOptions { ContextLength = sessionCtx, Threads = options.Threads, KvType = options.KvType, KvPolicy = options.KvPolicy?.Invoke(sessionCtx) });
        int vocab = model.Config.VocabSize;
        double nll = 0;
        long count = 0;
        int windows = 0, scoredUpTo = 1; // positions < scoredUpTo are scored (position 0 never is)
        for (int start = 0; scoredUpTo < tokens.Length; start += S)
        {
            ct.ThrowIfCancellationRequested();
            int end = Math.Min(start + L, tokens.Length);
            int first = Math.Max(start + 1, scoredUpTo); // first target position this window scores
            if (end - start < 2 || first >= end) { if (end == tokens.Length) break; continue; }
            session.Reset();
            var window = tokens[start..end];
            float[] logits;
            if (options.KvPolicy == null) logits = session.ForwardAll(window);
            else
            {
                logits = new float[(long)window.Length * vocab];
                for (int c = 0; c < window.Length; c += options.PolicyChunk)
                {
                    int len = Math.Min(options.PolicyChunk, window.Length - c);
                    session.ForwardAll(window.Slice(c, len)).CopyTo(logits.AsSpan(c * vocab));
                }
            }
            for (int p = first; p < end; p++)
            {
                var row = logits.AsSpan((p - 1 - start) * vocab, vocab);
                nll += NegLogSoftmax(row, tokens[p]);
                count++;
            }
            scoredUpTo = end;
            windows++;
            progress?.Report((double)end / tokens.Length);
            if (end == tokens.Length) break;
        }
        double mean = nll / count;
        return new PerplexityResult(Math.Exp(mean), mean, count, windows);
    }

    /// <summary>−log softmax(z)[target] = logsumexp(z) − z[target], in double.</summary>
    public static double NegLogSoftmax(ReadOnlySpan<float> z, int target)
    {
        double max = double.NegativeInfinity;
        foreach (float v in z) max = Math.Max(max, v);
        double s = 0;
        foreach (float v in z) s += Math.Exp(v - max);
        return max + Math.Log(s) - z[target];
    }
}
