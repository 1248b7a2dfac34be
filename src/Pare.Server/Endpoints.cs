using System.Text;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;

namespace Pare.Server;

/// <summary>The HTTP surface: /health, /v1/models, /v1/chat/completions, /v1/completions.</summary>
internal static class Endpoints
{
    public static void Map(IEndpointRouteBuilder app, ServerState state)
    {
        app.MapGet("/health", () => Results.Json(new { status = "ok", slots_idle = state.Slots.Total - state.Slots.Busy, slots_processing = state.Slots.Busy, slots_waiting = state.Slots.Waiting }, Json.Options));
        app.MapGet("/v1/models", () => Results.Json(new
        {
            @object = "list",
            data = state.Models.Select(m => new
            {
                id = m.Id, @object = "model", created = m.Created, owned_by = "pare",
                meta = new { n_ctx = m.ContextLength, n_vocab = m.Model.Config.VocabSize, n_params = m.Model.ParameterCount, chat_template = m.Template.Name },
            }),
        }, Json.Options));
        app.MapGet("/", () => Results.Content(Playground.Html, "text/html; charset=utf-8"));
        app.MapGet("/slots", () => Results.Json(state.Stats(), Json.Options));
        app.MapPost("/v1/chat/completions", (HttpContext ctx) => Complete(ctx, state, chat: true));
        app.MapPost("/v1/completions", (HttpContext ctx) => Complete(ctx, state, chat: false));
    }

    static async Task Complete(HttpContext ctx, ServerState state, bool chat)
    {
        var ct = ctx.RequestAborted;
        var body = await ReadBody(ctx, state.Options.MaxRequestBytes);
        var request = RequestParser.Parse(body, chat);
        var model = state.Find(request.Model);
        var job = PreparedCompletion.Create(model, request, state.Options);
        var lease = await state.Slots.AcquireAsync(ct);
        // When the client goes away: note the moment, so the slot's release time after a disconnect can be reported.
        long abortedAt = 0;
        using var onAbort = ct.Register(() => Volatile.Write(ref abortedAt, System.Diagnostics.Stopwatch.GetTimestamp()));
        try
        {
            await Run(ctx, state, chat, request, model, job, lease, ct);
        }
        finally
        {
            // Count the request before freeing its slot, so whoever sees the slot idle also sees it counted.
            long at = Volatile.Read(ref abortedAt);
            state.Finished(at != 0 ? System.Diagnostics.Stopwatch.GetElapsedTime(at).TotalMilliseconds : null);
            lease.Dispose();
        }
    }

    static async Task Run(HttpContext ctx, ServerState state, bool chat, CompletionRequest request, ServedModel model, PreparedCompletion job, SlotPool.Lease lease, CancellationToken ct)
    {
        string id = (chat ? "chatcmpl-" : "cmpl-") + Guid.NewGuid().ToString("N")[..24];
        long created = DateTimeOffset.UtcNow.ToUnixTimeSeconds();
        string kind = chat ? "chat.completion" : "text_completion";
        if (!request.Stream)
        {
            var text = new StringBuilder();
            var outcome = await job.RunAsync(lease.Slot, state.Options, s => { text.Append(s); return Task.CompletedTask; }, ct);
            object choice = chat
                ? new { index = 0, message = new { role = "assistant", content = text.ToString() }, finish_reason = outcome.FinishReason, logprobs = (object?)null }
                : new { index = 0, text = text.ToString(), finish_reason = outcome.FinishReason, logprobs = (object?)null };
            await Results.Json(new { id, @object = kind, created, model = model.Id, choices = new[] { choice }, usage = Usage(outcome), timings = outcome.Timings }, Json.Options).ExecuteAsync(ctx);
            return;
        }

        // Stream: a role chunk (chat), a chunk per piece of text, the finish chunk, the usage chunk if asked, [DONE].
        string chunkKind = chat ? "chat.completion.chunk" : "text_completion";
        object Chunk(object? delta, string? text) => chat
            ? new { id, @object = chunkKind, created, model = model.Id, choices = new[] { new { index = 0, delta, finish_reason = (string?)null, logprobs = (object?)null } } }
            : new { id, @object = chunkKind, created, model = model.Id, choices = new[] { new { index = 0, text, finish_reason = (string?)null, logprobs = (object?)null } } };
        Sse.Start(ctx.Response);
        if (chat) await Sse.Send(ctx.Response, Chunk(new { role = "assistant", content = "" }, null), ct);
        var result = await job.RunAsync(lease.Slot, state.Options, piece => Sse.Send(ctx.Response, Chunk(new { content = piece }, piece), ct), ct);
        // Without stream_options.include_usage, usage rides on the finish chunk (as llama-server does).
        object finishChunk = chat
            ? new { id, @object = chunkKind, created, model = model.Id, choices = new[] { new { index = 0, delta = new { }, finish_reason = result.FinishReason, logprobs = (object?)null } }, timings = result.Timings, usage = request.IncludeUsage ? null : Usage(result) }
            : new { id, @object = chunkKind, created, model = model.Id, choices = new[] { new { index = 0, text = "", finish_reason = result.FinishReason, logprobs = (object?)null } }, timings = result.Timings, usage = request.IncludeUsage ? null : Usage(result) };
        await Sse.Send(ctx.Response, finishChunk, ct);
        if (request.IncludeUsage)
            await Sse.Send(ctx.Response, new { id, @object = chunkKind, created, model = model.Id, choices = Array.Empty<object>(), usage = Usage(result) }, ct);
        await Sse.Done(ctx.Response, ct);
    }

    static object Usage(CompletionOutcome o) => new { prompt_tokens = o.PromptTokens, completion_tokens = o.CompletionTokens, total_tokens = o.PromptTokens + o.CompletionTokens };

    /// <summary>The body, at most <paramref name="limit"/> bytes (413 beyond: by Content-Length up front, or while reading).</summary>
    static async Task<ReadOnlyMemory<byte>> ReadBody(HttpContext ctx, long limit)
    {
        if (ctx.Request.ContentLength > limit) throw TooLarge(limit);
        using var ms = new MemoryStream();
        var buffer = new byte[16384];
        while (true)
        {
            int n;
            try { n = await ctx.Request.Body.ReadAsync(buffer, ctx.RequestAborted); }
            catch (BadHttpRequestException e) when (e.StatusCode == StatusCodes.Status413PayloadTooLarge) { throw TooLarge(limit); }
            if (n == 0) break;
            if (ms.Length + n > limit) throw TooLarge(limit);
            ms.Write(buffer, 0, n);
        }
        return ms.ToArray();
    }

    static ApiError TooLarge(long limit) => new(413, $"the request body is larger than the server's limit of {limit} bytes", "invalid_request_error");
}
