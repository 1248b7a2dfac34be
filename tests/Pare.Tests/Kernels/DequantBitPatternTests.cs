using System.Buffers.Binary;
using Pare.Kernels;
using Pare.Tensors;
using static Pare.Tests.Kernels.KernelTestUtil;

namespace Pare.Tests.Kernels;

/// <summary>Hand-built K-quant blocks, packed here from the field descriptions, decoded against a direct formula.</summary>
public class DequantBitPatternTests
{
    static readonly int[] Q4KScales = [1, 2, 3, 63, 17, 33, 48, 5];
    static readonly int[] Q4KMins = [0, 7, 63, 1, 20, 40, 3, 60];

    static byte[] Q4KBlock()
    {
        var block = new byte[144];
        BinaryPrimitives.WriteUInt16LittleEndian(block, Half(0.5f));        // d
        BinaryPrimitives.WriteUInt16LittleEndian(block.AsSpan(2), Half(0.25f)); // dmin
        for (int j = 0; j < 4; j++)
        {
            // Bytes 0-3: scale j in bits 0-5, bits 4-5 of scale j+4 in bits 6-7; bytes 4-7 likewise for mins;
            // bytes 8-11: low nibble = low 4 bits of scale j+4, high nibble = low 4 bits of min j+4.
            block[4 + j] = (byte)(Q4KScales[j] | ((Q4KScales[j + 4] >> 4) << 6));
            block[4 + 4 + j] = (byte)(Q4KMins[j] | ((Q4KMins[j + 4] >> 4) << 6));
            block[4 + 8 + j] = (byte)((Q4KScales[j + 4] & 0xF) | ((Q4KMins[j + 4] & 0xF) << 4));
        }
        for (int i = 0; i < 256; i++)
        {
            // Element i lives in chunk i / 64; the first 32 of a chunk in low nibbles, the next 32 in high nibbles.
            int chunk = i / 64, within = i % 64;
            int byteIndex = 16 + 32 * chunk + within % 32;
            block[byteIndex] |= (byte)(Q4KValue(i) << (within < 32 ? 0 : 4));
        }
        return block;
    }

    static int Q4KValue(int i) => (i * 7 + 3) % 16;

    [Fact]
    public void Q4_K_known_block()
    {
        var block = Q4KBlock();
        var y = new float[256];
        Dequant.Row(GgmlType.Q4_K, block, y);
        for (int i = 0; i < 256; i++)
            Assert.Equal(0.5f * Q4KScales[i / 32] * Q4KValue(i) - 0.25f * Q4KMins[i / 32], y[i]);
    }

    static readonly int[] Q6KScales = [-128, 127, -1, 5, 0, 64, -64, 3, 9, -7, 100, -100, 1, 2, -3, 42];

    static int Q6KValue(int i) => (i * 13 + 5) % 64;

    static byte[] Q6KBlock()
    {
        var block = new byte[210];
        for (int i = 0; i < 256; i++)
        {
            // Half h = i / 128; within it, group g = r / 32 (0..3) and lane l = r % 32. Groups 0 and 2 use ql[l],
            // groups 1 and 3 use ql[l + 32]; groups 0-1 the low nibble, 2-3 the high; qh[l] bit pair g holds bits 4-5.
            int q = Q6KValue(i), h = i / 128, r = i % 128, g = r / 32, l = r % 32;
            int ql = 64 * h + l + (g % 2 == 1 ? 32 : 0);
            block[ql] |= (byte)((q & 0xF) << (g >= 2 ? 4 : 0));
            block[128 + 32 * h + l] |= (byte)((q >> 4) << (2 * g));
        }
        for (int j = 0; j < 16; j++) block[192 + j] = (byte)(sbyte)Q6KScales[j];
        BinaryPrimitives.WriteUInt16LittleEndian(block.AsSpan(208), Half(0.125f));
        return block;
    }

    [Fact]
    public void Q6_K_known_block()
    {
        var y = new float[256];
        Dequant.Row(GgmlType.Q6_K, Q6KBlock(), y);
        for (int i = 0; i < 256; i++)
            Assert.Equal(0.125f * Q6KScales[i / 16] * (Q6KValue(i) - 32), y[i]);
    }

    [Fact]
    public void Q4_K_and_Q6_K_quantizers_reproduce_their_own_grid()
    {
        // Dequantized values lie on the format's grid, so quantizing them again must give them back closely.
        foreach (var type in new[] { GgmlType.Q4_K, GgmlType.Q6_K })
        {
            var y = new float[256];
            Dequant.Row(type, type == GgmlType.Q4_K ? Q4KBlock() : Q6KBlock(), y);
            var z = new float[256];
            Dequant.Row(type, Quantizer.Quantize(type, y), z);
            Assert.True(Nmse(z, y) < 1e-3, type.ToString());
        }
    }

    [Fact]
    public unsafe void Fast_dequant_equals_reference_on_known_blocks()
    {
        if (!MatMul.Avx512) return;
        var x = Random(256, 1);
        foreach (var (type, block) in new[] { (GgmlType.Q4_K, Q4KBlock()), (GgmlType.Q6_K, Q6KBlock()) })
        {
            var w = Matrix(type, 1, 256, block, out var pin);
            var expected = new float[1];
            var y = new float[1];
            MatMulReference.MatVecAsKernel(w, x, expected); // the kernel rounds x as llama.cpp does
            MatMul.MatVec(w, x, y, 1);
            Assert.True(Nmse(y, expected) < 1e-10, type.ToString());
            GC.KeepAlive(pin);
        }
    }

    [Fact]
    public void Short_source_throws() =>
        Assert.Throws<ArgumentException>(() => Dequant.Row(GgmlType.Q8_0, new byte[33], new float[32]));
}
