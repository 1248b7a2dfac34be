using System.Diagnostics;
using System.Globalization;
using PuppeteerSharp;

namespace Pare.BrowserTests;

/// <summary>The playground at / in headless Chromium: loads, lists both served models, streams a completion, shows tok/s.</summary>
public sealed class PlaygroundTests : IDisposable
{
    readonly Process _server;
    readonly Uri _address;

    public PlaygroundTests()
    {
        string models = Path.Combine(AppContext.BaseDirectory, "models");
        var psi = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var a in new[] { Path.Combine(AppContext.BaseDirectory, "Pare.Cli.dll"), "serve", Path.Combine(models, "pare-ref.gguf"),
            Path.Combine(models, "pare-ref-draft.gguf"), "--port", "0", "--draft", "auto" })
            psi.ArgumentList.Add(a);
        _server = Process.Start(psi)!;
        _server.ErrorDataReceived += (_, _) => { };
        _server.BeginErrorReadLine();
        string line = _server.StandardOutput.ReadLineAsync().WaitAsync(TimeSpan.FromSeconds(60)).GetAwaiter().GetResult()
            ?? throw new InvalidOperationException("pare serve exited before listening");
        int at = line.IndexOf("http://", StringComparison.Ordinal);
        _address = new Uri(line[at..line.IndexOf(' ', at)]);
    }

    /// <summary>
    /// Chromium from $CHROME_PATH or the usual Debian/Ubuntu paths; on a fresh machine without one, PuppeteerSharp
    /// downloads Chrome for Testing into the user's cache. A clear failure (not a skip) when neither works.
    /// </summary>
    static async Task<string> Chromium()
    {
        string[] candidates = [Environment.GetEnvironmentVariable("CHROME_PATH") ?? "", "/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome"];
        if (candidates.FirstOrDefault(p => p.Length > 0 && File.Exists(p)) is { } found) return found;
        // A fresh Debian machine has no Chromium but reaches Debian's registry: install it as tests/browser.sh does.
        if (File.Exists("/usr/bin/apt-get") && await AptInstallChromium() && File.Exists("/usr/bin/chromium")) return "/usr/bin/chromium";
        try
        {
            var dir = Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.LocalApplicationData), "pare", "chrome");
            var installed = await new BrowserFetcher(new BrowserFetcherOptions { Path = dir }).DownloadAsync();
            return installed.GetExecutablePath();
        }
        catch (Exception e) when (e is HttpRequestException or IOException or PuppeteerException)
        {
            throw new InvalidOperationException("no Chromium found and none could be downloaded: run tests/browser.sh (installs Debian's chromium) or set CHROME_PATH", e);
        }
    }

    static async Task<bool> AptInstallChromium()
    {
        var sudo = Environment.UserName == "root" ? "" : "sudo ";
        var psi = new System.Diagnostics.ProcessStartInfo("bash",
            ["-c", $"{sudo}apt-get update -qq && DEBIAN_FRONTEND=noninteractive {sudo}apt-get install -y -qq --no-install-recommends chromium"])
        { RedirectStandardOutput = true, RedirectStandardError = true };
        using var p = System.Diagnostics.Process.Start(psi)!;
        var drain = Task.WhenAll(p.StandardOutput.ReadToEndAsync(), p.StandardError.ReadToEndAsync());
        await p.WaitForExitAsync();
        await drain;
        return p.ExitCode == 0;
    }

    [Fact]
    public async Task Playground_streams_a_completion_and_shows_speed()
    {
        await using var browser = await Puppeteer.LaunchAsync(new LaunchOptions
        {
            Headless = true, ExecutablePath = await Chromium(),
            Args = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"],
        });
        await using var page = await browser.NewPageAsync();
        await page.SetViewportAsync(new ViewPortOptions { Width = 900, Height = 640 });
        var external = new List<string>();
        page.Request += (_, e) => { if (!e.Request.Url.StartsWith(_address.ToString(), StringComparison.Ordinal)) external.Add(e.Request.Url); };
        await page.GoToAsync(_address.ToString(), WaitUntilNavigation.Networkidle0);

        // Both models are offered; switch to the second and back.
        await page.WaitForFunctionAsync("() => document.querySelectorAll('#model option').length === 2");
        var ids = await page.EvaluateExpressionAsync<string[]>("[...document.querySelectorAll('#model option')].map(o => o.value)");
        Assert.Equal(["pare-ref", "pare-ref-draft"], ids);
        await page.SelectAsync("#model", "pare-ref-draft");
        await page.SelectAsync("#model", "pare-ref");

        await page.EvaluateExpressionAsync("document.getElementById('prompt').value = 'Once upon a time'; document.getElementById('max').value = '96'; document.getElementById('temp').value = '0'");
        // Streamed: text shows up before the run ends (the Stop button still enabled). Seen by a mutation observer, not by
        // polling: on a loaded machine the whole stream can arrive between two polls and the run end in the same task.
        await page.EvaluateExpressionAsync("window.streamedWhileRunning = false; new MutationObserver(() => { if (document.getElementById('output').textContent.length > 0 && !document.getElementById('stop').disabled) window.streamedWhileRunning = true; }).observe(document.getElementById('output'), { childList: true, characterData: true, subtree: true })");
        await page.ClickAsync("#go");
        await page.WaitForFunctionAsync("() => document.getElementById('finish').textContent !== '-'", new WaitForFunctionOptions { Timeout = 60_000 });
        Assert.True(await page.EvaluateExpressionAsync<bool>("window.streamedWhileRunning"), "no text before the run ended");
        string output = await page.EvaluateExpressionAsync<string>("document.getElementById('output').textContent");
        string toks = await page.EvaluateExpressionAsync<string>("document.getElementById('toks').textContent");
        string accept = await page.EvaluateExpressionAsync<string>("document.getElementById('accept').textContent");
        string error = await page.EvaluateExpressionAsync<string>("document.getElementById('error').textContent");
        Assert.Equal("", error);
        Assert.True(output.Length > 20, output);
        Assert.True(double.Parse(toks, CultureInfo.InvariantCulture) > 0, toks);
        Assert.Contains("(auto)", accept, StringComparison.Ordinal);
        Assert.Empty(external); // no CDN or other outside requests

        string shot = Environment.GetEnvironmentVariable("PARE_PLAYGROUND_SCREENSHOT") ?? Path.Combine(AppContext.BaseDirectory, "playground.png");
        await page.ScreenshotAsync(shot);
        Assert.True(new FileInfo(shot).Length > 1000);
    }

    public void Dispose()
    {
        if (!_server.HasExited) { _server.Kill(true); _server.WaitForExit(10_000); }
        _server.Dispose();
    }
}
