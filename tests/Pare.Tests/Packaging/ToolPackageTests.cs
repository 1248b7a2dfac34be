using System.Diagnostics;

namespace Pare.Tests.Packaging;

/// <summary>
/// `dotnet pack` makes the Pare library, Pare.Extensions.AI and the `pare` tool (package Pare.Cli); the tool installs from a local folder
/// feed and runs. Packs the builds that `dotnet test` just made (--no-build), with a unique version so no cached package answers.
/// </summary>
public class ToolPackageTests
{
#if DEBUG
    const string Configuration = "Debug";
#else
    const string Configuration = "Release";
#endif

    static string RepoRoot() => Pare.Tests.TestSupport.RepoPaths.Root();

    static (int Code, string Out) Run(string file, string workDir, IDictionary<string, string>? env, params string[] args)
    {
        var psi = new ProcessStartInfo(file) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false, WorkingDirectory = workDir };
        foreach (var a in args) psi.ArgumentList.Add(a);
        psi.Environment["DOTNET_CLI_TELEMETRY_OPTOUT"] = "1";
        psi.Environment["DOTNET_NOLOGO"] = "1";
        if (env != null) foreach (var (k, v) in env) psi.Environment[k] = v;
        using var p = Process.Start(psi)!;
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        if (!p.WaitForExit(300_000)) { p.Kill(true); throw new TimeoutException($"{file} {string.Join(' ', args)} did not finish in 300 s"); }
        return (p.ExitCode, stdout.Result + stderr.Result);
    }

    [Fact]
    public void Packs_and_installs_the_pare_tool_from_a_folder_feed()
    {
        string root = RepoRoot();
        string work = Directory.CreateTempSubdirectory("pare-pack-").FullName;
        try
        {
            string feed = Path.Combine(work, "feed"), tools = Path.Combine(work, "tools"), cache = Path.Combine(work, "nuget");
            string version = "0.0.0-test" + DateTime.UtcNow.ToString("yyyyMMddHHmmssfff", System.Globalization.CultureInfo.InvariantCulture);
            foreach (var project in new[] { "src/Pare/Pare.csproj", "src/Pare.Extensions.AI/Pare.Extensions.AI.csproj", "src/Pare.Cli/Pare.Cli.csproj" })
            {
                var (code, output) = Run("dotnet", root, null, "pack", Path.Combine(root, project), "-c", Configuration, "--no-build", "-o", feed, "-p:Version=" + version);
                Assert.True(code == 0, output);
            }
            var packages = Directory.GetFiles(feed, "*.nupkg").Select(Path.GetFileName).Order().ToArray();
            Assert.Equal(new[] { $"Pare.{version}.nupkg", $"Pare.Extensions.AI.{version}.nupkg", $"Pare.Cli.{version}.nupkg" }.Order(), packages);

            // A private package cache: the install sees only what this feed holds (a tool package carries its dependencies).
            var env = new Dictionary<string, string> { ["NUGET_PACKAGES"] = cache };
            var install = Run("dotnet", work, env, "tool", "install", "Pare.Cli", "--version", version, "--tool-path", tools, "--add-source", feed, "--ignore-failed-sources");
            Assert.True(install.Code == 0, install.Out);
            string pare = Path.Combine(tools, OperatingSystem.IsWindows() ? "pare.exe" : "pare");

            var v = Run(pare, work, null, "--version");
            Assert.True(v.Code == 0, v.Out);
            Assert.Matches(@"^\d+\.\d+\.\d+", v.Out.Trim());

            // The reference models travel inside the tool: the demo runs from an empty folder.
            var demo = Run(pare, work, new Dictionary<string, string> { ["XDG_DATA_HOME"] = Path.Combine(work, "data") }, "demo");
            Assert.True(demo.Code == 0, demo.Out);
            Assert.Contains("tok/s", demo.Out, StringComparison.Ordinal);
        }
        finally
        {
            try { Directory.Delete(work, recursive: true); } catch (IOException) { }
        }
    }
}
