// Stage-4 toy (docs/long-context.md): induction at varying distances with the trainer's own classes. Not part of the build;
// run: dotnet run -c Release --project docs/pare-long-stage4/toy -- std=0.125 steps=500 (key=value options below).
using Pare.Training;
using System.Globalization;

// Toy induction: each sequence = a random span of L tokens (L uniform in [lmin,lmax]) repeated to fill seq+1 tokens.
// Reports the mean loss on positions whose target is a repeat (t >= L, ideal 0) on a fixed eval batch.
var a = args.Select(s => s.Split('=')).ToDictionary(p => p[0], p => p[1]);
T Get<T>(string k, T d) => a.TryGetValue(k, out var v) ? (T)Convert.ChangeType(v, typeof(T), CultureInfo.InvariantCulture) : d;
int vocab = Get("vocab", 32), dim = Get("dim", 64), layers = Get("layers", 2), heads = Get("heads", 4), kv = Get("kv", heads);
int seq = Get("seq", 64), batch = Get("batch", 32), steps = Get("steps", 1500), lmin = Get("lmin", 8), lmax = Get("lmax", 16);
int warm = Get("warmup", 0), every = Get("every", 100), ffn = Get("ffn", dim * 2);
float lr = Get("lr", 3e-3f), std = Get("std", 0.02f), wd = Get("wd", 0f), b2 = Get("b2", 0.95f);
bool tied = Get("tied", 1) == 1; int seed = Get("seed", 1);
string init = Get("init", "");
var cfg = new ModelShape { Dim = dim, Layers = layers, Heads = heads, KvHeads = kv, FfnDim = ffn, ContextLength = seq, TiedEmbeddings = tied };
var p = new ParameterStore(cfg.ToLlama(vocab));
p.Initialize((ulong)seed + 2, std);
var model = new TrainingModel(p, batch, seq, 2);
var adam = new AdamW(p, 0.9f, b2, 1e-8f, wd);
var rng = new Random(seed);
void Fill(Random r, int[] inp, int[] tgt, int[] spanLen)
{
    for (int b = 0; b < batch; b++)
    {
        int L = r.Next(lmin, lmax + 1); spanLen[b] = L;
        var span = new int[L]; for (int i = 0; i < L; i++) span[i] = r.Next(vocab);
        for (int t = 0; t < seq; t++) { inp[b * seq + t] = span[t % L]; tgt[b * seq + t] = span[(t + 1) % L]; }
    }
}
var ei = new int[batch * seq]; var et = new int[batch * seq]; var el = new int[batch];
Fill(new Random(999), ei, et, el);
double EvalCopy()
{
    model.Forward(ei);
    var z = model.Logits(ei.Length);
    double s = 0; int n = 0;
    for (int b = 0; b < batch; b++)
        for (int t = el[b] - 1; t < seq; t++)
        {
            var row = z.Slice((b * seq + t) * vocab, vocab);
            float m = float.MinValue; foreach (var x in row) m = Math.Max(m, x);
            double se = 0; foreach (var x in row) se += Math.Exp(x - m);
            s += Math.Log(se) + m - row[et[b * seq + t]]; n++;
        }
    return s / n;
}
var inp = new int[batch * seq]; var tgt = new int[batch * seq]; var ll = new int[batch];
var sw = System.Diagnostics.Stopwatch.StartNew();
double first = EvalCopy();
Console.WriteLine($"# {string.Join(' ', args)}  step 0 copy {first:F3} (ln V = {Math.Log(vocab):F3})");
int reached = -1;
for (int step = 1; step <= steps; step++)
{
    Fill(rng, inp, tgt, ll);
    Array.Clear(p.Grads);
    model.Step(inp, tgt, 1f / inp.Length);
    GradClip.Clip(p.Grads, 1f, 2);
    float l = warm > 0 && step <= warm ? lr * step / warm : lr;
    adam.Update(l, 2);
    if (step % every == 0)
    {
        double c = EvalCopy();
        if (reached < 0 && c < 0.1 * Math.Log(vocab)) reached = step;
        Console.WriteLine($"step {step} copy {c:F3} ({sw.Elapsed.TotalSeconds:F0}s)");
    }
}
Console.WriteLine($"RESULT {string.Join(' ', args)} final {EvalCopy():F3} reached10% {reached}");
