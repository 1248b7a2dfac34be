using System.Runtime.CompilerServices;

namespace Pare.Tests.TestSupport;

/// <summary>
/// Everything a test run writes to the temp folder goes into one folder of its own (TMPDIR points there for this process
/// and the `pare` processes it starts), which is deleted when the run ends: `dotnet test` leaves nothing behind.
/// </summary>
public static class TempFolder
{
    /// <summary>The run's temp folder (what Path.GetTempPath() returns during the run).</summary>
    public static string Dir { get; private set; } = "";

#pragma warning disable CA2255 // a module initializer in a test assembly: it must run before any test touches the temp folder
    [ModuleInitializer]
#pragma warning restore CA2255
    internal static void Redirect()
    {
        string outer = Path.GetTempPath();
        var dir = Directory.CreateTempSubdirectory("pare-test-run-").FullName;
        Dir = dir;
        Environment.SetEnvironmentVariable("TMPDIR", dir + Path.DirectorySeparatorChar);
        AppDomain.CurrentDomain.ProcessExit += (_, _) => Delete(dir);
        // The test host is often ended by the runner rather than left to exit, and then ProcessExit never runs: a detached
        // shell waits for this process to be gone and deletes the folder then.
        if (!OperatingSystem.IsWindows()) Watch(Environment.ProcessId, dir, outer);
    }

    /// <summary>
    /// Once process <paramref name="pid"/> is gone: deletes <paramref name="dir"/>, and the runtime's own files of that
    /// process in <paramref name="outer"/> (its debugger pipes and diagnostics socket, which a process that is ended
    /// rather than exiting leaves behind).
    /// </summary>
    static void Watch(int pid, string dir, string outer)
    {
        var psi = new System.Diagnostics.ProcessStartInfo("/bin/sh") { UseShellExecute = false };
        psi.ArgumentList.Add("-c");
        // The inner shell is orphaned at once (the outer one exits), so ending this process's tree does not end it.
        psi.ArgumentList.Add("(while kill -0 \"$0\" 2>/dev/null; do sleep 1; done; rm -rf \"$1\" \"$2\"/clr-debug-pipe-\"$0\"-* \"$2\"/dotnet-diagnostic-\"$0\"-*) " +
            "</dev/null >/dev/null 2>&1 &");
        psi.ArgumentList.Add(pid.ToString(System.Globalization.CultureInfo.InvariantCulture));
        psi.ArgumentList.Add(dir);
        psi.ArgumentList.Add(outer.TrimEnd(Path.DirectorySeparatorChar));
        try { using var p = System.Diagnostics.Process.Start(psi); p?.WaitForExit(); }
        catch (System.ComponentModel.Win32Exception) { } // no /bin/sh: ProcessExit alone
    }

    static void Delete(string dir)
    {
        try { Directory.Delete(dir, recursive: true); }
        catch (IOException) { }
        catch (UnauthorizedAccessException) { }
    }
}

/// <summary>
/// The corpus the tests read: fetched once into the repository's .cache (kept between runs, like `pare data fetch`'s),
/// or into the run's temp folder when the tests run outside a checkout.
/// </summary>
public static class TestCorpus
{
    public static string CacheDir { get; } = Path.Combine(RepoRoot() is { } root ? Path.Combine(root, ".cache") : Path.GetTempPath(), "pare-test-corpus");

    /// <summary>The checkout the tests were built from (the folder with Pare.slnx), or null.</summary>
    public static string? RepoRoot()
    {
        for (var d = new DirectoryInfo(AppContext.BaseDirectory); d != null; d = d.Parent)
            if (File.Exists(Path.Combine(d.FullName, "Pare.slnx"))) return d.FullName;
        return null;
    }
}
