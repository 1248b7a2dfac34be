using System.Runtime.InteropServices;
using System.Text;

namespace Pare.Training;

/// <summary>One logged step: training loss (mean nats per token), learning rate and gradient norm before clipping.</summary>
public readonly record struct StepRecord(int Step, double Loss, float LearningRate, double GradNorm);

/// <summary>One validation: mean nats per token over the fixed validation windows.</summary>
public readonly record struct EvalRecord(int Step, double Loss);

/// <summary>
/// Everything needed to continue a run bit for bit: weights, AdamW moments, optimizer step count, the data sampler's RNG
/// state, the step, and the loss history. Binary, little-endian; written to a temporary file and renamed into place.
/// </summary>
public static class Checkpoint
{
    const string Magic = "PARECKPT";
    const int Version = 1;

    public static void Save(string path, TrainConfig config, ParameterStore p, AdamW opt, ulong rngState, int step,
        IReadOnlyList<StepRecord> history, IReadOnlyList<EvalRecord> evals)
    {
        Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(path))!);
        string tmp = path + $".tmp-{Environment.ProcessId}";
        using (var fs = new FileStream(tmp, FileMode.Create, FileAccess.Write, FileShare.None, 1 << 20))
        using (var w = new BinaryWriter(fs, Encoding.UTF8))
        {
            w.Write(Encoding.ASCII.GetBytes(Magic));
            w.Write(Version);
            w.Write(ShapeKey(config, p));
            w.Write(step);
            w.Write(opt.Steps);
            w.Write(rngState);
            w.Write(history.Count);
            foreach (var h in history) { w.Write(h.Step); w.Write(h.Loss); w.Write(h.LearningRate); w.Write(h.GradNorm); }
            w.Write(evals.Count);
            foreach (var e in evals) { w.Write(e.Step); w.Write(e.Loss); }
            foreach (var arr in new[] { p.Values, opt.M, opt.V })
            {
                w.Write(arr.Length);
                w.Write(MemoryMarshal.AsBytes(arr.AsSpan()));
            }
        }
        File.Move(tmp, path, overwrite: true);
    }

    /// <summary>Loads into the given parameters and optimizer; returns (step, rng state, history, evals).</summary>
    public static (int Step, ulong RngState, List<StepRecord> History, List<EvalRecord> Evals) Load(string path, TrainConfig config, ParameterStore p, AdamW opt)
    {
        if (!File.Exists(path)) throw new PareException($"no checkpoint to resume from: {path}");
        using var fs = File.OpenRead(path);
        using var r = new BinaryReader(fs, Encoding.UTF8);
        if (Encoding.ASCII.GetString(r.ReadBytes(Magic.Length)) != Magic) throw new PareException($"{path}: not a Pare checkpoint");
        if (r.ReadInt32() != Version) throw new PareException($"{path}: unsupported checkpoint version");
        string key = r.ReadString();
        if (key != ShapeKey(config, p)) throw new PareException($"{path}: checkpoint was made for another model shape ({key})");
        int step = r.ReadInt32();
        opt.Steps = r.ReadInt64();
        ulong rng = r.ReadUInt64();
        var history = new List<StepRecord>();
        for (int i = r.ReadInt32(); i > 0; i--) history.Add(new StepRecord(r.ReadInt32(), r.ReadDouble(), r.ReadSingle(), r.ReadDouble()));
        var evals = new List<EvalRecord>();
        for (int i = r.ReadInt32(); i > 0; i--) evals.Add(new EvalRecord(r.ReadInt32(), r.ReadDouble()));
        foreach (var arr in new[] { p.Values, opt.M, opt.V })
        {
            if (r.ReadInt32() != arr.Length) throw new PareException($"{path}: tensor size mismatch");
            var bytes = MemoryMarshal.AsBytes(arr.AsSpan());
            try { fs.ReadExactly(bytes); }
            catch (EndOfStreamException) { throw new PareException($"{path}: checkpoint is truncated"); }
        }
        return (step, rng, history, evals);
    }

    static string ShapeKey(TrainConfig c, ParameterStore p) =>
        $"{c.Model.Dim}x{c.Model.Layers} h{c.Model.Heads}/{c.Model.KvHeads} ffn{c.Model.FfnDim} v{p.Config.VocabSize} tied={c.Model.TiedEmbeddings} n={p.Values.Length}";
}
