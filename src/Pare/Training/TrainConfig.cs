using System.Text.Json;
using System.Text.Json.Serialization;
using Pare.LongContext;
using Pare.Models;
using Pare.Tensors;

namespace Pare.Training;

/// <summary>Shape of the model to train (a Llama decoder with a tied output head by default).</summary>
public sealed record ModelShape
{
    /// <summary>Model width.</summary>
    public int Dim { get; init; } = 256;
    public int Layers { get; init; } = 6;
    public int Heads { get; init; } = 8;
    /// <summary>Key/value heads; fewer than <see cref="Heads"/> gives grouped-query attention.</summary>
    public int KvHeads { get; init; } = 4;
    /// <summary>SwiGLU hidden width.</summary>
    public int FfnDim { get; init; } = 704;
    /// <summary>Context length (training window, and llama.context_length of the exported model).</summary>
    public int ContextLength { get; init; } = 512;
    public float RopeBase { get; init; } = 10000f;
    public float RmsEps { get; init; } = 1e-5f;
    /// <summary>Output head = token embedding (saves vocab · dim parameters).</summary>
    public bool TiedEmbeddings { get; init; } = true;

    public LlamaConfig ToLlama(int vocab) => new()
    {
        Dim = Dim, Layers = Layers, Heads = Heads, KvHeads = KvHeads, HeadDim = Dim / Heads, RopeDim = Dim / Heads, FfnDim = FfnDim,
        VocabSize = vocab, ContextLength = ContextLength, RopeBase = RopeBase, RmsEps = RmsEps, TiedEmbeddings = TiedEmbeddings,
        RopeLayout = RopeLayout.Interleaved,
    };
}

/// <summary>Everything a training run needs; stored as JSON (configs/*.json) with these defaults for missing keys.</summary>
public sealed record TrainConfig
{
    /// <summary>Model name (general.name of the exported GGUF).</summary>
    public string Name { get; init; } = "pare-ref";
    public ModelShape Model { get; init; } = new();
    /// <summary>Tokenizer GGUF (from <c>pare data tokenizer</c>); its vocabulary size sets the model's.</summary>
    public string Tokenizer { get; init; } = ".cache/data/tokenizer-8192.gguf";
    public string TrainText { get; init; } = ".cache/data/corpus/train.txt";
    public string ValidText { get; init; } = ".cache/data/corpus/valid.txt";
    /// <summary>Checkpoints, logs and the exported model go here.</summary>
    public string OutDir { get; init; } = ".cache/train/pare-ref";

    /// <summary>
    /// A GGUF of the same shape whose weights replace the random initialization (e.g. to continue a model at a longer
    /// context); null = random. A resumed run takes its weights from the checkpoint instead.
    /// </summary>
    public string? InitFrom { get; init; }
    /// <summary>Synthetic long-context retrieval documents mixed into the training windows; null = corpus windows only.</summary>
    public LongContextMixOptions? LongContext { get; init; }

    /// <summary>Seed of the weight initialization and of the data order.</summary>
    public ulong Seed { get; init; } = 1234;
    /// <summary>Optimizer steps of the whole run (the cosine schedule ends here).</summary>
    public int Steps { get; init; } = 4000;
    /// <summary>Sequences per step.</summary>
    public int BatchSize { get; init; } = 8;
    /// <summary>Sequences per forward/backward pass (gradients accumulate over BatchSize / MicroBatch passes); bounds memory.</summary>
    public int MicroBatch { get; init; } = 4;
    /// <summary>Tokens per training sequence (predictions per sequence); at most the context length.</summary>
    public int SeqLen { get; init; } = 512;

    public float LearningRate { get; init; } = 1e-3f;
    /// <summary>Learning rate at the end of the cosine decay.</summary>
    public float MinLearningRate { get; init; } = 1e-4f;
    /// <summary>Linear warmup from 0 over these many steps.</summary>
    public int WarmupSteps { get; init; } = 100;
    /// <summary>Decoupled weight decay (AdamW), on matrices and the embedding, not on norm weights.</summary>
    public float WeightDecay { get; init; } = 0.1f;
    public float Beta1 { get; init; } = 0.9f;
    public float Beta2 { get; init; } = 0.95f;
    public float AdamEps { get; init; } = 1e-8f;
    /// <summary>Clip the global gradient norm to this (0 = no clipping).</summary>
    public float GradClip { get; init; } = 1.0f;
    /// <summary>Standard deviation of the initial weights (output projections are scaled down by 1/sqrt(2·layers)).</summary>
    public float InitStd { get; init; } = 0.02f;

    /// <summary>Validation every this many steps (0 = never).</summary>
    public int EvalEvery { get; init; } = 200;
    /// <summary>Sequences of the validation set (fixed windows spread over the valid split).</summary>
    public int EvalSequences { get; init; } = 32;
    /// <summary>Checkpoint every this many steps (and on Ctrl+C and at the end).</summary>
    public int CheckpointEvery { get; init; } = 100;
    /// <summary>Threads of the kernels; 0 = all cores.</summary>
    public int Threads { get; init; }
    /// <summary>Weight type of the exported GGUF: "F32" or "F16".</summary>
    public string ExportType { get; init; } = "F32";

    public int EffectiveThreads => Threads > 0 ? Threads : Environment.ProcessorCount;

    static readonly JsonSerializerOptions Json = new()
    {
        PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower, WriteIndented = true, ReadCommentHandling = JsonCommentHandling.Skip,
        AllowTrailingCommas = true, UnmappedMemberHandling = JsonUnmappedMemberHandling.Disallow,
    };

    public static TrainConfig Load(string path) =>
        File.Exists(path) ? Parse(File.ReadAllText(path), path) : throw new PareException($"config not found: {path}");

    /// <summary>Reads a config from JSON text (a file's, or the <c>pare.training_config</c> an exported GGUF carries).</summary>
    public static TrainConfig Parse(string json, string source = "config")
    {
        try
        {
            var c = JsonSerializer.Deserialize<TrainConfig>(json, Json) ?? throw new PareException($"{source}: empty config");
            c.Validate(source);
            return c;
        }
        catch (JsonException e) { throw new PareException($"{source}: {e.Message}"); }
    }

    public string ToJson() => JsonSerializer.Serialize(this, Json);

    public void Validate(string source)
    {
        void Check(bool ok, string what) { if (!ok) throw new PareException($"{source}: {what}"); }
        Check(Model.Dim % Model.Heads == 0 && (Model.Dim / Model.Heads) % 2 == 0, "dim must be a multiple of heads with an even head width");
        Check(Model.KvHeads > 0 && Model.Heads % Model.KvHeads == 0, "kv_heads must divide heads");
        Check(SeqLen > 0 && SeqLen <= Model.ContextLength, "seq_len must be in 1..context_length");
        Check(BatchSize > 0 && MicroBatch > 0 && BatchSize % MicroBatch == 0, "batch_size must be a multiple of micro_batch");
        Check(Steps > 0 && WarmupSteps >= 0, "steps must be positive");
        Check(ExportType is "F32" or "F16", "export_type must be F32 or F16");
        LongContext?.Validate(source);
    }
}
