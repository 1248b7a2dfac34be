// Stage-4 copy probe (docs/long-context.md): one copy window (a random span shown 4 times) built by LongContextMix from
// the train split, scored by the trainer (TrainingModel on the GGUF's weights) and the engine; loss per quarter.
// run from the repository root: dotnet run -c Release --project docs/pare-long-stage4/probe -- MODEL.gguf SEQ COPY_VOCAB
using Pare.LongContext;
using Pare.Models;
using Pare.Training;
using Pare.Tokenizers;
string path = args[0]; int T = int.Parse(args[1]); int vocabSub = int.Parse(args[2]);
using var m = LlamaModel.Load(path);
var c = m.Config;
var shape = new ModelShape { Dim = c.Dim, Layers = c.Layers, Heads = c.Heads, KvHeads = c.KvHeads, FfnDim = c.FfnDim, ContextLength = c.ContextLength, RopeBase = c.RopeBase, RmsEps = c.RmsEps, TiedEmbeddings = c.TiedEmbeddings };
var p = new ParameterStore(shape.ToLlama(c.VocabSize));
p.LoadGguf(path);
var tm = new TrainingModel(p, 1, T, 2);
var text = new TokenText(m.Tokenizer!);
var corpus = m.Tokenizer!.Encode(File.ReadAllText(".cache/data/corpus/train.txt"), addSpecial: false);
var mix = new LongContextMix(corpus, text, new LongContextMixOptions { Fraction = 1, Repeat = 1, ShuffledRepeat = 1, Copies = 4, CopyVocab = vocabSub, MinEpisode = T });
var w = mix.Window(42, T + 1);
int[] ids = w[..T], tg = w[1..];
tm.Forward(ids);
var a = tm.Logits(T).ToArray();
var b = m.CreateSession(new SessionOptions { Threads = 2 }).ForwardAll(ids);
double maxErr = 0; for (int i = 0; i < a.Length; i++) maxErr = Math.Max(maxErr, Math.Abs(a[i] - b[i]));
Console.WriteLine($"T {T}: max |trainer - engine| logit {maxErr:G4}");
int V = c.VocabSize;
double Nll(float[] z, int t) { var r = z.AsSpan(t * V, V); float mx = float.MinValue; foreach (var x in r) mx = Math.Max(mx, x); double s = 0; foreach (var x in r) s += Math.Exp(x - mx); return Math.Log(s) + mx - r[tg[t]]; }
int q = T / 4;
for (int k = 0; k < 4; k++)
{
    double sa = 0, sb = 0; for (int t = k * q; t < (k + 1) * q; t++) { sa += Nll(a, t); sb += Nll(b, t); }
    Console.WriteLine($"quarter {k}: trainer {sa / q:F3}  engine {sb / q:F3}");
}
Console.WriteLine(string.Join(" ", ids.Take(140)));
Console.WriteLine(text.Decode(ids[..140]).Replace("\n", "\\n"));
