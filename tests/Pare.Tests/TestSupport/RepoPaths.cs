namespace Pare.Tests.TestSupport;

/// <summary>The checkout the tests were built from (the folder holding Pare.slnx).</summary>
public static class RepoPaths
{
    public static string Root()
    {
        for (var d = new DirectoryInfo(AppContext.BaseDirectory); d != null; d = d.Parent)
            if (File.Exists(Path.Combine(d.FullName, "Pare.slnx"))) return d.FullName;
        throw new InvalidOperationException("Pare.slnx not found above " + AppContext.BaseDirectory);
    }
}
