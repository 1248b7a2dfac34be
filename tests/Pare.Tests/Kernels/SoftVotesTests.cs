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
            // Rows scaled by 2^h with rowScales 2^-h: the same votes.
            var scaled = (float[])work.Clone();
            var rowScales = new float[heads];
            for (int h = 0; h < heads; h++)
            {
                rowScales[h] = MathF.Pow(2, -h);
                for (int i = 0; i < n; i++) scaled[h * n + i] *= MathF.Pow(2, h);
            }
            var folded = new float[n];
            SoftVotes.Compute(scaled, heads, n, folded, threads, normalized: true, rowScales);
            Assert.True(Nmse(folded, expected) < 1e-10);
        }
    }
}
