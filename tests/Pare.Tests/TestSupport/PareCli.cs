using System.Diagnostics;
using System.Text.Json;

namespace Pare.Tests.TestSupport;

/// <summary>Runs the built `pare` command (Pare.Cli.dll beside the tests) as a separate process.</summary>
public static class PareCli
{
    public sealed record Result(int ExitCode, string Stdout, string Stderr)
    {
        public JsonElement Json => JsonDocument.Parse(Stdout).RootElement;
    }

    static readonly string DataHome = Directory.CreateTempSubdirectory("pare-cli-data-").FullName;

    public static Result Run(params string[] args)
    {
        var psi = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        psi.ArgumentList.Add(Path.Combine(AppContext.BaseDirectory, "Pare.Cli.dll"));
        // The CLI keeps measured forward-pass costs in the user's data folder, keyed by file: test models are written
        // afresh each run, so point it at a folder of the test run's own instead of filling the user's.
        psi.Environment["XDG_DATA_HOME"] = DataHome;
        foreach (var a in args) psi.ArgumentList.Add(a);
        using var p = Process.Start(psi)!;
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        if (!p.WaitForExit(120_000)) { p.Kill(true); throw new TimeoutException($"pare {string.Join(' ', args)} did not finish in 120 s"); }
        return new Result(p.ExitCode, stdout.Result, stderr.Result);
    }
}
