namespace Pare.Server;

/// <summary>The web playground served at <c>/</c>: one self-contained page (no external assets) over the /v1 endpoints.</summary>
internal static class Playground
{
    public static string Html { get; } = Load();

    static string Load()
    {
        using var s = typeof(Playground).Assembly.GetManifestResourceStream("Pare.Server.Playground.index.html")
            ?? throw new InvalidOperationException("the playground page is missing from the assembly");
        using var r = new StreamReader(s);
        return r.ReadToEnd();
    }
}
