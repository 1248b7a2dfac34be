using System.Diagnostics;
using System.Runtime.InteropServices;
using System.Text;
using System.Text.Json;

namespace Pare.Tests.TestSupport;

/// <summary>Runs the built `pare` command (Pare.Cli.dll beside the tests) as a separate process.</summary>
public static partial class PareCli
{
    public sealed record Result(int ExitCode, string Stdout, string Stderr)
    {
        public JsonElement Json => JsonDocument.Parse(Stdout).RootElement;

        /// <summary>Stderr's non-empty lines.</summary>
        public string[] ErrorLines => Stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
    }

    static readonly string DataHome = Directory.CreateTempSubdirectory("pare-cli-data-").FullName;

    static ProcessStartInfo StartInfo(IEnumerable<string> args, string? workingDir)
    {
        var psi = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        if (workingDir != null) psi.WorkingDirectory = workingDir;
        psi.ArgumentList.Add(Path.Combine(AppContext.BaseDirectory, "Pare.Cli.dll"));
        // The CLI keeps measured forward-pass costs in the user's data folder, keyed by file: test models are written
        // afresh each run, so point it at a folder of the test run's own instead of filling the user's.
        psi.Environment["XDG_DATA_HOME"] = DataHome;
        foreach (var a in args) psi.ArgumentList.Add(a);
        return psi;
    }

    public static Result Run(params string[] args) => RunIn(null, args);

    /// <summary>Runs with <paramref name="workingDir"/> as the current folder (verbs with relative default paths).</summary>
    public static Result RunIn(string? workingDir, params string[] args)
    {
        using var p = Process.Start(StartInfo(args, workingDir))!;
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        if (!p.WaitForExit(120_000)) { p.Kill(true); throw new TimeoutException($"pare {string.Join(' ', args)} did not finish in 120 s"); }
        return new Result(p.ExitCode, stdout.Result, stderr.Result);
    }

    /// <summary>
    /// Starts `pare ARGS`, lets it work for <paramref name="after"/>, interrupts it as Ctrl+C does (SIGINT to the process),
    /// and returns what it printed and how long it took to exit after the signal.
    /// </summary>
    public static (Result Result, TimeSpan ExitAfterSignal) Interrupt(TimeSpan after, string? workingDir, params string[] args)
    {
        using var p = Process.Start(StartInfo(args, workingDir))!;
        var stdout = new StringBuilder();
        var stdoutDone = p.StandardOutput.ReadToEndAsync().ContinueWith(t => stdout.Append(t.Result), TaskScheduler.Default);
        var stderr = p.StandardError.ReadToEndAsync();
        if (p.WaitForExit(after)) throw new InvalidOperationException($"pare {string.Join(' ', args)} ended before the interrupt (exit {p.ExitCode}): {stderr.Result}");
        // A shell without job control starts background commands with SIGINT ignored, and children inherit that: where the
        // process cannot receive SIGINT, SIGTERM (handled by the same code) stands in for it.
        int signal = IgnoresSigint(p.Id) ? Sigterm : Sigint;
        if (kill(p.Id, signal) != 0) throw new InvalidOperationException($"kill failed: {Marshal.GetLastPInvokeError()}");
        var sw = Stopwatch.StartNew();
        if (!p.WaitForExit(60_000)) { p.Kill(true); throw new TimeoutException($"pare {string.Join(' ', args)} did not stop within 60 s of the interrupt"); }
        var waited = sw.Elapsed;
        stdoutDone.Wait();
        return (new Result(p.ExitCode, stdout.ToString(), stderr.Result), waited);
    }

    const int Sigint = 2, Sigterm = 15;

    static bool IgnoresSigint(int pid)
    {
        foreach (var line in File.ReadLines($"/proc/{pid}/status"))
            if (line.StartsWith("SigIgn:", StringComparison.Ordinal))
                return (Convert.ToUInt64(line[7..].Trim(), 16) & (1UL << (Sigint - 1))) != 0;
        return false;
    }

    [LibraryImport("libc", SetLastError = true)]
    private static partial int kill(int pid, int sig);
}
