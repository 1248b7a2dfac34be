using System.Diagnostics;
using Pare.Generation;
using Pare.Speculative;

namespace Pare.Server;

/// <summary>What a finished generation reports: counts, why it ended, and timings.</summary>
internal sealed record CompletionOutcome(int PromptTokens, int CompletionTokens, string FinishReason, object Timings);

/// <summary>A request made ready to run: the prompt tokens and the generation options, checked against the context.</summary>
internal sealed class PreparedCompletion
{
    public required ServedModel Model { get; init; }
    public required int[] Prompt { get; init; }
    public required GenerationOptions Options { get; init; }

    /// <summary>Tokenizes and checks the request before it takes a slot: a prompt that fills the context is a 400.</summary>
    public static PreparedCompletion Create(ServedModel model, CompletionRequest r, ServerOptions server)
    {
        var tok = model.Model.Tokenizer!;
        string text = r.Chat ? model.Template.Render(r.Messages) : r.Prompt;
        // Far too long to fit whatever the tokenization: refuse before spending time on encoding it.
        if ((long)System.Text.Encoding.UTF8.GetByteCount(text) > (long)model.ContextLength * model.MaxTokenBytes)
            throw ApiError.BadRequest($"the prompt is longer than the context of {model.ContextLength} tokens", r.Chat ? "messages" : "prompt");
        int[] prompt = tok.Encode(text, addSpecial: true, parseSpecial: r.Chat && model.Template.UsesSpecialTokens);
        if (prompt.Length == 0) throw ApiError.BadRequest("the prompt is empty", r.Chat ? "messages" : "prompt");
        int room = model.ContextLength - prompt.Length;
        if (room < 1)
            throw ApiError.BadRequest($"the prompt has {prompt.Length} tokens but the context holds {model.ContextLength} (and needs room for at least one new token)",
                r.Chat ? "messages" : "prompt");
        SamplingOptions sampling;
        try { sampling = r.Sampling(); sampling.Validate(); }
        catch (PareException e) { throw ApiError.BadRequest(e.Message); }
        var stops = r.Chat ? [.. r.Stop, .. model.Template.StopSequences] : r.Stop;
        return new PreparedCompletion
        {
            Model = model,
            Prompt = prompt,
            Options = new GenerationOptions
            {
                MaxTokens = Math.Min(r.MaxTokens ?? server.DefaultMaxTokens, room),
                Sampling = sampling,
                StopSequences = stops,
            },
        };
    }

    /// <summary>Generates on the slot's session, handing each piece of text to <paramref name="onText"/> as it is decided.</summary>
    public async Task<CompletionOutcome> RunAsync(Slot slot, ServerOptions server, Func<string, Task> onText, CancellationToken ct)
    {
        var spec = new SpeculativeOptions { MaxTreeSize = server.MaxTree, Costs = Model.Costs };
        var (session, rates) = slot.For(Model, spec);
        var drafter = Drafters.Create(server.Draft);
        var stats = new SpeculationStats();
        var stream = drafter == null
            ? Generator.GenerateAsync(session, Prompt, Options, ct)
            : SpeculativeGenerator.GenerateAsync(session, Prompt, Options, drafter, spec with { Rates = rates }, stats, ct);
        var sw = Stopwatch.StartNew();
        double firstMs = 0;
        int count = 0;
        await foreach (var t in stream.WithCancellation(ct))
        {
            if (t.Id >= 0 && count++ == 0) firstMs = sw.Elapsed.TotalMilliseconds;
            if (t.Text.Length > 0) await onText(t.Text);
        }
        double totalMs = sw.Elapsed.TotalMilliseconds;
        // Ended by the limit (the request's or the context's) = "length"; by EOS or a stop sequence = "stop".
        string finish = count >= Options.MaxTokens ? "length" : "stop";
        double predictedMs = Math.Max(0, totalMs - firstMs);
        int predicted = Math.Max(0, count - 1); // the first token's time is the prompt's (as pare run reports it)
        var timings = new
        {
            prompt_n = Prompt.Length,
            prompt_ms = firstMs,
            prompt_per_second = firstMs > 0 ? Prompt.Length / (firstMs / 1000) : 0,
            predicted_n = count,
            predicted_ms = predictedMs,
            predicted_per_second = predictedMs > 0 ? predicted / (predictedMs / 1000) : 0,
            draft = server.Draft,
            speculative_steps = drafter == null ? predicted : stats.Steps,
            mean_accepted = drafter == null ? 1.0 : stats.MeanAccepted,
        };
        return new CompletionOutcome(Prompt.Length, count, finish, timings);
    }
}
