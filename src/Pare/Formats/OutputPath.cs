namespace Pare.Formats;

/// <summary>Checks shared by every verb that reads a model and writes a new file.</summary>
public static class OutputPath
{
    /// <summary>Refuses an empty output path, the input model itself, or a folder that does not exist (one clear line each).</summary>
    public static void Check(string modelPath, string outputPath)
    {
        if (string.IsNullOrWhiteSpace(outputPath)) throw new PareException("no output path given (-o OUT.gguf)");
        if (Path.GetFullPath(outputPath) == Path.GetFullPath(modelPath)) throw new PareException("the output path is the input model; choose another");
        string? outDir = Path.GetDirectoryName(Path.GetFullPath(outputPath));
        if (outDir != null && !Directory.Exists(outDir)) throw new PareException($"output directory does not exist: {outDir}");
    }
}
