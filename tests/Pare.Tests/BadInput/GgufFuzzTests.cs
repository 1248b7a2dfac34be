using Pare.Formats.Gguf;
using Pare.Models;
using Pare.Tensors;
using Pare.Tests.TestSupport;

namespace Pare.Tests.BadInput;

/// <summary>
/// Mutates a valid small GGUF thousands of times. Every load must either work (and then run a token) or fail with
/// Pare's own one-line error: never another exception type, never a hang, never a large allocation.
/// </summary>
public class GgufFuzzTests
{
    static readonly LlamaConfig Tiny = TestModels.Cfg(dim: 32, layers: 1, heads: 2, kvHeads: 1, ffn: 64, tied: false, vocab: 300, ctx: 64);

    [Fact]
    public void Mutated_files_fail_cleanly()
    {
        string src = TestModels.Get("fuzz-tiny", Tiny, GgmlType.F32);
        byte[] original = File.ReadAllBytes(src);
        long headerEnd;
        using (var f = GgufFile.Open(src)) headerEnd = f.DataOffset;
        var rng = new Random(20261128);
        string path = Path.Combine(TestModels.Dir, "fuzz-mutant.gguf");
        int loaded = 0, rejected = 0;
        for (int iter = 0; iter < 3000; iter++)
        {
            byte[] data = Mutate(original, headerEnd, rng);
            File.WriteAllBytes(path, data);
            long before = GC.GetAllocatedBytesForCurrentThread();
            try
            {
                using var m = LlamaModel.Load(path);
                var s = m.CreateSession(new SessionOptions { ContextLength = 4, Threads = 1 });
                var logits = s.Forward([0]);
                Assert.Equal(m.Config.VocabSize, logits.Length);
                loaded++;
            }
            catch (PareException e)
            {
                Assert.False(string.IsNullOrWhiteSpace(e.Message));
                Assert.DoesNotContain('\n', e.Message);
                rejected++;
            }
            catch (Exception e)
            {
                Assert.Fail($"iteration {iter}: {e.GetType().Name}: {e.Message}\n{e.StackTrace}");
            }
            long allocated = GC.GetAllocatedBytesForCurrentThread() - before;
            Assert.True(allocated < 64L << 20, $"iteration {iter}: allocated {allocated >> 20} MiB for a {data.Length >> 10} KiB file");
        }
        Assert.True(rejected > 1000, $"only {rejected} of 3000 mutants were rejected; the mutator is too gentle");
        Assert.True(loaded > 0, "no mutant loaded; the mutator only breaks files");
    }

    static byte[] Mutate(byte[] original, long headerEnd, Random rng)
    {
        byte[] d = (byte[])original.Clone();
        switch (rng.Next(6))
        {
            case 0: // truncate anywhere
                return d[..rng.Next(d.Length)];
            case 1: // flip bits in the header
                for (int k = rng.Next(1, 4); k > 0; k--) d[rng.Next((int)headerEnd)] ^= (byte)(1 << rng.Next(8));
                return d;
            case 2: // random bytes in the header
                for (int k = rng.Next(1, 4); k > 0; k--) d[rng.Next((int)headerEnd)] = (byte)rng.Next(256);
                return d;
            case 3: // overwrite an aligned 8-byte word in the header with an extreme value (counts, lengths, dims, offsets)
                {
                    int at = rng.Next((int)headerEnd - 8) & ~3;
                    ulong v = rng.Next(5) switch { 0 => ulong.MaxValue, 1 => (ulong)long.MaxValue, 2 => 1UL << 40, 3 => 0, _ => (ulong)rng.Next() };
                    BitConverter.TryWriteBytes(d.AsSpan(at, 8), v);
                    return d;
                }
            case 4: // small 32-bit values: types, dims counts, enum-like fields
                {
                    int at = rng.Next((int)headerEnd - 4) & ~3;
                    BitConverter.TryWriteBytes(d.AsSpan(at, 4), (uint)rng.Next(-2, 40));
                    return d;
                }
            default: // garbage in the tensor data (NaN, Inf, anything)
                for (int k = 0; k < 64; k++) d[headerEnd + rng.Next((int)(d.Length - headerEnd))] = (byte)rng.Next(256);
                return d;
        }
    }
}
