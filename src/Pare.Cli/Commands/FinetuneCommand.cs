using System.CommandLine;
using Pare.Data;
using Pare.Tokenizers;
using Pare.Training;

namespace Pare.Cli.Commands;

/// <summary>
/// <c>pare finetune MODEL --train-text F --steps N [--lora RANK] [--lr X] -o OUT.gguf</c>: recovery training of a (pruned)
/// model on the trainer: LoRA adapters merged at export, or full fine-tuning; zeros stay zero, shapes stay.
/// </summary>
internal static class FinetuneCommand
{
    public static Command Create()
    {
        var model = Cli.ModelArgument();
        var text = new Option<string>("--train-text") { Description = "Training text (a training split, never the test split), tokenized by the model's own tokenizer.", Required = true };
        var steps = new Option<int>("--steps") { Description = "Optimizer steps.", DefaultValueFactory = _ => 100 }.Between(0, 10_000_000);
        var lora = new Option<int>("--lora") { Description = "LoRA rank on every block linear layer (merged into the weights at export); 0 = full fine-tuning.", DefaultValueFactory = _ => 0 }.Between(0, 4096);
        var alpha = new Option<float>("--lora-alpha") { Description = "LoRA scale numerator: update = alpha/rank · B·A.", DefaultValueFactory = _ => 16f }.Between(1e-6f, 1e6f);
        var lr = new Option<float?>("--lr") { Description = "Peak learning rate (default 1e-3 with --lora, 1e-4 full); linear warmup, cosine decay to 10%." }
            .Check(v => v is not float x || (x > 0 && x <= 1), "in (0, 1]");
        var batch = new Option<int>("--batch") { Description = "Sequences per step.", DefaultValueFactory = _ => 8 }.Between(1, 4096);
        var seqlen = new Option<int?>("--seqlen") { Description = "Tokens per sequence (default min(context, 128))." }.Between(2, 1 << 20);
        var warmup = new Option<int>("--warmup") { Description = "Warmup steps.", DefaultValueFactory = _ => 10 }.Between(0, 10_000_000);
        var seed = new Option<int>("--seed") { Description = "Seed of the data order and the LoRA initialization.", DefaultValueFactory = _ => 1 }.Between(0, int.MaxValue);
        var saveEvery = new Option<int>("--save-every") { Description = "Also write the model every K steps (before the last) as OUT.stepK.gguf, for a recovery curve from one run; 0 = none.", DefaultValueFactory = _ => 0 }.Between(0, 10_000_000);
        var output = new Option<string>("--output", "-o") { Description = "Output GGUF path.", Required = true };
        var threads = Cli.Threads();
        var json = Cli.Json();
        var cmd = new Command("finetune", "Recovery fine-tuning of a (pruned) model: LoRA (merged at export) or full; pruned zeros stay zero.")
            { model, text, steps, lora, alpha, lr, batch, seqlen, warmup, seed, saveEvery, output, threads, json };
        cmd.SetAction((r, ct) => Task.FromResult(Cli.Guard(() =>
        {
            string modelPath = r.GetValue(model)!, textPath = r.GetValue(text)!, outPath = r.GetValue(output)!;
            bool asJson = r.GetValue(json);
            if (!File.Exists(modelPath)) throw new PareException($"model file not found: {modelPath}");
            if (!File.Exists(textPath)) throw new PareException($"training text not found: {textPath}");
            if (Path.GetFullPath(outPath) == Path.GetFullPath(modelPath)) throw new PareException("the output path is the input model; choose another");
            var options = new FinetuneOptions
            {
                Steps = r.GetValue(steps), LoraRank = r.GetValue(lora), LoraAlpha = r.GetValue(alpha), LearningRate = r.GetValue(lr),
                BatchSize = r.GetValue(batch), SeqLen = r.GetValue(seqlen), WarmupSteps = r.GetValue(warmup), Seed = (ulong)r.GetValue(seed),
                Threads = r.GetValue(threads), SaveEvery = r.GetValue(saveEvery),
            };
            options.Validate();
            TokenizerSpec spec;
            try { spec = TokenizerFiles.Load(modelPath); }
            catch (Exception e) when (e is not PareException) { throw new PareException($"{modelPath}: cannot read its tokenizer: {e.Message}"); }
            var tokens = TokenizerFiles.EncodeFileCached(new Gpt2BpeTokenizer(spec), textPath);
            var ft = new Finetune(modelPath, tokens, options);
            if (!asJson)
                Console.Error.WriteLine($"finetune {(options.LoraRank > 0 ? $"LoRA rank {options.LoraRank}" : "full")}: {ft.TrainableParameters:N0} trainable parameters, " +
                    $"{ft.MaskedZeros:N0} pruned zeros kept, {options.BatchSize}x{ft.SeqLen} = {ft.TokensPerStep:N0} tokens per step, lr {options.EffectiveLearningRate:G3}");
            var res = ft.Run(outPath, asJson ? null : new Sync(p =>
                Console.Out.WriteLine($"step {p.Step}/{p.TotalSteps} loss {p.Loss:F4} lr {p.LearningRate:G3} {p.TokensPerSecond:F0} tok/s" +
                    (p.Snapshot != null ? $" (wrote {p.Snapshot})" : ""))), ct);
            if (asJson)
                Cli.PrintJson(new
                {
                    input = modelPath, output = outPath, mode = res.Mode, steps = res.Steps, tokens_per_step = res.TokensPerStep,
                    trainable_parameters = res.TrainableParameters, masked_zeros = res.MaskedZeros, first_loss = res.FirstLoss, last_loss = res.LastLoss,
                    seconds = res.Seconds, losses = res.Losses,
                });
            else Console.Out.WriteLine($"wrote {outPath}: {res.Steps} steps x {res.TokensPerStep:N0} tokens, loss {res.FirstLoss:F4} -> {res.LastLoss:F4}, {res.Seconds:F1} s");
            return 0;
        })));
        return cmd;
    }

    sealed class Sync(Action<FinetuneProgress> report) : IProgress<FinetuneProgress>
    {
        public void Report(FinetuneProgress value) => report(value);
    }
}
