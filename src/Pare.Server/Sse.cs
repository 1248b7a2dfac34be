using System.Text.Json;
using Microsoft.AspNetCore.Http;

namespace Pare.Server;

/// <summary>Server-sent events: one <c>data: JSON</c> line and a blank line per event, flushed at once; <c>data: [DONE]</c> ends.</summary>
internal static class Sse
{
    public static void Start(HttpResponse response)
    {
        response.StatusCode = 200;
        response.ContentType = "text/event-stream; charset=utf-8";
        response.Headers.CacheControl = "no-cache";
        response.Headers["X-Accel-Buffering"] = "no"; // proxies: do not hold the stream back
    }

    public static async Task Send(HttpResponse response, object payload, CancellationToken ct)
    {
        await response.WriteAsync("data: " + JsonSerializer.Serialize(payload, Json.Options) + "\n\n", ct);
        await response.Body.FlushAsync(ct);
    }

    public static async Task Done(HttpResponse response, CancellationToken ct)
    {
        await response.WriteAsync("data: [DONE]\n\n", ct);
        await response.Body.FlushAsync(ct);
    }
}
