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
            if (i + 1 < options.MaxTokens) logits = session.Forward([next]);
        }
        if (decoder != null && !stops.Stopped)
        {
            var (tail, _) = stops.Push(decoder.Flush());
            tail += stops.Flush();
            if (tail.Length > 0) yield return new GeneratedToken(-1, tail);
        }
    }

    /// <summary>Holds back text that could be the start of a stop sequence until it is decided.</summary>
    sealed class StopMatcher(IReadOnlyList<string> stops)
    {
        string _pending = "";
        public bool Stopped { get; private set; }

        public (string Emit, bool Stop) Push(string text)
        {
            if (Stopped) return ("", true);
            _pending += text;
            int cut = -1;
            foreach (var s in stops)
            {
                if (s.Length == 0) continue;
                int at = _pending.IndexOf(s, StringComparison.Ordinal);
                if (at >= 0 && (cut < 0 || at < cut)) cut = at;
            }
            if (cut >= 0)
            {
                Stopped = true;
                var before = _pending[..cut];
                _pending = "";
                return (before, true);
            }
            int hold = 0;
            foreach (var s in stops)
                for (int k = Math.Min(s.Length - 1, _pending.Length); k > hold; k--)
                    if (_pending.EndsWith(s[..k], StringComparison.Ordinal)) { hold = k; break; }
            var emit = _pending[..^hold];
            _pending = _pending[^hold..];
            return (emit, false);
        }

        public string Flush()
        {
            var p = _pending;
            _pending = "";
            return p;
        }
    }
}
