using Pare.Kernels;
using static Pare.Tests.Kernels.KernelTestUtil;

namespace Pare.Tests.Kernels;

public class SoftVotesTests
{
    [Theory]
    [InlineData(32, 15000)]
    [InlineData(3, 37)]
    public void Votes_match_the_reference(int heads, int n)
    {
        var logits = Random(heads * n, seed: 2, scale: 4f);
        var expected = new float[n];
        SoftVotes.Reference(logits, heads, n, expected);
        foreach (int threads in new[] { 1, 2 })
        {
            var work = logits.ToArray();
            var votes = new float[n];
            SoftVotes.Compute(work, heads, n, votes, threads);
            Assert.True(Nmse(votes, expected) < 1e-10, $"threads {threads}: nmse {Nmse(votes, expected)}");
            var again = new float[n];
            SoftVotes.Compute(work, heads, n, again, threads, normalized: true);   // rows already softmaxes
            Assert.True(Nmse(again, expected) < 1e-10);
        }
    }
}
