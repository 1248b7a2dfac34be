using Pare.Formats.Gguf;
using Pare.Models;
using Pare.Tensors;
using Pare.Tests.TestSupport;

namespace Pare.Tests.BadInput;

/// <summary>Each kind of broken model file named by the engine issue gives a clear, specific error.</summary>
public class BadModelFileTests
{
    static readonly LlamaConfig Tiny = TestModels.Cfg(dim: 32, layers: 1, heads: 2, kvHeads: 1, ffn: 64, tied: false, vocab: 300, ctx: 64);

    static string Valid() => TestModels.Get("bad-tiny", Tiny, GgmlType.F32);

    static string Write(string name, byte[] bytes)
    {
        string p = Path.Combine(TestModels.Dir, name);
        File.WriteAllBytes(p, bytes);
        return p;
    }

    static PareException Fails(string path)
    {
        var e = Assert.ThrowsAny<PareException>(() => { using var m = LlamaModel.Load(path); m.CreateSession().Forward([0]); });
        Assert.DoesNotContain('\n', e.Message);
        return e;
    }

    [Fact]
    public void Truncated_file()
    {
        var b = File.ReadAllBytes(Valid());
        Assert.Contains("truncated", Fails(Write("trunc.gguf", b[..(b.Length - 100)])).Message);
        Assert.Contains("too short", Fails(Write("trunc2.gguf", b[..10])).Message);
    }

    [Fact]
    public void Wrong_magic()
    {
        var b = File.ReadAllBytes(Valid());
        b[0] = (byte)'X';
        Assert.Contains("not a GGUF file", Fails(Write("magic.gguf", b)).Message);
    }

    [Fact]
    public void Symlinked_model_loads()
    {
        string link = Path.Combine(TestModels.Dir, "link-to-tiny.gguf");
        if (!File.Exists(link)) File.CreateSymbolicLink(link, Valid());
        using var m = LlamaModel.Load(link);
        Assert.Equal(300, m.CreateSession().Forward([1]).Length);
    }

    [Fact]
    public void Missing_file() => Assert.Contains("not found", Fails(Path.Combine(TestModels.Dir, "nope.gguf")).Message);

    /// <summary>Rewrites the valid model with one tensor changed.</summary>
    static string Rewrite(string name, Func<GgufTensorInfo, (string Name, GgmlType Type, long[] Dims)?> change)
    {
        using var f = GgufFile.Open(Valid());
        var w = new GgufWriter();
        foreach (var (k, v) in f.MetadataList) w.Set(k, v);
        foreach (var t in f.Tensors)
        {
            var c = change(t);
            if (c is null) continue;
            var bytes = f.TensorBytes(t).ToArray();
            var (n, ty, dims) = c.Value;
            long need = GgmlTypeInfo.RowBytes(ty, dims[0]) * dims.Skip(1).Aggregate(1L, (a, x) => a * x);
            Array.Resize(ref bytes, (int)need);
            w.AddTensor(n, ty, dims, bytes);
        }
        string p = Path.Combine(TestModels.Dir, name);
        w.Write(p);
        return p;
    }

    [Fact]
    public void Missing_tensor() =>
        Assert.Contains("missing tensor 'blk.0.ffn_up.weight'", Fails(Rewrite("missing.gguf", t => t.Name == "blk.0.ffn_up.weight" ? null : (t.Name, t.Type, t.Dims))).Message);

    [Fact]
    public void Wrong_shape() =>
        Assert.Contains("blk.0.attn_q.weight", Fails(Rewrite("shape.gguf", t => t.Name == "blk.0.attn_q.weight" ? (t.Name, t.Type, [32, 16]) : (t.Name, t.Type, t.Dims))).Message);

    [Fact]
    public void Unsupported_tensor_type() =>
        Assert.Contains("Q5_K", Fails(Rewrite("type.gguf", t => t.Name == "blk.0.ffn_up.weight" ? (t.Name, GgmlType.Q5_K, [256, 64]) : (t.Name, t.Type, t.Dims))).Message);

    [Fact]
    public void Unknown_type_number_offset_outside_and_absurd_dims()
    {
        using var f = GgufFile.Open(Valid());
        var b = File.ReadAllBytes(Valid());
        // Find the first tensor info by its name, then patch the fields after it: n_dims, dims, type, offset.
        var name = System.Text.Encoding.UTF8.GetBytes(f.Tensors[0].Name);
        int at = b.AsSpan().IndexOf(name) + name.Length;
        int nd = BitConverter.ToInt32(b, at);
        int typeAt = at + 4 + 8 * nd, offAt = typeAt + 4;

        var c1 = (byte[])b.Clone(); BitConverter.TryWriteBytes(c1.AsSpan(typeAt), 99u);
        Assert.Contains("unknown type 99", Fails(Write("t99.gguf", c1)).Message);

        var c2 = (byte[])b.Clone(); BitConverter.TryWriteBytes(c2.AsSpan(offAt), (ulong)b.Length * 4 / 32 * 32);
        Assert.Contains("outside the file", Fails(Write("off.gguf", c2)).Message);

        var c3 = (byte[])b.Clone(); BitConverter.TryWriteBytes(c3.AsSpan(at + 4), 1UL << 40);
        Assert.Contains("absurd", Fails(Write("dims.gguf", c3)).Message);
    }

    [Fact]
    public void Token_id_out_of_range()
    {
        using var m = LlamaModel.Load(Valid());
        var s = m.CreateSession(new SessionOptions { ContextLength = 8 });
        Assert.Contains("out of range", Assert.Throws<PareException>(() => s.Forward([300])).Message);
        Assert.Contains("out of range", Assert.Throws<PareException>(() => s.Forward([-1])).Message);
        Assert.Contains("context is full", Assert.Throws<PareException>(() => s.Forward(new int[9])).Message);
    }
}
