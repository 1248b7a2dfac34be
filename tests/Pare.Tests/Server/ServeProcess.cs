using System.Diagnostics;
using System.Net.Http.Headers;
using System.Text;
using Pare.Models;

namespace Pare.Tests.Server;

/// <summary>A real `pare serve` process (the built Pare.Cli.dll) on a free loopback port, stopped on dispose.</summary>
public sealed class ServeProcess : IDisposable
{
    public const string Key = "test-key-123";
    readonly Process _process;
    readonly StringBuilder _stderr = new();

    public ServeProcess() : this(["--parallel", "2", "--api-key", Key]) { }

    /// <summary>A server with extra command-line options (the fixture's constructor is the parameterless one).</summary>
    public static ServeProcess With(params string[] extra) => new(extra);

    ServeProcess(string[] extra)
    {
        ModelPath = ReferenceModels.Require(ReferenceModels.PareRef);
        var psi = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        psi.ArgumentList.Add(Path.Combine(AppContext.BaseDirectory, "Pare.Cli.dll"));
        foreach (var a in new[] { "serve", ModelPath, "--port", "0", "--threads", "1" }.Concat(extra)) psi.ArgumentList.Add(a);
        _process = Process.Start(psi)!;
        _process.ErrorDataReceived += (_, e) => { lock (_stderr) _stderr.AppendLine(e.Data); };
        _process.BeginErrorReadLine();
        // The first stdout line says where it listens.
        var line = _process.StandardOutput.ReadLineAsync().WaitAsync(TimeSpan.FromSeconds(60)).GetAwaiter().GetResult()
            ?? throw new InvalidOperationException("pare serve exited: " + Stderr);
        int at = line.IndexOf("http://", StringComparison.Ordinal);
        if (at < 0) throw new InvalidOperationException("unexpected first line: " + line);
        BaseUri = new Uri(line[at..line.IndexOf(' ', at)]);
        _ = _process.StandardOutput.ReadToEndAsync();
    }

    public string ModelPath { get; }
    public Uri BaseUri { get; }
    public Uri V1 => new(BaseUri, "v1/");
    public string Stderr { get { lock (_stderr) return _stderr.ToString(); } }
    public bool Exited => _process.HasExited;

    public HttpClient Http(string? key = Key)
    {
        // An abandoned response is not drained for connection reuse (the default reads on): disposing it hangs up.
        var h = new HttpClient(new SocketsHttpHandler { MaxResponseDrainSize = 0 }) { BaseAddress = BaseUri, Timeout = TimeSpan.FromSeconds(120) };
        if (key != null) h.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", key);
        return h;
    }

    public void Dispose()
    {
        if (!_process.HasExited) { _process.Kill(true); _process.WaitForExit(10_000); }
        _process.Dispose();
    }
}
