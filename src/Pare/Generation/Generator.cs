using System.Runtime.CompilerServices;
using Pare.Models;
using Pare.Tokenizers;

namespace Pare.Generation;

/// <summary>One generated token and the text it completed (may be empty while a UTF-8 character or a possible stop sequence is pending).</summary>
public readonly record struct GeneratedToken(int Id, string Text);

/// <summary>Autoregressive generation over an <see cref="InferenceSession"/>, streamed as it goes.</summary>
public static class Generator
{
    /// <summary>
    /// Evaluates the prompt, then samples up to <see cref="GenerationOptions.MaxTokens"/> tokens, yielding each as it is
    /// decided. Stops at EOS, at a stop sequence (whose text is withheld), at the token limit, at a full context,
    /// or when <paramref name="ct"/> is cancelled.
    /// </summary>
    public static async IAsyncEnumerable<GeneratedToken> GenerateAsync(InferenceSession session, IReadOnlyList<int> prompt,
        GenerationOptions options, [EnumeratorCancellation] CancellationToken ct = default)
    {
        if (prompt.Count == 0) throw new PareException("the prompt is empty: give at least one token");
        if (options.MaxTokens < 0) throw new PareException($"max tokens must be 0 or more (got {options.MaxTokens})");
        var tok = session.Model.Tokenizer;
        var sampler = new Sampler(options.Sampling);
        var decoder = tok != null ? new StreamingDecoder(tok) : null;
        var stops = new StopMatcher(options.StopSequences);
        var history = new List<int>(prompt);
        await Task.Yield();
        ct.ThrowIfCancellationRequested();
        var logits = session.Forward([.. prompt]);
        // One logits buffer and one token slot for the whole run: a fresh vocab-sized array per token is garbage
        // (a large-object allocation at a 128k vocabulary).
        var one = new int[1];
        for (int i = 0; i < options.MaxTokens; i++)
        {
            ct.ThrowIfCancellationRequested();
            int next = sampler.Sample(logits, history);
            if (options.StopAtEos && tok?.EosId == next) break;
            history.Add(next);
            string text = decoder?.Push(next) ?? "";
            var (emit, stop) = stops.Push(text);
            yield return new GeneratedToken(next, emit);
            if (stop || session.Position >= session.ContextLength) break;
            if (i + 1 < options.MaxTokens) { one[0] = next; session.Forward(one, logits, allPositions: false); }
        }
        if (decoder != null && !stops.Stopped)
        {
            var (tail, _) = stops.Push(decoder.Flush());
            tail += stops.Flush();
            if (tail.Length > 0) yield return new GeneratedToken(-1, tail);
        }
    }
}
