using System.Text.Json;
using Microsoft.AspNetCore.Http;

namespace Pare.Server;

/// <summary>A request that fails with an OpenAI-style error body: <c>{"error":{"message","type","param","code"}}</c>.</summary>
public sealed class ApiError(int status, string message, string type = "invalid_request_error", string? param = null) : Exception(message)
{
    public int Status { get; } = status;
    public string Type { get; } = type;
    public string? Param { get; } = param;
    /// <summary>Seconds for a Retry-After header (busy server), or null.</summary>
    public int? RetryAfter { get; init; }

    public static ApiError BadRequest(string message, string? param = null) => new(400, message, "invalid_request_error", param);

    /// <summary>Writes the error (and Retry-After) unless the response has started.</summary>
    public Task WriteAsync(HttpContext ctx) => Write(ctx, Status, Message, Type, Param, RetryAfter);

    public static async Task Write(HttpContext ctx, int status, string message, string type, string? param = null, int? retryAfter = null)
    {
        if (ctx.Response.HasStarted) return;
        ctx.Response.StatusCode = status;
        if (retryAfter is int s) ctx.Response.Headers.RetryAfter = s.ToString(System.Globalization.CultureInfo.InvariantCulture);
        ctx.Response.ContentType = "application/json";
        await ctx.Response.WriteAsync(JsonSerializer.Serialize(new { error = new { message, type, param, code = status } }, Json.Options), ctx.RequestAborted);
    }
}
