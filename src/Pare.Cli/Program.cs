using System.CommandLine;
using Pare.Cli.Commands;

var root = new RootCommand("""
    pare: make transformer language models smaller and faster, in pure C#.
    Loads GGUF files (and Hugging Face safetensors directories), runs them on Pare's own engine, and measures them.
    Every verb takes --json for machine-readable output.
    """);
root.Subcommands.Add(InfoCommand.Create());
root.Subcommands.Add(RunCommand.Create());
root.Subcommands.Add(LogitsCommand.Create());
root.Subcommands.Add(TokenizeCommand.Create());
root.Subcommands.Add(BenchCommand.Create());
root.Subcommands.Add(BenchSpecCommand.Create());
root.Subcommands.Add(DemoCommand.Create());
root.Subcommands.Add(DataCommand.Create());
root.Subcommands.Add(TrainCommand.Create());
root.Subcommands.Add(PplCommand.Create());
root.Subcommands.Add(PplCommand.CreateNgram());
root.Subcommands.Add(PruneCommand.Create());
root.Subcommands.Add(FinetuneCommand.Create());
root.Subcommands.Add(NeedleCommand.Create());
root.Subcommands.Add(ImportCommand.Create());
root.Subcommands.Add(EmbedCommand.Create());
root.Subcommands.Add(ServeCommand.Create());
root.Subcommands.Add(EncoderPruneCommand.Create());
root.Subcommands.Add(IndexCommand.Create());
root.Subcommands.Add(RagCommand.Create());
root.Subcommands.Add(RagTrainCommand.Create());
root.Subcommands.Add(RagEvalCommand.Create());
return await Cli.InvokeAsync(root, args);
