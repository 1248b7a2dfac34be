using System.Net;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace Pare.Server;

/// <summary>
/// An OpenAI-compatible HTTP server over loaded models (Kestrel, minimal APIs). Start it with <see cref="StartAsync"/>;
/// <see cref="Address"/> is where it listens (the real port when 0 was asked for).
/// </summary>
public sealed class PareServer : IAsyncDisposable
{
    readonly WebApplication _app;

    PareServer(WebApplication app, Uri address) { _app = app; Address = address; }

    /// <summary>The base address, e.g. http://127.0.0.1:8080/ (clients add v1/...).</summary>
    public Uri Address { get; }

    public static async Task<PareServer> StartAsync(ServerOptions options, IReadOnlyList<ServedModel> models, CancellationToken ct = default)
    {
        options.Validate();
        if (models.Count == 0) throw new PareException("no model to serve");
        if (models.Select(m => m.Id).Distinct().Count() != models.Count) throw new PareException("two models have the same id (file name); rename one");
        var state = new ServerState(options, models);
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.ConfigureKestrel(k =>
        {
            k.Limits.MaxRequestBodySize = options.MaxRequestBytes;
            k.Limits.MaxRequestHeadersTotalSize = 32 * 1024;
            k.AddServerHeader = false;
            k.Listen(ParseHost(options.Host), options.Port);
        });
        var app = builder.Build();
        app.Use(async (ctx, next) =>
        {
            try
            {
                if (options.ApiKey is { } key && ctx.Request.Path.StartsWithSegments("/v1") && !ApiKeyAuth.IsAuthorized(ctx.Request, key))
                {
                    ctx.Response.Headers.WWWAuthenticate = "Bearer";
                    await ApiError.Write(ctx, 401, "invalid or missing API key (send Authorization: Bearer KEY)", "authentication_error");
                    return;
                }
                await next(ctx);
            }
            catch (ApiError e) { await e.WriteAsync(ctx); }
            catch (Exception) when (ctx.RequestAborted.IsCancellationRequested) { } // the client left (cancelled or failed write); its slot is already free
            catch (BadHttpRequestException e) { await ApiError.Write(ctx, e.StatusCode, e.Message, "invalid_request_error"); }
            catch (PareException e) { await ApiError.Write(ctx, 400, e.Message, "invalid_request_error"); }
            catch (Exception e) when (e is not OutOfMemoryException)
            {
                await ApiError.Write(ctx, 500, "internal error: " + e.GetType().Name, "server_error");
                Console.Error.WriteLine($"pare serve: {ctx.Request.Method} {ctx.Request.Path}: {e}");
            }
        });
        Endpoints.Map(app, state);
        app.MapFallback((HttpContext ctx) => ApiError.Write(ctx, 404, $"no such endpoint: {ctx.Request.Method} {ctx.Request.Path}", "not_found_error"));
        await app.StartAsync(ct);
        var bound = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
        return new PareServer(app, new Uri(bound.EndsWith('/') ? bound : bound + "/"));
    }

    /// <summary>Runs until <paramref name="ct"/> is cancelled, then stops gracefully.</summary>
    public async Task WaitAsync(CancellationToken ct)
    {
        try { await Task.Delay(Timeout.Infinite, ct); }
        catch (OperationCanceledException) { }
    }

    public async ValueTask DisposeAsync()
    {
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(5));
        await _app.StopAsync(cts.Token);
        await _app.DisposeAsync();
    }

    static IPAddress ParseHost(string host) => host switch
    {
        "localhost" => IPAddress.Loopback,
        "*" or "0.0.0.0" => IPAddress.Any,
        "::" or "[::]" => IPAddress.IPv6Any,
        _ => IPAddress.TryParse(host.Trim('[', ']'), out var a) ? a : throw new PareException($"--host must be an IP address, localhost or * (got '{host}')"),
    };
}
